using Kedit.Models;

namespace Kedit.Tests.Editing;

/// <summary>The statistics' reference: each document run alone (cut to the model's context), its MLP keys captured and Σ k kᵀ summed naively in float64.</summary>
public static class KeySumsAlone
{
    public static (Dictionary<int, double[]> Sums, long Tokens) Of(Transformer model, IEnumerable<int[]> docs, int[] layers)
    {
        int f = model.Config.Intermediate;
        var sums = layers.ToDictionary(l => l, _ => new double[(long)f * f]);
        long tokens = 0;
        foreach (var doc in docs)
        {
            var ids = doc.Length > model.Config.MaxPositions ? doc[..model.Config.MaxPositions] : doc;
            var hooks = new ForwardHooks { StopAfterLayer = layers.Max() };
            foreach (int l in layers) hooks.Capture(l, HookPoint.MlpKey);
            model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
            foreach (int l in layers)
            {
                var k = hooks.Captured(l, HookPoint.MlpKey);
                var e = sums[l];
                for (int t = 0; t < ids.Length; t++)
                    for (int i = 0; i < f; i++)
                    {
                        double ki = k[t * f + i];
                        for (int j = 0; j < f; j++) e[(long)i * f + j] += ki * k[t * f + j];
                    }
            }
            tokens += ids.Length;
        }
        return (sums, tokens);
    }
}
