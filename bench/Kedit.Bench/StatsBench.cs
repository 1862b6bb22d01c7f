using System.Diagnostics;
using Kedit.Editing;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Key statistics on a GPT-2-small-sized random model, the issue's workload: layers 3–8, 49 documents of 128
/// tokens (6,272 tokens). Prints tokens/s of each product mode, the batched forward alone (stopping at layer 8),
/// and the SYRK's GFLOP/s and share of the measured peak (the time beyond that forward, f(f+1) flops a token a
/// layer for the triangle). bench/peer/peer.py does the same work (its own 49 × 128 random ids: random ids cost the
/// same whatever they are), so the two compare directly when run side by side.
/// </summary>
public static class StatsBench
{
    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        int reps = quick ? 1 : 3;
        double peak = Peak.MeasureGflops(Environment.ProcessorCount);
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        int[] layers = { 3, 4, 5, 6, 7, 8 };
        var docs = Documents(c.VocabSize);
        long tokens = docs.Sum(d => (long)d.Length);
        int f = c.Intermediate;
        Console.WriteLine($"stats: GPT-2-small-sized random model, layers 3-8, {docs.Count} documents, {tokens:N0} tokens; measured peak {peak:F0} GFLOP/s");
        Accumulate(model, docs.Take(4).ToList(), layers, KeyProducts.Float32); // warm-up (JIT, buffers)

        double forward = Best(reps, () =>
        {
            for (int i = 0; i < docs.Count; i += Covariance.BatchDocuments)
            {
                var batch = TokenBatch.RightPadded(docs.Skip(i).Take(Covariance.BatchDocuments).Cast<IReadOnlyList<int>>().ToList());
                model.Forward(batch, new ForwardOptions { Hooks = new ForwardHooks { StopAfterLayer = layers[^1] }, Logits = LogitsMode.None });
            }
        });
        Console.WriteLine($"{"case",-36} {"seconds",8} {"tokens/s",9} {"SYRK GFLOP/s",13} {"% peak",7}");
        Console.WriteLine($"{"forward to layer 8 (batches of 32)",-36} {forward,8:F2} {tokens / forward,9:F0}");
        foreach (var mode in new[] { KeyProducts.Float32, KeyProducts.Float64 })
        {
            double s = Best(reps, () => Accumulate(model, docs, layers, mode));
            double syrkFlops = layers.Length * (double)tokens * f * (f + 1);
            double syrk = Math.Max(s - forward, 1e-9);
            Console.WriteLine($"{"statistics, " + mode + " products",-36} {s,8:F2} {tokens / s,9:F0} {syrkFlops / syrk / 1e9,13:F1} {100 * syrkFlops / syrk / 1e9 / peak,6:F0}%");
        }
    }

    /// <summary>49 documents of 128 random token ids (seed 3): the peer script's workload.</summary>
    public static List<int[]> Documents(int vocab)
    {
        var rng = new Random(3);
        return Enumerable.Range(0, 49).Select(_ => Enumerable.Range(0, 128).Select(_ => rng.Next(vocab)).ToArray()).ToList();
    }

    static void Accumulate(Transformer model, List<int[]> docs, int[] layers, KeyProducts mode)
    {
        var cov = new Covariance(layers, model.Config.Intermediate, mode);
        cov.Accumulate(model, docs);
        cov.Sum(layers[0]); // the mirror is part of the cost
    }

    static double Best(int reps, Action run)
    {
        double best = double.MaxValue;
        for (int r = 0; r < reps; r++)
        {
            var sw = Stopwatch.StartNew();
            run();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }
}
