using System.Diagnostics;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Forward throughput of a GPT-2-small-sized random model on the CPU backend: prompt processing
/// (tokens/s and achieved GFLOP/s as a share of the measured peak) and cached decoding.
/// </summary>
public static class ForwardBench
{
    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        double peak = Peak.MeasureGflops(Environment.ProcessorCount);
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        long matmulParams = c.Layers * 12L * c.Hidden * c.Hidden; // qkv + attn out + MLP in/out per layer
        var rng = new Random(3);
        Console.WriteLine($"forward: GPT-2-small-sized random model ({c.Layers} layers, {c.Hidden} wide, vocab {c.VocabSize}); measured peak {peak:F0} GFLOP/s");
        Console.WriteLine($"{"case",-28} {"tokens/s",10} {"GFLOP/s",9} {"% peak",7}");
        // Steady state: run forwards for a while so tiered JIT has promoted the hot code (three forwards
        // left most of it at tier 0 and halved the 64-token figure).
        var warm = Stopwatch.StartNew();
        var warmIds = Enumerable.Range(0, 32).Select(_ => rng.Next(c.VocabSize)).ToArray();
        while (warm.Elapsed.TotalSeconds < (quick ? 1.0 : 2.5)) model.Forward(TokenBatch.Single(warmIds), new ForwardOptions { Logits = LogitsMode.Last });
        foreach (int T in quick ? new[] { 128 } : new[] { 64, 128, 512 })
        {
            var ids = Enumerable.Range(0, T).Select(_ => rng.Next(c.VocabSize)).ToArray();
            model.Forward(TokenBatch.Single(ids), new ForwardOptions { Logits = LogitsMode.Last }); // warm-up
            int reps = quick ? 2 : 4;
            var sw = Stopwatch.StartNew();
            for (int r = 0; r < reps; r++) model.Forward(TokenBatch.Single(ids), new ForwardOptions { Logits = LogitsMode.Last });
            double s = sw.Elapsed.TotalSeconds / reps;
            // Matmuls 2·P per token, attention 4·T·d per token per layer (average T/2 keys), one unembedding row.
            double flops = T * (2.0 * matmulParams + 4.0 * c.Layers * c.Hidden * T / 2) + 2.0 * c.Hidden * c.VocabSize;
            Console.WriteLine($"{"prompt " + T + " tokens",-28} {T / s,10:F0} {flops / s / 1e9,9:F1} {100 * flops / s / 1e9 / peak,6:F0}%");
        }
        {
            // The perplexity pass of `eval --corpus` on the peer's workload (bench/peer/peer.py forward): 49 documents of
            // 128 tokens in batches of 32, logits over the whole vocabulary at every predicting row.
            var docs = StatsBench.Documents(c.VocabSize);
            long tokens = docs.Sum(d => (long)d.Length);
            var sw = Stopwatch.StartNew();
            Kedit.Evaluation.Metrics.Perplexity(model, docs, 128);
            double s = sw.Elapsed.TotalSeconds;
            double flops = tokens * (2.0 * matmulParams + 4.0 * c.Layers * c.Hidden * 128 / 2 + 2.0 * c.Hidden * c.VocabSize);
            Console.WriteLine($"{"perplexity 49 x 128 tokens",-28} {tokens / s,10:F0} {flops / s / 1e9,9:F1} {100 * flops / s / 1e9 / peak,6:F0}%  ({s:F2} s)");
        }
        {
            int prompt = 32, steps = quick ? 16 : 64;
            var ids = Enumerable.Range(0, prompt).Select(_ => rng.Next(c.VocabSize)).ToArray();
            Generator.Generate(model, ids, new GenerationOptions { MaxNewTokens = 4, StopTokens = new HashSet<int>() });
            var sw = Stopwatch.StartNew();
            Generator.Generate(model, ids, new GenerationOptions { MaxNewTokens = steps, StopTokens = new HashSet<int>() });
            double s = sw.Elapsed.TotalSeconds;
            // Decoding is bound by streaming the weights: report GB/s of weights read per token.
            double bytes = (matmulParams + (long)c.Hidden * c.VocabSize) * 4.0 * steps;
            Console.WriteLine($"{"decode (KV cache), batch 1",-28} {steps / s,10:F1} {"",9} {"",7}  weights streamed {bytes / s / 1e9:F1} GB/s");
        }
    }
}
