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
        var threadArg = args.FirstOrDefault(a => a.StartsWith("threads="));
        if (threadArg != null) Kedit.Kernels.Cpu.Gemm.MaxThreads = int.Parse(threadArg["threads=".Length..]);
        double peak = Peak.MeasureGflops(Environment.ProcessorCount);
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        long matmulParams = c.Layers * 12L * c.Hidden * c.Hidden; // qkv + attn out + MLP in/out per layer
        var rng = new Random(3);
        if (args.Contains("decode"))
        {
            DecodeBoth(model, rng, quick ? 16 : 64);
            return;
        }
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
        DecodeBoth(model, rng, quick ? 16 : 64);
    }

    /// <summary>
    /// Decoding on the F32 model and on the same model held BF16 (as a BF16 checkpoint loads), each against its floor:
    /// its weight bytes over the rate at which this machine reads those very arrays, measured just before its steps.
    /// Beside it, the 64 MiB stream copy (bytes read + written) that older figures were taken against: on this VM its rate
    /// falls by about half from 16 to 256 MiB, so at 64 MiB it is partly served from cache and overstates what a stream
    /// of several hundred MB of weights can get.
    /// </summary>
    static void DecodeBoth(Transformer model, Random rng, int steps)
    {
        int threads = Kedit.Kernels.Cpu.Gemm.MaxThreads;
        Console.WriteLine($"decode: floor = weight bytes per token / the read rate of those weight arrays ({threads} threads, each half of every matrix); x copy: against the 64 MiB stream copy's rate");
        Console.WriteLine($"{"decode, batch 1",-30} {"ms/token",9} {"x floor",8} {"x copy",7} {"cpu ms/token",13} {"x floor",8}  (cpu: CPU seconds / {threads} cores)");
        double f32 = Decode(model, "F32", rng, steps);
        using var bf16 = RandomModel.Gpt2(resident: Kedit.Kernels.Cpu.HalfFormat.BFloat16);
        double b16 = Decode(bf16, "BF16-resident", rng, steps);
        Console.WriteLine($"decode whole step x floor, this run: F32 {f32:F2}x, BF16-resident {b16:F2}x (target <= 1.6x); {Load()}");
    }

    static string Load() => File.Exists("/proc/loadavg") ? $"load average {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}" : "load average n/a";

    /// <summary>
    /// Cached decoding, batch 1, against its floor: every weight read once per token (the weight bytes as held divided by
    /// the bandwidth measured just before, see <see cref="DecodeBoth"/>). Beside the whole step, the step's one-row products alone on the
    /// model's own weights (the 48 layer products and the logits over the vocabulary, through the backend as the step
    /// runs them), so the rest of the step (attention, norms, sampling) shows as the difference. Wall per token, and CPU
    /// seconds per token over the cores (what a quiet machine's wall would be when the process is being shared).
    /// Returns the whole step's wall time over its floor.
    /// </summary>
    static double Decode(Transformer model, string label, Random rng, int steps)
    {
        var c = model.Config;
        int threads = Kedit.Kernels.Cpu.Gemm.MaxThreads;
        var linears = model.Weights.Layers.SelectMany(l => new[] { l.Qkv, l.AttnOut, l.MlpIn, l.MlpOut }).Append(model.Weights.LmHead).ToArray();
        double bytes = linears.Sum(w => (double)w.Matrix.ResidentBytes);
        // The arrays as held: 16-bit bits for a BF16-resident matrix (reading F32 would promote it).
        var arrays = linears.Select(w => w.Matrix.Half is { } h ? (Array)h.Bits : w.Matrix.F32).Distinct().ToArray();
        double read = Peak.MeasureReadBandwidth(threads, arrays), big = Peak.MeasureReadBandwidth(threads), copy = Peak.MeasureBandwidth(threads);
        double floorMs = bytes / read / 1e6, copyMs = bytes / copy / 1e6;

        // The steps alone, after a 32-token prompt in the cache: the prompt's own forward is a many-row product,
        // not decoding (timed inside Generate it added a third to the per-token figure).
        int prompt = 32;
        var ids = Enumerable.Range(0, prompt).Select(_ => rng.Next(c.VocabSize)).ToArray();
        // As Generator does: the logits land in one reused buffer.
        var logits = new float[c.VocabSize];
        var last = new ForwardOptions { Logits = LogitsMode.Last, OnLogits = (_, _, row) => row.CopyTo(logits) };
        (double Wall, double Cpu, double Fastest, double AllocKb) Steps(int count)
        {
            double fastest = double.MaxValue;
            using var cache = model.CreateCache(1, prompt + count);
            model.Forward(TokenBatch.Single(ids), cache, last);
            int next = Generator.ArgMax(logits);
            double cpu0 = GemmBench.ProcessCpuSeconds();
            long alloc0 = GC.GetAllocatedBytesForCurrentThread();
            long t0 = Stopwatch.GetTimestamp();
            for (int t = 0; t < count; t++)
            {
                long s0 = Stopwatch.GetTimestamp();
                model.Forward(TokenBatch.Single([next]), cache, last);
                next = Generator.ArgMax(logits);
                fastest = Math.Min(fastest, Stopwatch.GetElapsedTime(s0).TotalMilliseconds);
            }
            return (Stopwatch.GetElapsedTime(t0).TotalMilliseconds / count, (GemmBench.ProcessCpuSeconds() - cpu0) * 1e3 / count / threads, fastest,
                (GC.GetAllocatedBytesForCurrentThread() - alloc0) / 1024.0 / count);
        }
        // Warm up by time: tiered JIT promotes the decode path only after many calls.
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 1.5) Steps(4);
        var (stepMs, stepCpuMs, fastestMs, allocKb) = Steps(steps);

        var be = model.Backend;
        using var x = be.Allocate(1, Math.Max(c.Intermediate, c.Hidden));
        var xs = new float[x.Cols];
        for (int i = 0; i < xs.Length; i++) xs[i] = (float)rng.NextDouble() - 0.5f;
        be.Upload(xs, x);
        var inputs = linears.Select(w => be.Allocate(1, w.In)).ToArray();
        var outputs = linears.Select(w => be.Allocate(1, w.Out)).ToArray();
        for (int i = 0; i < linears.Length; i++) be.Upload(xs.AsSpan(0, linears[i].In), inputs[i]);
        void Products()
        {
            for (int i = 0; i < linears.Length; i++) be.Linear(inputs[i], linears[i], outputs[i]);
        }
        Products();
        int reps = Math.Max(4, steps / 4);
        double cpu0 = GemmBench.ProcessCpuSeconds();
        var sw = Stopwatch.StartNew();
        double fastestProducts = double.MaxValue;
        for (int r = 0; r < reps; r++)
        {
            long s0 = Stopwatch.GetTimestamp();
            Products();
            fastestProducts = Math.Min(fastestProducts, Stopwatch.GetElapsedTime(s0).TotalMilliseconds);
        }
        double gemmMs = sw.Elapsed.TotalMilliseconds / reps, gemmCpuMs = (GemmBench.ProcessCpuSeconds() - cpu0) * 1e3 / reps / threads;
        foreach (var t in inputs.Concat(outputs)) t.Dispose();

        Console.WriteLine($"{label}: {bytes / 1e6:F0} MB of weights per token, read at {read:F1} GB/s: floor {floorMs:F1} ms (a 256 MiB read {big:F1} GB/s, the copy {copy:F1} GB/s); {allocKb:F1} KiB allocated per step; {Load()}");
        Console.WriteLine($"{"  whole step (" + steps + " tokens)",-30} {stepMs,9:F1} {stepMs / floorMs,7:F2}x {stepMs / copyMs,6:F2}x {stepCpuMs,13:F1} {stepCpuMs / floorMs,7:F2}x  weights streamed {bytes / stepMs / 1e6:F1} GB/s");
        Console.WriteLine($"{"  fastest step",-30} {fastestMs,9:F1} {fastestMs / floorMs,7:F2}x {fastestMs / copyMs,6:F2}x {"",13} {"",8}  (the step the other load disturbed least)");
        Console.WriteLine($"{"  its one-row products",-30} {gemmMs,9:F1} {gemmMs / floorMs,7:F2}x {gemmMs / copyMs,6:F2}x {gemmCpuMs,13:F1} {gemmCpuMs / floorMs,7:F2}x  weights streamed {bytes / gemmMs / 1e6:F1} GB/s");
        Console.WriteLine($"{"  fastest products",-30} {fastestProducts,9:F1} {fastestProducts / floorMs,7:F2}x {fastestProducts / copyMs,6:F2}x");
        return stepMs / floorMs;
    }
}
