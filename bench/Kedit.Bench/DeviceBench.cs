// Device kernels vs the managed CPU kernels next to the machine's measured peak (FMA GFLOP/s, stream-copy
// GB/s), the editing linear algebra included, and end-to-end forward and edit timings per device.
// Prints measured rates only; never asserts timings; names every device it could not run and why.
// Every device is ILGPU's: cuda, opencl (where a device qualifies for ILGPU) and ilgpu-cpu.
// Usage: kedit-bench device [quick] [--devices opencl,cuda,ilgpu-cpu] [--layers N] [--tokens T]
using System.Diagnostics;
using Kedit.Backends;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Bench;

public static class DeviceBench
{
    public static void Run(string[] args)
    {
        s_quick = args.Contains("quick");
        int layers = IntArg(args, "--layers", s_quick ? 4 : 12), tokens = IntArg(args, "--tokens", 128);
        int di = Array.IndexOf(args, "--devices");
        var wanted = di >= 0 && di + 1 < args.Length ? args[di + 1].Split(',') : new[] { "opencl", "cuda", "ilgpu-cpu" };
        // Every device is tried; the ones that cannot run here are named with the reason, never silently dropped.
        var devices = new List<DeviceBackend>();
        var notRun = new List<string>();
        foreach (var name in wanted)
        {
            try { devices.Add((DeviceBackend)Devices.Create(name)); }
            catch (KeditException e) { notRun.Add($"{name} ({e.Message})"); }
        }
        int threads = Environment.ProcessorCount;
        s_flops = Peak.MeasureGflops(threads);
        s_bandwidth = Peak.MeasureBandwidth(threads);
        Console.WriteLine($"device bench: CPU reference: managed kernels, {threads} threads");
        Console.WriteLine($"machine peak: {s_flops:F0} GFLOP/s float32 FMA ({Peak.VectorName}), {s_flops / 2:F0} float64; stream copy {s_bandwidth:F1} GB/s");
        Console.WriteLine(notRun.Count == 0 ? "every requested device ran" : $"could not run: {string.Join("; ", notRun)}");
        foreach (var be in devices)
        {
            // ILGPU's CPU accelerator is a correctness runtime: shapes 1/8 of the others' (its rows are not comparable to them).
            bool small = be.Name == "ilgpu-cpu";
            Console.WriteLine();
            Console.WriteLine($"{be.Name}: {be.DeviceName}{(small ? " (shapes scaled down 8x: a correctness runtime, not a speed path)" : "")}");
            Console.WriteLine($"{"kernel",-36} {"shape",-22} {be.Name,10} {"cpu",10} {"peak",10} {"unit",8}");
            KernelRows(be, small ? 8 : 1);
            LinearAlgebraRows(be, small ? 8 : 1);
            if (small) { Console.WriteLine("(end-to-end rows not run on ilgpu-cpu: its forward passes take seconds at these shapes)"); continue; }
            Console.WriteLine();
            EndToEnd(be, layers, tokens);
        }
        foreach (var be in devices) be.Dispose();
    }

    static bool s_quick;
    static double s_flops, s_bandwidth;

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

    /// <summary>One kernel: device and CPU rates next to the roof that bounds them (FMA peak for GFLOP/s, stream copy for GB/s).</summary>
    static void Row(string kernel, string shape, double dev, double cpu, string unit, bool float64 = false)
    {
        double peak = unit == "GB/s" ? s_bandwidth : float64 ? s_flops / 2 : s_flops;
        Console.WriteLine($"{kernel,-36} {shape,-22} {Rate(dev),10} {Rate(cpu),10} {peak,10:F1} {unit,8}");
    }

    /// <summary>Two decimals, or three significant digits below 0.1 (the CPU accelerator's rates).</summary>
    static string Rate(double v) => v >= 0.1 ? v.ToString("F2") : v.ToString("G3");

