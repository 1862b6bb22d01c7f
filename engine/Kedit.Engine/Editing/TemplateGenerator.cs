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
            // The reference sampler: softmax of the last logits, keep the top 5, renormalise, draw.
            var output = Generator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = extra, Temperature = 1f, TopK = 5, StopTokens = new HashSet<int>() }, rng);
            generated.Add(Clean(tok.Decode(prompt.Concat(output).ToArray(), skipSpecialTokens: true)) + ". {}");
        }
        return new ContextTemplates(new[] { new[] { ContextTemplates.Slot }, generated.ToArray() }, "generated context templates");
    }

    /// <summary>The reference's clean(): NFKD, "\n\n" → " ", no "&lt;|endoftext|&gt;", braces → spaces.</summary>
    public static string Clean(string text) =>
        text.Normalize(NormalizationForm.FormKD).Replace("\n\n", " ").Replace("<|endoftext|>", "").Replace('{', ' ').Replace('}', ' ');
}
