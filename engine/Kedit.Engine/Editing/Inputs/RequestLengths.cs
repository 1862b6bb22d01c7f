using Kedit.Models;

namespace Kedit.Editing.Inputs;

/// <summary>
/// Checks, before any work, that every text of the requests fits the model's positions, so an
/// over-long prompt is refused naming the file, record and field rather than failing mid-run
/// with a position error.
/// </summary>
public static class RequestLengths
{
    /// <param name="reserved">positions taken by what is put before a prompt (the longest context template)</param>
    public static void Check(IReadOnlyList<EditRequest> requests, Transformer model, string source, int reserved = 0)
    {
        var tok = model.RequireTokenizer();
        int limit = model.Config.MaxPositions - reserved;
        for (int i = 0; i < requests.Count; i++)
        {
            var r = requests[i];
            string subjectPrompt = r.Prompt.Replace("{}", r.Subject);
            var texts = new List<(string Field, string Text)> { ("prompt", subjectPrompt + r.TargetNew) };
            if (r.TargetTrue != null) texts.Add(("target_true", subjectPrompt + r.TargetTrue));
            texts.AddRange(r.ParaphrasePrompts.Select((p, k) => ($"paraphrase_prompts[{k}]", p + r.TargetNew)));
            texts.AddRange(r.NeighborhoodPrompts.Select((p, k) => ($"neighborhood_prompts[{k}]", p.Prompt + p.Answer)));
            texts.AddRange(r.AttributePrompts.Select((p, k) => ($"attribute_prompts[{k}]", p + r.TargetNew)));
            texts.AddRange(r.GenerationPrompts.Select((p, k) => ($"generation_prompts[{k}]", p)));
            if (r.LocalityPrompt != null) texts.Add(("locality_prompt", r.LocalityPrompt + (r.LocalityAnswer ?? "")));
            foreach (var (field, text) in texts)
            {
                int n = tok.Encode(text).Length;
                if (n > limit)
                    throw new KeditException($"{source}: record {i}: field '{field}' is {n} tokens with its answer; the model has {model.Config.MaxPositions} positions" +
                                             (reserved > 0 ? $", {reserved} of them taken by the context templates" : ""));
            }
        }
    }
}
