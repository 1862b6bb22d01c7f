using System.Text;
using Kedit.Editing.Inputs;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// MEMIT's context templates (spec §5.1), generated once from the unedited model with a seed and
/// then frozen: ["{}"] and, for each of "The", "Therefore", "Because", "I", "You", one top-5 sample
/// of total length 10 tokens, cleaned, followed by ". {}".
/// </summary>
public static class TemplateGenerator
{
    public static readonly string[] PromptWords = { "The", "Therefore", "Because", "I", "You" };

    public static ContextTemplates Memit(Transformer model, int seed, int totalLength = 10)
    {
        var tok = model.RequireTokenizer();
        var rng = new Random(seed);
        var generated = new List<string>();
        foreach (var w in PromptWords)
        {
            var prompt = tok.Encode(w);
            int extra = Math.Max(1, totalLength - prompt.Length);
            var output = SampleTopK(model, prompt, extra, 5, rng);
            generated.Add(Clean(tok.Decode(prompt.Concat(output).ToArray(), skipSpecialTokens: true)) + ". {}");
        }
        return new ContextTemplates(new[] { new[] { ContextTemplates.Slot }, generated.ToArray() }, "generated context templates");
    }

    /// <summary>The reference's clean(): NFKD, "\n\n" → " ", no "&lt;|endoftext|&gt;", braces → spaces.</summary>
    public static string Clean(string text) =>
        text.Normalize(NormalizationForm.FormKD).Replace("\n\n", " ").Replace("<|endoftext|>", "").Replace('{', ' ').Replace('}', ' ');

    static int[] SampleTopK(Transformer model, int[] prompt, int newTokens, int k, Random rng)
    {
        var output = new List<int>();
        using var cache = model.CreateCache(1, prompt.Length + newTokens);
        var logits = model.Forward(TokenBatch.Single(prompt), cache, new ForwardOptions { Logits = LogitsMode.Last });
        for (int s = 0; s < newTokens; s++)
        {
            var row = logits.Row(0).ToArray();
            var top = Enumerable.Range(0, row.Length).OrderByDescending(i => row[i]).ThenBy(i => i).Take(k).ToArray();
            double max = row[top[0]];
            var p = top.Select(i => Math.Exp(row[i] - max)).ToArray();
            double u = rng.NextDouble() * p.Sum(), acc = 0;
            int next = top[^1];
            for (int i = 0; i < top.Length; i++) { acc += p[i]; if (u < acc) { next = top[i]; break; } }
            output.Add(next);
            if (s + 1 < newTokens) logits = model.Forward(TokenBatch.Single(new[] { next }), cache, new ForwardOptions { Logits = LogitsMode.Last });
        }
        return output.ToArray();
    }
}
