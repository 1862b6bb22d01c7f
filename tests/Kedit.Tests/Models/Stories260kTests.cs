using System.Text.Json;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Models;

/// <summary>The real pretrained stories260k model against llama2.c's greedy generations (read from ../shared).</summary>
public class Stories260kTests
{
    [SkippableFact]
    public void GreedyGenerationsMatchLlama2cTokenForToken()
    {
        string dir = TestPaths.RequireShared("models", "stories260k");
        using var model = Transformer.Load(dir);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "expected_generations.json")));
        int checkedCases = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            var prompt = c.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = c.GetProperty("output_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int steps = c.GetProperty("steps").GetInt32();
            // run.c: -n counts positions including the prompt; generation stops (silently) on BOS.
            var got = Generator.Generate(model, prompt, new GenerationOptions
            {
                MaxNewTokens = steps + 1 - prompt.Length,
                StopTokens = new HashSet<int> { 1 },
            });
            Assert.True(expected.SequenceEqual(got), $"{name}: expected [{string.Join(",", expected)}]\n got [{string.Join(",", got)}]");

            // The prompt-encoding path too: our tokenizer gives run.c's prompt ids.
            Assert.Equal(prompt, model.RequireTokenizer().Encode(c.GetProperty("prompt").GetString()!));

            var lastLogits = c.GetProperty("last_prompt_logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var ours = model.Forward(TokenBatch.Single(prompt), new ForwardOptions { Logits = LogitsMode.Last }).Logits;
            Compare.Close($"{name} last prompt logits", ours, lastLogits, 1e-4, 1e-3);
            checkedCases++;
        }
        Assert.Equal(8, checkedCases);
    }
}
