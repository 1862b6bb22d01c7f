using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// Float64 matrix multiply used by all editing linear algebra: a packed, cache-blocked GEMM with an
/// 8×16 (AVX-512) or 6×8 (AVX2) FMA register tile, split over the available cores for large products.
/// Self-contained on purpose (does not use the Kernels GEMM) so the solvers can be tested on their own.
/// </summary>
public static unsafe class DenseOps
{
    /// <summary>C = alpha·op(A)·op(B) + beta·C, where op transposes when the flag is set.</summary>
    public static void Gemm(bool transA, bool transB, double alpha, MatrixD a, MatrixD b, double beta, MatrixD c)
    {
        ArgumentNullException.ThrowIfNull(a); ArgumentNullException.ThrowIfNull(b); ArgumentNullException.ThrowIfNull(c);
        int m = transA ? a.Cols : a.Rows, k = transA ? a.Rows : a.Cols;
        int kb = transB ? b.Cols : b.Rows, n = transB ? b.Rows : b.Cols;
        if (k != kb) throw new ArgumentException($"inner dimensions differ: op(A) is {m}×{k}, op(B) is {kb}×{n}", nameof(b));
        MatrixD.RequireShape(c, m, n, nameof(c));
        if (ReferenceEquals(c, a) || ReferenceEquals(c, b)) throw new ArgumentException("C must not alias A or B", nameof(c));
        fixed (double* pa = a.Data) fixed (double* pb = b.Data) fixed (double* pc = c.Data)
            Gemm(transA, transB, m, n, k, alpha, pa, a.Cols, pb, b.Cols, beta, pc, c.Cols);
    }

    /// <summary>y = A x for the rows×cols matrix A (x has length cols, y length rows); parallel over rows when large.</summary>
    public static void MatVec(MatrixD a, ReadOnlySpan<double> x, Span<double> y)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (x.Length != a.Cols || y.Length != a.Rows)
            throw new ArgumentException($"matrix-vector shapes differ: A is {a.Rows}×{a.Cols}, x has {x.Length}, y has {y.Length}");
        var xa = x.ToArray();
        var ya = new double[a.Rows];
        int cols = a.Cols;
        ParallelRanges(a.Rows, 2.0 * cols, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++) ya[r] = VectorOps.Dot(a.Data.AsSpan(r * cols, cols), xa);
        });
        ya.CopyTo(y);
    }

    /// <summary>y = Aᵀ x for the rows×cols matrix A (x has length rows, y length cols).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatTVec(MatrixD a, ReadOnlySpan<double> x, Span<double> y)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (x.Length != a.Rows || y.Length != a.Cols)
            throw new ArgumentException($"matrix-vector shapes differ: Aᵀ is {a.Cols}×{a.Rows}, x has {x.Length}, y has {y.Length}");
        int cols = a.Cols;
        y.Clear();
        for (int r = 0; r < a.Rows; r++)
            if (x[r] != 0) VectorOps.Axpy(x[r], a.Data.AsSpan(r * cols, cols), y);
    }

    /// <summary>Worker threads used for large operations (default: all logical cores).</summary>
    public static int MaxThreads { get => _maxThreads; set => _maxThreads = Math.Max(1, value); }
    static int _maxThreads = Math.Max(1, Environment.ProcessorCount);

    const double ParallelFlops = 2e6;

    /// <summary>
    /// Raw GEMM on row-major storage with row strides lda/ldb/ldc. op(A) is m×k (A stored k×m when
    /// transA), op(B) is k×n (B stored n×k when transB). C must not overlap A or B. One float64 GEMM
    /// serves the whole engine: the packed SIMD kernel of Kedit.Kernels.
    /// </summary>
    internal static void Gemm(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, int lda, double* b, int ldb, double beta, double* c, int ldc)
    {
        if (m <= 0 || n <= 0) return;
        // Empty factors (k = 0) come with zero strides; the kernel then only scales C by beta.
        Kedit.Kernels.Cpu.Gemm.Dgemm(transA, transB, m, n, k, alpha, a, Math.Max(1, lda), b, Math.Max(1, ldb), beta, c, Math.Max(1, ldc));
    }

    /// <summary>C += alpha·op(A)·op(B) for callers inside their own parallel loops (the kernel keeps small products on the calling thread).</summary>
    internal static void GemmSerial(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, int lda, double* b, int ldb, double* c, int ldc) => Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, 1.0, c, ldc);


    /// <summary>Runs <paramref name="body"/> over [0, count) in contiguous chunks on up to MaxThreads threads.</summary>
    internal static void ParallelRanges(int count, double workPerItem, Action<int, int> body)
    {
        int threads = Math.Min(MaxThreads, count);
        if (threads <= 1 || count * workPerItem < ParallelFlops) { if (count > 0) body(0, count); return; }
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            int i0 = (int)((long)count * t / threads), i1 = (int)((long)count * (t + 1) / threads);
            if (i1 > i0) body(i0, i1);
        });
    }
}
