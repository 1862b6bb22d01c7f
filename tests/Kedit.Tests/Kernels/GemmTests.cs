using System.Numerics;
using System.Runtime.Intrinsics.X86;
using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>
/// Checks every GEMM code path (each available ISA, serial and split across threads, skinny and blocked)
/// against a naive double-accumulating reference on seeded random inputs, with strided storage whose
/// padding is poisoned with NaN so any read outside the logical matrix shows up in the result.
/// </summary>
public unsafe class GemmTests
{
    // (m, n, k): ragged against every tile size (14x32, 6x16, 4x4, skinny strips of 48 / 3 and groups of 8).
    private static readonly (int M, int N, int K)[] Shapes =
    {
        (1, 1, 1), (7, 13, 5), (15, 33, 17), (100, 1, 300), (1, 3072, 768), (65, 97, 513), (130, 70, 600),
        (16, 50, 40), (17, 45, 31), (300, 20, 200), (3, 200, 257), (29, 64, 1),
        // Few rows, untransposed B: each panel's first tile packs B as it computes (4 full tiles + 8 rows,
        // three depth blocks, a ragged last panel).
        (64, 200, 1100),
        // One row (decoding): ragged against the 4-row dot groups and 8-wide vectors, split across threads.
        (1, 103, 37), (1, 3001, 129),
    };

    public static IEnumerable<object[]> ShapeCases()
    {
        for (int s = 0; s < Shapes.Length; s++)
            foreach (bool ta in new[] { false, true })
                foreach (bool tb in new[] { false, true })
                    yield return new object[] { Shapes[s].M, Shapes[s].N, Shapes[s].K, ta, tb };
    }

    private static IEnumerable<GemmIsa> Isas()
    {
        yield return GemmIsa.Scalar;
        if (Avx2.IsSupported && Fma.IsSupported) yield return GemmIsa.Avx2;
        if (Avx512F.IsSupported) yield return GemmIsa.Avx512;
    }