    static unsafe void KernelRows(DeviceBackend be, int scale)
    {
        var cpu = CpuBackend.Instance;
        // GEMM through Linear (x·Wᵀ, nn.Linear layout) and through the plain Gemm entry.
        foreach (var (m, k, n) in new[] { (512 / scale, 512 / scale, 512 / scale), (128 / scale, 768 / scale, 3072 / scale), (128 / scale, 3072 / scale, 768 / scale), (1, 768 / scale, 3072 / scale) })
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
            else Row("linear (gemm_nt)", $"{m}x{k}->{n}", flop / dev / 1e9, flop / host / 1e9, "GFLOP/s");
        }
        // The same products with the weight held 16-bit (a BF16/F16 checkpoint): the device widens in its GEMM loads,
        // the CPU backend slab by slab (WideningGemm).
        foreach (var format in new[] { HalfFormat.BFloat16, HalfFormat.Float16 })
        {
            int m = 128 / scale, k = 768 / scale, n = 3072 / scale;
            var bits = Rand((long)k * n, 16).Select(v => format == HalfFormat.BFloat16 ? (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16) : BitConverter.HalfToUInt16Bits((Half)v)).ToArray();
            var w = new Linear("bench16", new WeightMatrix(bits, format), null, k, n, false);
            var x = Rand((long)m * k, 17);
            using var dx = be.Allocate(m, k); using var dy = be.Allocate(m, n);
            be.Upload(x, dx);
            var hx = new CpuTensor(m, k); x.CopyTo(hx.Data, 0); var hy = new CpuTensor(m, n);
            double flop = 2.0 * m * n * k;
            Row($"linear, {(format == HalfFormat.BFloat16 ? "BF16" : "F16")} weight widened", $"{m}x{k}->{n}", flop / Time(() => { be.Linear(dx, w, dy); be.Synchronize(); }) / 1e9,
                flop / Time(() => cpu.Linear(hx, w, hy)) / 1e9, "GFLOP/s");
        }
        {
            int m = 384 / scale, n = 384 / scale, k = 384 / scale;
            var a = Rand(m * k, 4); var b = Rand(k * n, 5); var c = new float[m * n];
            using var da = be.Allocate(m, k); using var db = be.Allocate(k, n); using var dc = be.Allocate(m, n);
            be.Upload(a, da); be.Upload(b, db);
            double dev = Time(() => { be.Gemm(true, false, da, db, dc); be.Synchronize(); });
            double host = Time(() => Gemm.Sgemm(true, false, m, n, k, 1f, a, m, b, n, 0f, c, n));
            Row("gemm_tn (covariance Kᵀ K)", $"{m}x{n}x{k}", 2.0 * m * n * k / dev / 1e9, 2.0 * m * n * k / host / 1e9, "GFLOP/s");
        }
        // Memory-bound row ops on [128, 3072] activations: bytes read + written.
        {
            int rows = 128 / scale, cols = 3072 / scale;
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
            int heads = 12, hd = 64, t = 512 / scale, cols = 3 * heads * hd;
            var qkv = Rand((long)t * cols, 9);
            var ab = new AttentionBatch(1, t, 0, t, Enumerable.Repeat(true, t).ToArray());
            using var dq = be.Allocate(t, cols); using var dk = be.Allocate(t, heads * hd); using var dv = be.Allocate(t, heads * hd); using var dout = be.Allocate(t, heads * hd);
            be.Upload(qkv, dq);
            var hq = new CpuTensor(t, cols); qkv.CopyTo(hq.Data, 0);
            var hk = new CpuTensor(t, heads * hd); var hv = new CpuTensor(t, heads * hd); var ho = new CpuTensor(t, heads * hd);
            double flop = 4.0 * heads * hd * t * (t + 1) / 2; // QKᵀ and PV over the causal triangle
            Row("attention (causal prefill)", $"T{t} h{heads}x{hd}", flop / Time(() => { be.Attention(dq, heads, heads, hd, 1f / MathF.Sqrt(hd), int.MaxValue, dk, dv, ab, dout); be.Synchronize(); }) / 1e9,
                flop / Time(() => cpu.Attention(hq, heads, heads, hd, 1f / MathF.Sqrt(hd), int.MaxValue, hk, hv, ab, ho)) / 1e9, "GFLOP/s");
        }
    }

    /// <summary>The editing linear algebra (DeviceLinearAlgebra) against the host float64 code it mirrors.</summary>
    static void LinearAlgebraRows(DeviceBackend be, int scale)
    {
        var la = new DeviceLinearAlgebra(be);
        if (!la.HasFloat64) Console.WriteLine($"(no float64 on this device: covariance falls back to float32 blocks, Cholesky rows skipped: {la.Float64Failure})");
        int f = (s_quick ? 1024 : 3072) / scale, d = (s_quick ? 256 : 768) / scale, n = 512 / scale;
        var rng = new Random(11);
        // Covariance: Σ k kᵀ of n key rows; flops of the full product 2·n·f² for both (the device computes one triangle).
        {
            var keys = Rand((long)n * f, 12);
            using var cov = la.CreateCovariance(f);
            using var dk = be.Allocate(n, f);
            be.Upload(keys, dk);
            var km = MatrixD.FromSingle(n, f, keys); var sum = new MatrixD(f, f);
            double flop = 2.0 * n * f * f;
            double dev = Time(() => { cov.Add(dk); be.Synchronize(); });
            double host = Time(() => DenseOps.Gemm(true, false, 1.0, km, km, 1.0, sum));
            Row($"covariance Σkkᵀ ({(cov.UsesFloat64 ? "f64, fused widen" : "f32 blocks")})", $"{n} keys x {f}", flop / dev / 1e9, flop / host / 1e9, "GFLOP/s", float64: true);
        }
        // Rank-k update of a stored [d, f] weight (r = 10, a MEMIT batch): bytes of W read and written.
        {
            int r = 10;
            var w = Rand((long)d * f, 13); var u = RandomD(d, r, rng); var v = RandomD(f, r, rng);
            using var dw = be.Allocate(d, f); using var du = be.Allocate(d, r); using var dv = be.Allocate(f, r);
            be.Upload(w, dw); be.Upload(Narrow(u), du); be.Upload(Narrow(v), dv);
            double bytes = 8.0 * d * f;
            double dev = Time(() => { la.RankKUpdate(dw, false, du, dv); be.Synchronize(); });
            // Host: ΔW = U Vᵀ in float64, then W += float(ΔW), as EditedLayer.AddDelta.
            double host = Time(() =>
            {
                var delta = MatrixD.Multiply(u, v, false, true);
                for (long i = 0; i < w.LongLength; i++) w[i] += (float)delta.Data[i];
            });
            Row("rank-k update W += U Vᵀ (r 10)", $"{d}x{f}", bytes / dev / 1e9, bytes / host / 1e9, "GB/s");
        }
        // Power iteration step (W v, Wᵀu) for σ_max: the device streams the float32 weight twice; the host
        // Lanczos (SpectralNorm) multiplies by a float64 copy, so its bytes are twice as many per element.
        {
            var w = Rand((long)d * f, 14);
            using var dw = be.Allocate(d, f); using var dx = be.Allocate(1, f); using var dy = be.Allocate(1, d);
            be.Upload(w, dw); be.Upload(Rand(f, 15), dx);
            var wm = MatrixD.FromSingle(d, f, w); var x = new double[f]; var y = new double[d];
            double dev = Time(() => { be.MatVec(dw, dx, dy); be.MatVec(dw, dy, dx, transpose: true); be.Synchronize(); });
            double host = Time(() => { DenseOps.MatVec(wm, x, y); DenseOps.MatTVec(wm, y, x); });
            Row("σ_max step (W v, Wᵀu)", $"{d}x{f}", 8.0 * d * f / dev / 1e9, 16.0 * d * f / host / 1e9, "GB/s");
            // Whole σ_max on a random (flat-spectrum) weight: device power iteration, device-product Lanczos, host Lanczos.
            var ds = la.SpectralNorm(dw); var dl = la.SpectralNormLanczos(dw); var hs = SpectralNorm.Largest(wm);
            double devPower = Time(() => la.SpectralNorm(dw)), devLanczos = Time(() => la.SpectralNormLanczos(dw)), hostSigma = Time(() => SpectralNorm.Largest(wm));
            Console.WriteLine($"  σ_max whole {d}x{f}: {be.Name} power {devPower * 1e3:F0} ms ({ds.Steps} steps, σ {ds.Value:G7}), {be.Name}-product Lanczos {devLanczos * 1e3:F0} ms ({dl.Steps} steps, σ {dl.Value:G7}), cpu Lanczos {hostSigma * 1e3:F0} ms ({hs.Steps} steps, σ {hs.Value:G7})");
        }
        if (!la.HasFloat64) return;
        // Cholesky of λ·C (f×f) and the MEMIT solve B ← B M⁻¹ for 10 key rows.
        {
            var x = RandomD(f + 16, f, rng);
            var a = MatrixD.Multiply(x, x, true, false);
            for (int i = 0; i < f; i++) a[i, i] += f;
            double flop = (double)f * f * f / 3;
            double dev = Time(() => { using var c = la.Factor(a); });
            double host = Time(() => CholeskyFactor.Factor(a));
            Row("cholesky (float64, incl. upload)", $"{f}x{f}", flop / dev / 1e9, flop / host / 1e9, "GFLOP/s", float64: true);
            using var dc = la.Factor(a); var hc = CholeskyFactor.Factor(a);
            var b = RandomD(10, f, rng);
            double sflop = 2.0 * 10 * f * f;
            double sdev = Time(() => dc.SolveRowsInPlace(b.Clone()));
            double shost = Time(() => hc.SolveRowsInPlace(b.Clone()));
            Row("cholesky solve, 10 rows (float64)", $"{f}x{f}", sflop / sdev / 1e9, sflop / shost / 1e9, "GFLOP/s", float64: true);
        }
    }

    static MatrixD RandomD(int rows, int cols, Random rng)
    {
        var m = new MatrixD(rows, cols);
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = rng.NextDouble() - 0.5;
        return m;
    }

    static float[] Narrow(MatrixD m) => m.Data.Select(v => (float)v).ToArray();

    static void EndToEnd(DeviceBackend be, int layers, int tokens)
    {
        // The same random GPT-2-architecture weights for both devices (RandomModel, shared with the other benches).
        int d = s_quick ? 512 : 768, vocab = s_quick ? 16384 : 50257;
        using var reference = RandomModel.Gpt2(layers, d, vocab);
        var config = reference.Config; var weights = reference.Weights;
        long matmulParams = config.Layers * 12L * d * d;
        double forwardFlops = tokens * (2.0 * matmulParams + 4.0 * config.Layers * d * tokens / 2) + 2.0 * d * vocab;
        Console.WriteLine($"end-to-end, random GPT-2-architecture model ({layers} layers, d {d}, {d / 64} heads, vocab {vocab})");
        var ids = Enumerable.Range(0, tokens).Select(i => (i * 7919) % config.VocabSize).ToArray();

        // Statistics for the edit once, on the CPU (more tokens than the key width, so C is positive definite).
        var rng = new Random(5);
        int editLayer = layers / 2;
        var stats = new Covariance(new[] { editLayer }, config.Intermediate);
        int docs = config.Intermediate / 64 + 8;
        stats.Accumulate(reference, Enumerable.Range(0, docs).Select(_ => Enumerable.Range(0, 64).Select(_ => rng.Next(vocab)).ToArray()));
        var requests = Enumerable.Range(0, 2).Select(_ => EditBench.RandomRequest(rng, vocab)).ToList();
        var hp = HParams.Parse($$"""{"layers": [{{editLayer}}], "fact_token": "subject_last", "v_num_grad_steps": 20, "v_lr": 0.5, "v_loss_layer": {{layers - 1}}, "v_weight_decay": 0.5, "clamp_norm_factor": 4, "kl_factor": 0.0625, "mom2_adjustment": true, "mom2_update_weight": 15000}""", EditMethod.Rome);

        Console.WriteLine($"{"device",-8} {"prefill " + tokens + " tok",16} {"GFLOP/s",9} {"% peak",7} {"decode step",12} {"rome edit",10} {"keys",8} {"z-opt",8} {"solve",8}");
        foreach (var (name, backend) in new (string, IBackend)[] { ("cpu", CpuBackend.Instance), (be.Name, be) })
        {
            var model = new Transformer(config, weights, backend);
            double prefill = Best(() => model.Forward(TokenBatch.Single(ids), new ForwardOptions { Logits = LogitsMode.Last }));
            // Decoding steps after the prompt, each appending one token to the cache.
            using var cache = model.CreateCache(1, tokens + 8);
            model.Forward(TokenBatch.Single(ids), cache, new ForwardOptions { Logits = LogitsMode.None });
            double decode = Best(() => model.Forward(TokenBatch.Single(new[] { 42 }), cache, new ForwardOptions { Logits = LogitsMode.Last }));
            // One ROME edit after a warm-up edit (which also factors C once); weights restored after each.
            var session = new EditSession(model, hp, stats, ContextTemplates.Bare);
            session.Apply(new[] { requests[0] });
            session.RestoreOriginal();
            var sw = Stopwatch.StartNew();
            var step = session.Apply(new[] { requests[1] });
            double edit = sw.Elapsed.TotalSeconds;
            session.RestoreOriginal();
            double gflops = forwardFlops / prefill / 1e9;
            Console.WriteLine($"{name,-8} {prefill * 1e3,13:F1} ms {gflops,9:F1} {100 * gflops / s_flops,6:F0}% {decode * 1e3,9:F1} ms {edit * 1e3,7:F0} ms {step.KeySeconds * 1e3,5:F0} ms {step.TargetSeconds * 1e3,5:F0} ms {step.SolveSeconds * 1e3,5:F0} ms");
            double decodeBytes = (matmulParams + (long)d * vocab) * 4.0;
            var phases = new[] { ("keys (forward passes)", step.KeySeconds), ("z-optimisation (forward + backward tape)", step.TargetSeconds), ("solve (host float64)", step.SolveSeconds) };
            var (slowest, slowestSeconds) = phases.MaxBy(p => p.Item2);
            Console.WriteLine($"  {name} limits: prefill at {100 * gflops / s_flops:F0}% of the FMA peak; decode streams weights at {decodeBytes / decode / 1e9:F1} GB/s " +
                $"({100 * decodeBytes / decode / 1e9 / s_bandwidth:F0}% of stream copy); edit dominated by {slowest} ({100 * slowestSeconds / edit:F0}%)");
        }
    }

    /// <summary>Best of two timed calls after a warm-up (whole forward passes are slow on CPU devices).</summary>
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
