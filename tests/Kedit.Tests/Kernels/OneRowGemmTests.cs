using System.Runtime.Intrinsics.X86;
using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>
/// The one-row (decoding) kernel, float32 and bfloat16 weights, against the plain scalar GEMM kernel on the same (widened)
/// values and a float64 reference: ragged against its 32- and 8-wide loops, its 4,096-column blocks and its chunks, with B's
/// row padding poisoned with NaN (a read past a row shows) and x taken with a stride (a transposed A). Its chunks depend
/// on the shape alone, so one, two and three threads, and bfloat16 against float32 on the widened values, agree bit for bit.
/// </summary>
public unsafe class OneRowGemmTests
{
    // The team runs every product here (the adaptive choice could hand small ones to the caller alone): its hand-offs
    // are what these tests check. Results never depend on it.
    public OneRowGemmTests() => RowTeam.Adaptive = false;

    public static TheoryData<int, int, bool> Cases()
    {
        var d = new TheoryData<int, int, bool>();
        foreach (var (n, k) in new[] { (1, 1), (5, 7), (33, 31), (97, 769), (4099, 9), (771, 3073), (2311, 768) })
            foreach (bool tb in new[] { false, true })
                d.Add(n, k, tb);
        return d;
    }

    [SkippableTheory, MemberData(nameof(Cases))]
    public void MatchesTheScalarKernelOnAnyThreadCountAndBf16MatchesF32BitForBit(int n, int k, bool transB)
    {
        Skip.IfNot(Avx2.IsSupported && Fma.IsSupported, "the one-row kernel needs AVX2 + FMA; this CPU takes the scalar GEMM");
        var rng = new Random(n * 31 + k);
        int bRows = transB ? n : k, bCols = transB ? k : n, ldb = bCols + 3, incx = 3;
        var bits = new ushort[(long)bRows * ldb];
        var wide = new float[bits.Length];
        for (int i = 0; i < bits.Length; i++)
        {
            float v = i % ldb < bCols ? (float)(rng.NextDouble() * 2 - 1) : float.NaN;
            bits[i] = (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16);
            wide[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
        }
        var x = new float[k * incx];
        for (int i = 0; i < x.Length; i++) x[i] = i % incx == 0 ? (float)(rng.NextDouble() * 2 - 1) : float.NaN;
        var y0 = new float[n];
        for (int j = 0; j < n; j++) y0[j] = (float)(rng.NextDouble() * 2 - 1);

        foreach (float beta in new[] { 0f, 0.5f })
        {
            float alpha = -1.25f;
            var reference = new double[n];
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++) s += (double)x[p * incx] * (transB ? wide[(long)j * ldb + p] : wide[(long)p * ldb + j]);
                reference[j] = alpha * s + beta * (double)y0[j];
            }
            float[] Run(Func<float[], float[]> product)
            {
                var y = (float[])y0.Clone();
                if (beta == 0) Array.Fill(y, float.NaN); // beta = 0 makes y write-only
                return product(y);
            }
            var scalar = Run(y =>
            {
                fixed (float* px = x) fixed (float* pb = wide) fixed (float* py = y)
                    Gemm.Run(GemmIsa.Scalar, 1, true, transB, 1, n, k, alpha, px, incx, pb, ldb, beta, py, n);
                return y;
            });
            float[]? first = null;
            foreach (int threads in new[] { 1, 2, 3 })
                foreach (bool bf16 in new[] { false, true })
                {
                    var y = Run(y =>
                    {
                        fixed (float* px = x) fixed (float* pw = wide) fixed (ushort* pb = bits) fixed (float* py = y)
                            if (bf16) OneRowGemm.Run<Bf16Weights>(threads, transB, n, k, alpha, px, incx, pb, ldb, beta, py);
                            else OneRowGemm.Run<F32Weights>(threads, transB, n, k, alpha, px, incx, pw, ldb, beta, py);
                        return y;
                    });
                    first ??= y;
                    for (int j = 0; j < n; j++)
                    {
                        double tol = 1e-6 * Math.Sqrt(k) * (1 + Math.Abs(reference[j]));
                        Assert.True(Math.Abs(y[j] - reference[j]) <= tol && Math.Abs(scalar[j] - reference[j]) <= tol,
                            $"threads {threads} bf16 {bf16} beta {beta}: y[{j}] = {y[j]}, scalar kernel {scalar[j]}, float64 {reference[j]}");
                        Assert.True(BitConverter.SingleToInt32Bits(y[j]) == BitConverter.SingleToInt32Bits(first[j]),
                            $"threads {threads} bf16 {bf16} beta {beta}: y[{j}] = {y[j]} differs from one thread's float32 {first[j]}");
                    }
                }
        }
    }

    [SkippableFact]
    public void ConcurrentCallersGetTheSameRowsAsOneCallerAlone()
    {
        // One team: a caller that finds it busy runs its product alone, with the same chunks.
        Skip.IfNot(Avx2.IsSupported && Fma.IsSupported, "the one-row kernel needs AVX2 + FMA; this CPU takes the scalar GEMM");
        const int n = 3072, k = 768;
        var rng = new Random(5);
        var b = new float[n * k];
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1);
        var xs = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();
        float[] Product(float[] x)
        {
            var y = new float[n];
            fixed (float* px = x) fixed (float* pb = b) fixed (float* py = y)
                OneRowGemm.Run<F32Weights>(2, false, n, k, 1f, px, 1, pb, n, 0f, py);
            return y;
        }
        var alone = xs.Select(Product).ToArray();
        var together = new float[xs.Length][][];
        Parallel.For(0, xs.Length, new ParallelOptions { MaxDegreeOfParallelism = xs.Length }, i =>
            together[i] = Enumerable.Range(0, 50).Select(_ => Product(xs[i])).ToArray());
        for (int i = 0; i < xs.Length; i++)
            foreach (var y in together[i])
                Assert.Equal(alone[i], y);
    }
}