    /// <summary>Column-major-free strided matrix: rows x cols logical, row stride ld, padding NaN.</summary>
    private sealed class Mat<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public readonly T[] Data;
        public readonly int Rows, Cols, Ld;
        public Mat(int rows, int cols, int pad, Random rng, bool poisonPadding = true)
        {
            Rows = rows; Cols = cols; Ld = Math.Max(cols + pad, 1);
            Data = new T[Math.Max(rows * Ld, 1)];
            for (int i = 0; i < Data.Length; i++)
                Data[i] = (i % Ld) < cols ? T.CreateChecked(rng.NextDouble() * 2 - 1) : poisonPadding ? T.NaN : T.Zero;
        }
        public double this[int r, int c] => double.CreateChecked(Data[r * Ld + c]);
    }

    /// <summary>Reference: alpha * op(A) * op(B) + beta * C0 accumulated in double.</summary>
    private static double[] Reference<T>(bool ta, bool tb, int m, int n, int k, double alpha, Mat<T> a, Mat<T> b, double beta, Mat<T> c0)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++)
                    s += (ta ? a[p, i] : a[i, p]) * (tb ? b[j, p] : b[p, j]);
                r[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * c0[i, j]);
            }
        return r;
    }

    /// <summary>Builds one seeded problem and its reference, then checks it on every (ISA, thread count) given.</summary>
    private static void CheckCase<T>(IEnumerable<(GemmIsa Isa, int Threads)> paths, bool ta, bool tb, int m, int n, int k,
        double alpha, double beta, int seed, double relTol, long packElements = 0) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        var a = ta ? new Mat<T>(k, m, 3, rng) : new Mat<T>(m, k, 5, rng);
        var b = tb ? new Mat<T>(n, k, 2, rng) : new Mat<T>(k, n, 7, rng);
        var c0 = new Mat<T>(m, n, 4, rng, poisonPadding: false);
        // C's padding carries a sentinel that must survive; beta = 0 must ignore NaN in C.
        for (int i = 0; i < c0.Data.Length; i++)
            if (i % c0.Ld >= n) c0.Data[i] = T.CreateChecked(12345);
            else if (beta == 0) c0.Data[i] = T.NaN;
        var expected = Reference(ta, tb, m, n, k, alpha, a, b, beta, c0);
        double tol = relTol * Math.Sqrt(Math.Max(k, 1)) * Math.Abs(alpha) + relTol * Math.Abs(beta) + 1e-30;

        foreach (var (isa, threads) in paths)
        {
            var c = (T[])c0.Data.Clone();
            fixed (T* pa = a.Data) fixed (T* pb = b.Data) fixed (T* pc = c)
                if (packElements == 0)
                    Gemm.Run(isa, threads, ta, tb, m, n, k, T.CreateChecked(alpha), pa, a.Ld, pb, b.Ld, T.CreateChecked(beta), pc, c0.Ld);
                else
                    RunBlocked(isa, threads, ta, tb, m, n, k, T.CreateChecked(alpha), pa, a.Ld, pb, b.Ld, T.CreateChecked(beta), pc, c0.Ld, packElements);
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double got = double.CreateChecked(c[i * c0.Ld + j]), want = expected[i * n + j];
                    if (!(Math.Abs(got - want) <= tol))
                        Assert.Fail($"{typeof(T).Name} {isa} threads={threads} transA={ta} transB={tb} m={m} n={n} k={k} " +
                                    $"alpha={alpha} beta={beta}: C[{i},{j}] = {got}, expected {want} (tol {tol:g3})");
                }
                for (int j = n; j < c0.Ld; j++)
                    Assert.Equal(12345.0, double.CreateChecked(c[i * c0.Ld + j]));
            }
        }
    }

    /// <summary>The blocked driver directly, with a chosen bound on the packed operand buffers.</summary>
    private static void RunBlocked<T>(GemmIsa isa, int threads, bool ta, bool tb, int m, int n, int k, T alpha,
        T* a, int lda, T* b, int ldb, T beta, T* c, int ldc, long packElements) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (isa)
        {
            case GemmIsa.Avx512:
                BlockedGemm<T, Avx512Kernel<T>>.Run(threads, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packElements);
                break;
            case GemmIsa.Avx2:
                BlockedGemm<T, Avx2Kernel<T>>.Run(threads, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packElements);
                break;
            default:
                BlockedGemm<T, ScalarKernel<T>>.Run(threads, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packElements);
                break;
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void BlockedDriverSplitsIntoSuperBlocksWhenPackedOperandsExceedTheirBudget(bool transA, bool transB)
    {
        // A budget of 30000 elements with k = 300 holds ~100 rows / columns per pass: several row and column
        // super-blocks, ragged at both ends, and more than one depth block; 3 threads leave uneven item counts.
        var paths = Isas().SelectMany(isa => new[] { (isa, 1), (isa, 3) }).ToArray();
        CheckCase<float>(paths, transA, transB, 410, 333, 300, 1.0, 0.0, 11, 1e-5, packElements: 30000);
        CheckCase<float>(paths, transA, transB, 410, 333, 300, -0.5, 2.0, 12, 1e-5, packElements: 30000);
        CheckCase<double>(paths, transA, transB, 230, 150, 270, 0.75, 1.0, 13, 1e-13, packElements: 20000);
    }

    [Fact]
    public void SharedPackPathMatchesReferenceForTallProducts()
    {
        // More rows than one row block (MC) of every kernel: packed B is shared by the threads' items.
        var paths = Isas().SelectMany(isa => new[] { (isa, 1), (isa, 2) }).ToArray();
        CheckCase<float>(paths, false, true, 700, 200, 520, 1.0, 1.0, 14, 1e-5);
        CheckCase<float>(paths, true, false, 690, 96, 260, 1.0, 0.0, 15, 1e-5);
    }

    private static IEnumerable<(GemmIsa, int)> AllPaths() =>
        Isas().SelectMany(isa => new[] { (isa, 1), (isa, 2) });

    [Theory]
    [MemberData(nameof(ShapeCases))]
    public void SgemmMatchesReferenceOnEveryPath(int m, int n, int k, bool transA, bool transB)
    {
        int seed = HashCode.Combine(m, n, k, transA, transB) & 0x7fffffff;
        CheckCase<float>(AllPaths(), transA, transB, m, n, k, 1.0, 0.0, seed, 1e-5);
        CheckCase<float>(AllPaths(), transA, transB, m, n, k, -0.75, 1.5, seed + 1, 1e-5);
    }

    [Theory]
    [MemberData(nameof(ShapeCases))]
    public void DgemmMatchesReferenceOnEveryPath(int m, int n, int k, bool transA, bool transB)
    {
        int seed = HashCode.Combine(n, m, k, transB, transA) & 0x7fffffff;
        CheckCase<double>(AllPaths(), transA, transB, m, n, k, 1.0, 0.0, seed, 1e-13);
        CheckCase<double>(AllPaths(), transA, transB, m, n, k, 0.5, -2.0, seed + 1, 1e-13);
    }

    [Fact]
    public void PublicSgemmUsesBestPathAndMatchesReference()
    {
        // Large enough to be split across threads and to span several KC / MC blocks.
        var best = new[] { (Gemm.Isa, Gemm.MaxThreads) };
        CheckCase<float>(best, false, true, 300, 260, 700, 1.0, 1.0, 7, 1e-5);
        CheckCase<float>(best, true, false, 9, 3000, 300, 2.0, 0.0, 8, 1e-5);
    }

    [Fact]
    public void ZeroDepthScalesCByBeta()
    {
        float[] c = { 1, 2, float.NaN, 4 };
        Gemm.Sgemm(false, false, 2, 2, 0, 1f, ReadOnlySpan<float>.Empty, 1, ReadOnlySpan<float>.Empty, 2, 0f, c, 2);
        Assert.Equal(new float[] { 0, 0, 0, 0 }, c);
        double[] d = { 1, 2, 3, 4 };
        Gemm.Dgemm(false, false, 2, 2, 0, 1.0, ReadOnlySpan<double>.Empty, 1, ReadOnlySpan<double>.Empty, 2, 3.0, d, 2);
        Assert.Equal(new double[] { 3, 6, 9, 12 }, d);
    }

    [Fact]
    public void ZeroAlphaNeverReadsInputs()
    {
        float[] a = { float.NaN, float.NaN }, b = { float.NaN, float.NaN }, c = { 2, 4 };
        Gemm.Sgemm(false, false, 1, 2, 1, 0f, a, 1, b, 2, 0.5f, c, 2);
        Assert.Equal(new float[] { 1, 2 }, c);
    }

    [Fact]
    public void SgemvMatchesReferenceBothOrientations()
    {
        var rng = new Random(11);
        int rows = 37, cols = 101, lda = 104;
        var a = new float[rows * lda];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        var x = new float[cols]; var xt = new float[rows];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < rows; i++) xt[i] = (float)(rng.NextDouble() * 2 - 1);

        var y = Enumerable.Repeat(1f, rows).ToArray();
        Gemm.Sgemv(false, rows, cols, 2f, a, lda, x, 0.5f, y);
        for (int i = 0; i < rows; i++)
        {
            double s = 0;
            for (int j = 0; j < cols; j++) s += (double)a[i * lda + j] * x[j];
            Assert.True(Math.Abs(2 * s + 0.5 - y[i]) < 1e-4, $"y[{i}] = {y[i]}, expected {2 * s + 0.5}");
        }

        var yt = new float[cols];
        Gemm.Sgemv(true, rows, cols, 1f, a, lda, xt, 0f, yt);
        for (int j = 0; j < cols; j++)
        {
            double s = 0;
            for (int i = 0; i < rows; i++) s += (double)a[i * lda + j] * xt[i];
            Assert.True(Math.Abs(s - yt[j]) < 1e-4, $"yt[{j}] = {yt[j]}, expected {s}");
        }
    }

    [Fact]
    public void AgreesWithMathNetOnLinearLayout()
    {
        // Independent check of the transB = true (nn.Linear [out, in]) convention against MathNet.
        var rng = new Random(5);
        int m = 5, k = 9, outF = 6;
        var x = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(m, k, (_, _) => rng.NextDouble() - 0.5);
        var w = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(outF, k, (_, _) => rng.NextDouble() - 0.5);
        var want = x * w.Transpose();
        var xa = new double[m * k]; var wa = new double[outF * k]; var got = new double[m * outF];
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) xa[i * k + p] = x[i, p];
        for (int o = 0; o < outF; o++) for (int p = 0; p < k; p++) wa[o * k + p] = w[o, p];
        Gemm.Dgemm(false, true, m, outF, k, 1.0, xa, k, wa, k, 0.0, got, outF);
        for (int i = 0; i < m; i++) for (int o = 0; o < outF; o++) Assert.Equal(want[i, o], got[i * outF + o], 12);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var buf = new float[64];
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, -1, 2, 2, 1f, buf, 2, buf, 2, 0f, buf, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, 2, 2, 4, 1f, buf, 3, buf, 2, 0f, buf, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, true, 2, 2, 4, 1f, buf, 4, buf, 2, 0f, buf, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Sgemm(false, false, 2, 5, 2, 1f, buf, 2, buf, 5, 0f, buf, 4));
        var small = new float[3];
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Sgemm(false, false, 2, 2, 2, 1f, small, 2, buf, 2, 0f, buf, 2));
        Assert.Contains("A has 3 elements", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.MaxThreads = 0);
    }
}
