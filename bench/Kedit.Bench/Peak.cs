using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Bench;

/// <summary>
/// Measures the machine's attainable floating-point peak with a register-only FMA loop, so other
/// benchmarks can report their throughput as a fraction of what this machine can really do.
/// </summary>
public static class Peak
{
    private const int Accumulators = 12;
    private static float s_sink;

    /// <summary>
    /// Single-precision GFLOP/s (an FMA counts as 2 flops) of <paramref name="threads"/> threads each
    /// running 12 independent FMA chains on the widest vectors available (Vector512, else Vector256).
    /// Each thread runs for about <paramref name="seconds"/> in ~2 ms chunks and keeps its best chunk, so
    /// the figure is what the cores deliver when they are not being shared; the result is the sum over threads.
    /// </summary>
    public static double MeasureGflops(int threads, double seconds = 0.3)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "need at least one thread");
        long chunk = Calibrate(0.002);
        var best = new double[threads];
        using var start = new Barrier(threads);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            workers[t] = new Thread(() =>
            {
                start.SignalAndWait();
                var total = Stopwatch.StartNew();
                while (total.Elapsed.TotalSeconds < seconds)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    Spin(chunk);
                    double rate = (double)chunk * FlopsPerIteration / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9;
                    best[id] = Math.Max(best[id], rate);
                }
            }) { IsBackground = true };
            workers[t].Start();
        }
        foreach (var w in workers) w.Join();
        return best.Sum();
    }

    /// <summary>
    /// Attainable memory bandwidth in GB/s (bytes read + bytes written) of a stream copy: <paramref name="threads"/>
    /// threads each copy their slice of a 64 MiB source (well past any cache) into a destination; best of the
    /// repetitions in about <paramref name="seconds"/>. The roof for memory-bound kernels (row ops, matvec, rank-k updates).
    /// </summary>
    public static unsafe double MeasureBandwidth(int threads, double seconds = 0.3)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "need at least one thread");
        const long bytes = 64L << 20;
        var src = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        var dst = GC.AllocateUninitializedArray<byte>((int)bytes, pinned: true);
        Array.Fill(src, (byte)1); Array.Fill(dst, (byte)0);   // touch every page before timing
        double best = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds || best == 0)
        {
            long t0 = Stopwatch.GetTimestamp();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long a = bytes * t / threads, b = bytes * (t + 1) / threads;
                fixed (byte* s = &src[a]) fixed (byte* d = &dst[a]) Buffer.MemoryCopy(s, d, b - a, b - a);
            });
            best = Math.Max(best, 2.0 * bytes / Stopwatch.GetElapsedTime(t0).TotalSeconds / 1e9);
        }
        return best;
    }

    /// <summary>Attainable read bandwidth in GB/s over a fresh 256 MiB buffer; see <see cref="MeasureReadBandwidth(int, IReadOnlyList{Array}, double)"/>.</summary>
    public static double MeasureReadBandwidth(int threads, double seconds = 0.5)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(256 << 20, pinned: true);
        Array.Fill(buffer, (byte)1);   // touch every page before timing
        return MeasureReadBandwidth(threads, [buffer], seconds);
    }

    /// <summary>
    /// Attainable read bandwidth in GB/s (bytes read; nothing written) over the given arrays as they lie in memory (e.g.
    /// a model's weight matrices): <paramref name="threads"/> threads, started together for each pass, each sum their
    /// own contiguous share of every array in turn (no synchronisation between arrays) with four independent 256-bit
    /// accumulators. A pass's wall time runs from the first thread's start to the last one's finish (each thread's own
    /// clock readings: a preempted coordinator cannot shorten it); best pass in about <paramref name="seconds"/>.
    /// The roof for decoding, which reads exactly such arrays once per token and writes next to nothing.
    /// </summary>
    public static unsafe double MeasureReadBandwidth(int threads, IReadOnlyList<Array> arrays, double seconds = 0.5)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "need at least one thread");
        var handles = arrays.Select(a => GCHandle.Alloc(a, GCHandleType.Pinned)).ToArray();
        try
        {
            // Each thread's share of each array, in whole 32-float blocks (a ragged tail of < 128 bytes an array is not read).
            var shares = new (nint Start, long Floats)[threads][];
            double bytes = 0;
            for (int t = 0; t < threads; t++)
            {
                shares[t] = new (nint, long)[arrays.Count];
                for (int i = 0; i < arrays.Count; i++)
                {
                    long floats = Buffer.ByteLength(arrays[i]) / 4 / 32 * 32;
                    long first = floats * t / threads / 32 * 32, end = floats * (t + 1) / threads / 32 * 32;
                    shares[t][i] = (handles[i].AddrOfPinnedObject() + (nint)(first * 4), end - first);
                    bytes += 4.0 * (end - first);
                }
            }
            double best = 0;
            bool stop = false;
            using var start = new Barrier(threads + 1);
            using var finish = new Barrier(threads + 1);
            var began = new long[threads];
            var ended = new long[threads];
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                workers[t] = new Thread(() =>
                {
                    while (true)
                    {
                        start.SignalAndWait();
                        if (Volatile.Read(ref stop)) return;
                        began[id] = Stopwatch.GetTimestamp();
                        float sum = 0;
                        foreach (var (p, n) in shares[id]) sum += SumFloats((float*)p, n);
                        ended[id] = Stopwatch.GetTimestamp();
                        s_sink += sum;
                        finish.SignalAndWait();
                    }
                }) { IsBackground = true };
                workers[t].Start();
            }
            var total = Stopwatch.StartNew();
            while (total.Elapsed.TotalSeconds < seconds || best == 0)
            {
                start.SignalAndWait();
                finish.SignalAndWait();
                best = Math.Max(best, bytes / ((ended.Max() - began.Min()) / (double)Stopwatch.Frequency) / 1e9);
            }
            Volatile.Write(ref stop, true);
            start.SignalAndWait();
            foreach (var w in workers) w.Join();
            return best;
        }
        finally
        {
            foreach (var h in handles) h.Free();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe float SumFloats(float* f, long n)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (long i = 0; i < n; i += 32)
        {
            a0 += Vector256.Load(f + i); a1 += Vector256.Load(f + i + 8);
            a2 += Vector256.Load(f + i + 16); a3 += Vector256.Load(f + i + 24);
        }
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>Width of the vectors the peak loop uses, for display.</summary>
    public static string VectorName => Avx512F.IsSupported ? "Vector512" : Fma.IsSupported ? "Vector256" : "scalar";

    private static int FlopsPerIteration =>
        Accumulators * 2 * (Avx512F.IsSupported ? 16 : Fma.IsSupported ? 8 : 1);

    private static long Calibrate(double seconds)
    {
        long n = 1 << 12;
        double fastest = double.MaxValue;
        for (int i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            Spin(n);
            fastest = Math.Min(fastest, sw.Elapsed.TotalSeconds);
            if (fastest < 0.0005) { n *= 2; fastest = double.MaxValue; }
        }
        return Math.Max(1, (long)(n * seconds / fastest));
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Spin(long iterations)
    {
        if (Avx512F.IsSupported) Spin512(iterations);
        else if (Fma.IsSupported) Spin256(iterations);
        else SpinScalar(iterations);
    }

    // acc = acc * x + y with x just below 1 converges to a normal value: no overflow, no denormal slowdowns.
    private static void Spin512(long iterations)
    {
        var x = Vector512.Create(0.999999f); var y = Vector512.Create(1e-6f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
            a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, x, y); a1 = Avx512F.FusedMultiplyAdd(a1, x, y);
            a2 = Avx512F.FusedMultiplyAdd(a2, x, y); a3 = Avx512F.FusedMultiplyAdd(a3, x, y);
            a4 = Avx512F.FusedMultiplyAdd(a4, x, y); a5 = Avx512F.FusedMultiplyAdd(a5, x, y);
            a6 = Avx512F.FusedMultiplyAdd(a6, x, y); a7 = Avx512F.FusedMultiplyAdd(a7, x, y);
            a8 = Avx512F.FusedMultiplyAdd(a8, x, y); a9 = Avx512F.FusedMultiplyAdd(a9, x, y);
            a10 = Avx512F.FusedMultiplyAdd(a10, x, y); a11 = Avx512F.FusedMultiplyAdd(a11, x, y);
        }
        s_sink = Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static void Spin256(long iterations)
    {
        var x = Vector256.Create(0.999999f); var y = Vector256.Create(1e-6f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
            a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, x, y); a1 = Fma.MultiplyAdd(a1, x, y);
            a2 = Fma.MultiplyAdd(a2, x, y); a3 = Fma.MultiplyAdd(a3, x, y);
            a4 = Fma.MultiplyAdd(a4, x, y); a5 = Fma.MultiplyAdd(a5, x, y);
            a6 = Fma.MultiplyAdd(a6, x, y); a7 = Fma.MultiplyAdd(a7, x, y);
            a8 = Fma.MultiplyAdd(a8, x, y); a9 = Fma.MultiplyAdd(a9, x, y);
            a10 = Fma.MultiplyAdd(a10, x, y); a11 = Fma.MultiplyAdd(a11, x, y);
        }
        s_sink = Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    private static void SpinScalar(long iterations)
    {
        float x = 0.999999f, y = 1e-6f;
        float a0 = 1, a1 = 1, a2 = 1, a3 = 1, a4 = 1, a5 = 1, a6 = 1, a7 = 1, a8 = 1, a9 = 1, a10 = 1, a11 = 1;
        for (long i = 0; i < iterations; i++)
        {
            a0 = MathF.FusedMultiplyAdd(a0, x, y); a1 = MathF.FusedMultiplyAdd(a1, x, y);
            a2 = MathF.FusedMultiplyAdd(a2, x, y); a3 = MathF.FusedMultiplyAdd(a3, x, y);
            a4 = MathF.FusedMultiplyAdd(a4, x, y); a5 = MathF.FusedMultiplyAdd(a5, x, y);
            a6 = MathF.FusedMultiplyAdd(a6, x, y); a7 = MathF.FusedMultiplyAdd(a7, x, y);
            a8 = MathF.FusedMultiplyAdd(a8, x, y); a9 = MathF.FusedMultiplyAdd(a9, x, y);
            a10 = MathF.FusedMultiplyAdd(a10, x, y); a11 = MathF.FusedMultiplyAdd(a11, x, y);
        }
        s_sink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    }
}
