// Device kernels vs the managed CPU kernels, and an end-to-end GPT-2-small-sized forward per device.
// Prints measured rates only; never asserts timings. Usage: kedit-bench device [--layers N] [--tokens T]
using System.Diagnostics;
using Kedit.Backends;
using Kedit.IO;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Bench;

public static class DeviceBench
{
    public static void Run(string[] args)
    {
        int layers = IntArg(args, "--layers", 12), tokens = IntArg(args, "--tokens", 128);
        if (!OpenClBackend.IsPlatformPresent(out var why)) { Console.WriteLine($"device bench: skipped, {why}"); return; }
        using var be = OpenClBackend.Create();
        Console.WriteLine($"device bench: {be.DeviceName}; CPU reference: managed kernels, {Environment.ProcessorCount} threads");
        Console.WriteLine($"{"kernel",-34} {"shape",-22} {"opencl",12} {"cpu",12} {"unit",8}");
        KernelRows(be);
        Console.WriteLine();
        Console.WriteLine($"end-to-end forward, random GPT-2-small-sized model ({layers} layers, d 768, 12 heads, vocab 50257)");
        EndToEnd(be, layers, tokens);
    }

    static int IntArg(string[] args, string name, int dflt)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out int v) ? v : dflt;
    }

    /// <summary>Median seconds per call over enough repetitions to fill ~0.4 s (after one warm-up call).</summary>
    static double Time(Action body)
    {
        body();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < 3 || (total.Elapsed.TotalSeconds < 0.4 && times.Count < 50))
        {
            var sw = Stopwatch.StartNew();
            body();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    static float[] Rand(long n, int seed) => RandomModel.Rand(n, seed, 0.05f / 1.7320508f);

    static void Row(string kernel, string shape, double dev, double cpu, string unit) =>
        Console.WriteLine($"{kernel,-34} {shape,-22} {dev,12:F2} {cpu,12:F2} {unit,8}");

    static unsafe void KernelRows(OpenClBackend be)
    {
        var cpu = CpuBackend.Instance;
        // GEMM through Linear (x·Wᵀ, nn.Linear layout) and through the plain Gemm entry.
        foreach (var (m, k, n) in new[] { (512, 512, 512), (128, 768, 3072), (128, 3072, 768), (1, 768, 3072) })
        {
            var w = new Linear("bench", Rand((long)k * n, 1), Rand(n, 2), k, n, false);
            var x = Rand((long)m * k, 3);
            using var dx = be.Allocate(m, k); using var dy = be.Allocate(m, n);
            be.Upload(x, dx);
            var hx = new CpuTensor(m, k); x.CopyTo(hx.Data, 0); var hy = new CpuTensor(m, n);
            double dev = Time(() => { be.Linear(dx, w, dy); be.Synchronize(); });
            double host = Time(() => cpu.Linear(hx, w, hy));
            double flop = 2.0 * m * n * k;
            if (m == 1) Row("linear (skinny, weights streamed)", $"{m}x{k}->{n}", 4.0 * k * n / dev / 1e9, 4.0 * k * n / host / 1e9, "GB/s");
            else Row("linear / tiled gemm_nt", $"{m}x{k}->{n}", flop / dev / 1e9, flop / host / 1e9, "GFLOP/s");
        }
        {
            int m = 384, n = 384, k = 384;
            var a = Rand(m * k, 4); var b = Rand(k * n, 5); var c = new float[m * n];
            using var da = be.Allocate(m, k); using var db = be.Allocate(k, n); using var dc = be.Allocate(m, n);
            be.Upload(a, da); be.Upload(b, db);
            double dev = Time(() => { be.Gemm(true, false, da, db, dc); be.Synchronize(); });
            double host = Time(() => Gemm.Sgemm(true, false, m, n, k, 1f, a, m, b, n, 0f, c, n));
            Row("gemm_tn (covariance Kᵀ K)", $"{m}x{n}x{k}", 2.0 * m * n * k / dev / 1e9, 2.0 * m * n * k / host / 1e9, "GFLOP/s");
        }
        // Memory-bound row ops on [128, 3072] activations: bytes read + written.
        {
            int rows = 128, cols = 3072;
            var x = Rand(rows * cols, 6); var gamma = Rand(cols, 7); var beta = Rand(cols, 8);
            using var dx = be.Allocate(rows, cols); using var dy = be.Allocate(rows, cols);
            be.Upload(x, dx);
            var hx = new CpuTensor(rows, cols); x.CopyTo(hx.Data, 0); var hy = new CpuTensor(rows, cols);
            double bytes = 2.0 * rows * cols * 4;
            Row("layernorm", $"{rows}x{cols}", bytes / Time(() => { be.LayerNorm(dx, gamma, beta, 1e-5f, dy); be.Synchronize(); }) / 1e9,
                bytes / Time(() => cpu.LayerNorm(hx, gamma, beta, 1e-5f, hy)) / 1e9, "GB/s");
            Row("activate gelu_new (in place)", $"{rows}x{cols}", bytes / Time(() => { be.Activate(dx, Activation.GeluNew); be.Synchronize(); }) / 1e9,
                bytes / Time(() => cpu.Activate(hx, Activation.GeluNew)) / 1e9, "GB/s");
            Row("add", $"{rows}x{cols}", 1.5 * bytes / Time(() => { be.Add(dy, dx); be.Synchronize(); }) / 1e9,
                1.5 * bytes / Time(() => cpu.Add(hy, hx)) / 1e9, "GB/s");
        }
        // Attention over a 512-slot cache: 12 heads of 64, one query row per slot (prefill).
        {
            int heads = 12, hd = 64, t = 512, cols = 3 * heads * hd;
            var qkv = Rand((long)t * cols, 9);
            var ab = new AttentionBatch(1, t, 0, t, Enumerable.Repeat(true, t).ToArray());
            using var dq = be.Allocate(t, cols); using var dk = be.Allocate(t, heads * hd); using var dv = be.Allocate(t, heads * hd); using var dout = be.Allocate(t, heads * hd);
            be.Upload(qkv, dq);
            var hq = new CpuTensor(t, cols); qkv.CopyTo(hq.Data, 0);
            var hk = new CpuTensor(t, heads * hd); var hv = new CpuTensor(t, heads * hd); var ho = new CpuTensor(t, heads * hd);
            double flop = 4.0 * heads * hd * t * (t + 1) / 2; // QKᵀ and PV over the causal triangle
            Row("attention (causal prefill)", $"T{t} h{heads}x{hd}", flop / Time(() => { be.Attention(dq, heads, heads, hd, dk, dv, ab, dout); be.Synchronize(); }) / 1e9,
                flop / Time(() => cpu.Attention(hq, heads, heads, hd, hk, hv, ab, ho)) / 1e9, "GFLOP/s");
        }
    }

    static void EndToEnd(OpenClBackend be, int layers, int tokens)
    {
        // The same random GPT-2-small-sized weights for both devices (RandomModel, shared with the other benches).
        using var reference = RandomModel.Gpt2(layers);
        var config = reference.Config; var weights = reference.Weights;
        var ids = Enumerable.Range(0, tokens).Select(i => (i * 7919) % config.VocabSize).ToArray();
        Console.WriteLine($"{"device",-10} {"prefill " + tokens + " tok (ms)",22} {"tok/s",10} {"decode step (ms)",18}");
        foreach (var (name, backend) in new (string, IBackend)[] { ("cpu", CpuBackend.Instance), ("opencl", be) })
        {
            var model = new Transformer(config, weights, backend);
            double prefill = Best(() => model.Forward(TokenBatch.Single(ids), new ForwardOptions { Logits = LogitsMode.Last }));
            // Decoding steps after the prompt, each appending one token to the cache.
            using var cache = model.CreateCache(1, tokens + 8);
            model.Forward(TokenBatch.Single(ids), cache, new ForwardOptions { Logits = LogitsMode.None });
            double decode = Best(() => model.Forward(TokenBatch.Single(new[] { 42 }), cache, new ForwardOptions { Logits = LogitsMode.Last }));
            Console.WriteLine($"{name,-10} {prefill * 1e3,22:F1} {tokens / prefill,10:F1} {decode * 1e3,18:F1}");
        }
    }

    /// <summary>Best of two timed calls after a warm-up (whole forward passes are slow on CPU OpenCL devices).</summary>
    static double Best(Action body)
    {
        body();
        double best = double.MaxValue;
        for (int i = 0; i < 2; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }
}
