using System.Diagnostics;
using System.Runtime.InteropServices;
using Kedit.Kernels.Cpu;

namespace Kedit.Bench;

/// <summary>
/// `kedit-bench gemm [quick]`: measures the machine's FMA peak, then GEMM throughput on the shapes the
/// engine runs (square, a 64-token batch through a 768x3072 MLP weight, and 1- and 8-token decoding),
/// each as a percentage of the measured all-thread peak. Prints numbers, never asserts on them.
/// On a shared machine the wall-clock figure mostly measures the other load; the "%core" column divides
/// the flops by the CPU time the process actually got (best run), against the 1-thread peak: the
/// efficiency of the code while it runs, which the load average (printed) disturbs far less. With two
/// threads Linux brings the other thread's CPU time up to date only at scheduler ticks (~4 ms), so %core
/// is only indicative for calls much longer than that (the square cases, not the decoding ones).
/// </summary>
public static class GemmBench
{
    /// <summary>
    /// Args: <c>quick</c> (shorter runs, no 2048 case), <c>threads=N</c> (cap GEMM threads),
    /// <c>case=TEXT</c> (only cases whose name contains TEXT).
    /// </summary>
    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        var threadArg = args.FirstOrDefault(a => a.StartsWith("threads="));
        if (threadArg != null) Gemm.MaxThreads = int.Parse(threadArg["threads=".Length..]);
        int threads = Gemm.MaxThreads;
        double peak1 = Peak.MeasureGflops(1);
        double peakAll = Peak.MeasureGflops(threads);
        Console.WriteLine($"GEMM  isa={Gemm.Isa}  threads={threads}  peak ({Peak.VectorName} FMA loop): " +
                          $"1 thread {peak1:F0} GFLOP/s, {threads} threads {peakAll:F0} GFLOP/s");
        double bandwidth = Peak.MeasureBandwidth(threads);
        Console.WriteLine($"stream bandwidth ({threads} threads): {bandwidth:F1} GB/s; few-row cases also as %bw, B's bytes per second against it");
        if (File.Exists("/proc/loadavg")) Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"{"case",-34} {"ms",9} {"GFLOP/s",9} {"%peak",6} {"%core",6} {"GB/s(B)",8} {"%bw",5}");

        Console.WriteLine($"caches (CPUID): L1d {CpuCaches.L1d >> 10} KiB, L2 {CpuCaches.L2 >> 10} KiB; blocking " + Gemm.Isa switch
        {
            GemmIsa.Avx512 => $"{Avx512Kernel<float>.MR}x{Avx512Kernel<float>.NR}, KC {Avx512Kernel<float>.KC}, MC {Avx512Kernel<float>.MC}",
            GemmIsa.Avx2 => $"{Avx2Kernel<float>.MR}x{Avx2Kernel<float>.NR}, KC {Avx2Kernel<float>.KC}, MC {Avx2Kernel<float>.MC}",
            _ => "scalar 4x4",
        });
        if (Gemm.Isa != GemmIsa.Scalar)
        {
            double kg = Gemm.Isa == GemmIsa.Avx512 ? KernelOnlyGflops<Avx512Kernel<float>>(quick ? 0.15 : 0.4) : KernelOnlyGflops<Avx2Kernel<float>>(quick ? 0.15 : 0.4);
            string shape = Gemm.Isa == GemmIsa.Avx512 ? "14x32" : "6x16";
            Console.WriteLine($"{"micro-kernel " + shape + ", packed in cache",-34} {"",9} {kg,9:F1} {100 * kg / peak1,5:F0}% (of 1-thread peak)");
        }

        var cases = new List<(string Name, bool TA, bool TB, int M, int N, int K, bool Skinny)>
        {
            ("sq 1024 NN", false, false, 1024, 1024, 1024, false),
            ("sq 1024 NT", false, true, 1024, 1024, 1024, false),
            ("sq 2048 NN", false, false, 2048, 2048, 2048, false),
            ("[64x768]x[768x3072] Conv1D (NN)", false, false, 64, 3072, 768, false),
            ("[64x768]x[3072x768]^T Linear (NT)", false, true, 64, 3072, 768, false),
            ("m=1 x[768x3072] Conv1D (NN)", false, false, 1, 3072, 768, true),
            ("m=1 x[3072x768]^T Linear (NT)", false, true, 1, 3072, 768, true),
            ("m=8 x[768x3072] Conv1D (NN)", false, false, 8, 3072, 768, true),
            ("m=8 x[3072x768]^T Linear (NT)", false, true, 8, 3072, 768, true),
        };
        if (quick) cases.RemoveAll(c => c.M == 2048);
        var only = args.FirstOrDefault(a => a.StartsWith("case="));
        if (only != null) cases.RemoveAll(c => !c.Name.Contains(only["case=".Length..]));

        foreach (var c in cases)
        {
            var (sec, cpuSec) = Time(c.TA, c.TB, c.M, c.N, c.K, quick ? 0.15 : 0.5);
            double gflops = 2.0 * c.M * c.N * c.K / sec / 1e9;
            double perCore = 2.0 * c.M * c.N * c.K / cpuSec / 1e9;
            string gbs = c.Skinny ? $"{4.0 * c.N * c.K / sec / 1e9,8:F1} {100 * 4.0 * c.N * c.K / sec / 1e9 / bandwidth,4:F0}%" : "";
            // CPU time of the second thread is only brought up to date at scheduler ticks: below ~20 ms a
            // call's %core can read over 100 %, so it is left out there (one thread has no such lag).
            string core = sec >= 0.02 || threads == 1 ? $"{100 * perCore / peak1,5:F0}%" : $"{"-",6}";
            Console.WriteLine($"{c.Name,-34} {sec * 1e3,9:F3} {gflops,9:F1} {100 * gflops / peakAll,5:F0}% {core} {gbs}");
        }

        // A model's weights do not stay in cache between uses (GPT-2-small's are 340 MB): the same few-row
        // products with B cycled through 32 distinct matrices (300 MB), as a forward or compute_z meets them.
        // One row with cold B is decoding's case: bound by memory, so %bw is its figure.
        foreach (var (name, tb, m) in new[] { ("[64x768]x[768x3072] NN, cold B", false, 64), ("[64x768]x[3072x768]^T NT, cold B", true, 64),
                     ("m=1 x[768x3072] NN, cold B", false, 1), ("m=1 x[3072x768]^T NT, cold B", true, 1) })
        {
            if (only != null && !name.Contains(only["case=".Length..])) continue;
            double sec = TimeColdB(tb, m, 3072, 768, 32, quick ? 2 : 5);
            double gflops = 2.0 * m * 3072 * 768 / sec / 1e9;
            Console.WriteLine($"{name,-34} {sec * 1e3,9:F3} {gflops,9:F1} {100 * gflops / peakAll,5:F0}% {"-",6} {4.0 * 3072 * 768 / sec / 1e9,8:F1} {100 * 4.0 * 3072 * 768 / sec / 1e9 / bandwidth,4:F0}%");
        }
    }

    /// <summary>
    /// Time of one call with B taken in turn from <paramref name="copies"/> distinct matrices, over <paramref name="rounds"/>
    /// rounds: the fastest call, each on a B last used <paramref name="copies"/> - 1 calls before (so never in cache), which
    /// on a shared machine is the call that ran undisturbed (the mean of a round measures the other load).
    /// </summary>
    private static unsafe double TimeColdB(bool tb, int m, int n, int k, int copies, int rounds)
    {
        var rng = new Random(2);
        long bLen = (long)k * n;
        var a = new float[m * k]; var c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        var bs = new float*[copies];
        for (int q = 0; q < copies; q++)
        {
            bs[q] = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(bLen * sizeof(float)), 64);
            for (long i = 0; i < bLen; i++) bs[q][i] = (float)rng.NextDouble() - 0.5f;
        }
        int ldb = tb ? k : n;
        try
        {
            fixed (float* pa = a) fixed (float* pc = c)
            {
                var warm = Stopwatch.StartNew();
                for (int w = 0; w < copies || warm.Elapsed.TotalSeconds < 0.25; w++) Gemm.Sgemm(false, tb, m, n, k, 1f, pa, k, bs[w % copies], ldb, 0f, pc, n);
                double best = double.MaxValue;
                for (int r = 0; r < rounds; r++)
                    for (int q = 0; q < copies; q++)
                    {
                        long t0 = Stopwatch.GetTimestamp();
                        Gemm.Sgemm(false, tb, m, n, k, 1f, pa, k, bs[q], ldb, 0f, pc, n);
                        best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
                    }
                return best;
            }
        }
        finally
        {
            foreach (var b in bs) System.Runtime.InteropServices.NativeMemory.AlignedFree(b);
        }
    }

    /// <summary>Throughput of the selected micro-kernel alone (one thread, packed panels already in cache).</summary>
    private static unsafe double KernelOnlyGflops<TK>(double budget) where TK : struct, IGemmKernel<float>
    {
        const int kc = 256, panels = 8;
        int mr = TK.MR, nr = TK.NR;
        var ap = new float[panels * mr * kc]; var bp = new float[nr * kc]; var c = new float[panels * mr * nr];
        for (int i = 0; i < ap.Length; i++) ap[i] = 1e-3f * (i % 7);
        for (int i = 0; i < bp.Length; i++) bp[i] = 1e-3f * (i % 5);
        double best = 0;
        fixed (float* pa = ap) fixed (float* pb = bp) fixed (float* pc = c)
        {
            var total = Stopwatch.StartNew();
            while (total.Elapsed.TotalSeconds < budget)
            {
                long t0 = Stopwatch.GetTimestamp();
                for (int rep = 0; rep < 50; rep++)
                    for (int p = 0; p < panels; p++)
                        TK.Run(mr, kc, pa + p * mr * kc, pb, pc + p * mr * nr, nr, 1f, 0f);
                double sec = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                best = Math.Max(best, 50.0 * panels * 2 * mr * nr * kc / sec / 1e9);
            }
        }
        return best;
    }

    /// <summary>
    /// Best wall time and best process CPU time of one GEMM call over repeated runs lasting about
    /// <paramref name="budget"/> seconds.
    /// </summary>
    private static unsafe (double Wall, double Cpu) Time(bool ta, bool tb, int m, int n, int k, double budget)
    {
        var rng = new Random(1);
        var a = new float[m * k]; var b = new float[k * n]; var c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble() - 0.5f;
        int lda = ta ? m : k, ldb = tb ? k : n;
        double best = double.MaxValue, bestCpu = double.MaxValue;
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
        {
            // Warm up by time, not by count: the JIT swaps in optimised code only after ~100 ms of calls,
            // and three calls of a small product timed tier-0 code at a third of the speed.
            var warm = Stopwatch.StartNew();
            for (int w = 0; w < 3 || warm.Elapsed.TotalSeconds < 0.25; w++) Gemm.Sgemm(ta, tb, m, n, k, 1f, pa, lda, pb, ldb, 0f, pc, n);
            var total = Stopwatch.StartNew();
            int reps = 0;
            while (reps < 5 || total.Elapsed.TotalSeconds < budget)
            {
                double cpu0 = ProcessCpuSeconds();
                long t0 = Stopwatch.GetTimestamp();
                Gemm.Sgemm(ta, tb, m, n, k, 1f, pa, lda, pb, ldb, 0f, pc, n);
                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
                bestCpu = Math.Min(bestCpu, ProcessCpuSeconds() - cpu0);
                reps++;
            }
        }
        return (best, Math.Max(bestCpu, 1e-9));
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Sec, Nsec; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGettime(int clock, out Timespec ts);

    /// <summary>
    /// CPU seconds this process has used, all threads. On Linux from CLOCK_PROCESS_CPUTIME_ID (nanoseconds):
    /// Process.TotalProcessorTime there counts 10 ms ticks, too coarse for one GEMM call.
    /// </summary>
    internal static double ProcessCpuSeconds()
    {
        const int ClockProcessCpuTimeId = 2;
        if (OperatingSystem.IsLinux() && ClockGettime(ClockProcessCpuTimeId, out var ts) == 0)
            return ts.Sec + ts.Nsec * 1e-9;
        using var self = Process.GetCurrentProcess();
        return self.TotalProcessorTime.TotalSeconds;
    }
}
