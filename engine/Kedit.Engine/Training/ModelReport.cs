using Kedit.Corpus;
using Kedit.Evaluation;
using Kedit.Models;
using Kedit.Tokenization;

namespace Kedit.Training;

/// <summary>Accuracy on a set of fact prompts.</summary>
public sealed record FactScore(int Total, int Correct)
{
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
    public override string ToString() => $"{Correct}/{Total} ({100 * Accuracy:F1}%)";
}

/// <summary>What <see cref="ModelReport.Summarize"/> measures on a fact-world model.</summary>
public sealed record ModelSummary(FactScore TrainedFacts, FactScore HeldOutParaphrases, double HeldOutPerplexity, long Parameters)
{
    public override string ToString() =>
        $"trained facts {TrainedFacts}; held-out paraphrases {HeldOutParaphrases}; held-out perplexity {HeldOutPerplexity:F2}; {Parameters:N0} parameters";
}

/// <summary>
/// Quality numbers of a model trained on the fact world: top-1 accuracy of the first object token
/// after a fact prompt (trained or held-out phrasing), and perplexity on held-out general text.
/// </summary>
public static class ModelReport
{
    /// <summary>The token the model must predict after a prompt: the first token of " " + object.</summary>
    public static int FirstTargetToken(Tokenizer tokenizer, string obj) => tokenizer.Encode(" " + obj, addSpecialTokens: false)[0];

    /// <summary>How many prompts have their object's first token as the top-1 next token.</summary>
    public static FactScore FactAccuracy(Transformer model, IEnumerable<FactPrompt> prompts, int batchSize = 64)
    {
        var tok = model.RequireTokenizer();
        var list = prompts.ToList();
        int correct = 0;
        for (int start = 0; start < list.Count; start += batchSize)
        {
            var chunk = list.Skip(start).Take(batchSize).ToList();
            var ids = chunk.Select(p => (IReadOnlyList<int>)tok.Encode(p.Prompt, addSpecialTokens: false)).ToList();
            var result = model.Forward(TokenBatch.RightPadded(ids), new ForwardOptions { Logits = LogitsMode.Last });
            for (int i = 0; i < chunk.Count; i++)
                if (Generator.ArgMax(result.Row(i)) == FirstTargetToken(tok, chunk[i].Object)) correct++;
        }
        return new FactScore(list.Count, correct);
    }

    /// <summary>exp(mean next-token cross-entropy) over documents, each read from its start up to the model's context.</summary>
    public static double Perplexity(Transformer model, IEnumerable<string> documents)
    {
        var tok = model.RequireTokenizer();
        int context = model.Config.MaxPositions;
        var docs = documents.Select(d => tok.Encode(d, addSpecialTokens: false).Take(context).ToArray()).Where(d => d.Length >= 2).ToList();
        if (docs.Count == 0) throw new KeditException("perplexity needs at least one document of two or more tokens");
        return Metrics.Perplexity(model, docs, window: context);
    }

    /// <summary>
    /// Trained-fact accuracy (training phrasing 0), held-out paraphrase accuracy and held-out
    /// perplexity; with <paramref name="sample"/>, on that many facts drawn with <paramref name="seed"/>.
    /// </summary>
    public static ModelSummary Summarize(Transformer model, FactWorld world, int? sample = null, int seed = 0)
    {
        var facts = world.Facts.ToList();
        if (sample is int k && k < facts.Count)
        {
            var idx = Enumerable.Range(0, facts.Count).ToArray();
            new Random(seed).Shuffle(idx);
            facts = idx.Take(k).Order().Select(i => facts[i]).ToList();
        }
        var sub = new FactWorld { Seed = world.Seed, Relations = world.Relations, Facts = facts, GeneralTrain = world.GeneralTrain, GeneralHeldOut = world.GeneralHeldOut };
        return new ModelSummary(FactAccuracy(model, sub.TrainedPrompts(0)), FactAccuracy(model, sub.HeldOutPrompts()),
            Perplexity(model, world.GeneralHeldOut), model.Weights.ParameterCount);
    }
}
