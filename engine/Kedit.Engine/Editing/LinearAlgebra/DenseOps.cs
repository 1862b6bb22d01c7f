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

    // Register tile: MR rows of op(A) × NR columns of op(B). Static readonly → JIT constants.
    static readonly bool Wide = Vector512.IsHardwareAccelerated;
    internal static readonly int MR = Wide ? 8 : 6;
    internal static readonly int NR = Wide ? 16 : 8;
    const int KC = 256;
    const int MC = 96;      // multiple of both MR choices (8, 6)
    const int NC = 2048;
    const double ParallelFlops = 2e6;

    /// <summary>
    /// Raw GEMM on row-major storage with row strides lda/ldb/ldc. op(A) is m×k (A stored k×m when
    /// transA), op(B) is k×n (B stored n×k when transB). C must not overlap A or B.
    /// </summary>
    internal static void Gemm(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, int lda, double* b, int ldb, double beta, double* c, int ldc)
    {
        if (m <= 0 || n <= 0) return;
        if (beta != 1.0)
            for (int i = 0; i < m; i++)
            {
                var row = new Span<double>(c + (long)i * ldc, n);
                if (beta == 0.0) row.Clear(); else VectorOps.Scale(beta, row);
            }
        if (k <= 0 || alpha == 0.0) return;
        if (k <= SmallK && !transB) { SmallKUpdate(transA, m, n, k, alpha, a, lda, b, ldb, c, ldc); return; }

        int threads = (double)m * n * k < ParallelFlops ? 1 : MaxThreads;
        if (threads > 1)
        {
            bool splitN = n >= m;
            int units = splitN ? (n + NR - 1) / NR : (m + MR - 1) / MR;
            threads = Math.Min(threads, units);
            if (threads > 1)
            {
                nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
                Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
                {
                    int u0 = (int)((long)units * t / threads), u1 = (int)((long)units * (t + 1) / threads);
                    double* A = (double*)pa, B = (double*)pb, C = (double*)pc;
                    if (splitN)
                    {
                        int j0 = u0 * NR, j1 = Math.Min(n, u1 * NR);
                        if (j1 <= j0) return;
                        double* Bs = transB ? B + (long)j0 * ldb : B + j0;
                        GemmSerial(transA, transB, m, j1 - j0, k, alpha, A, lda, Bs, ldb, C + j0, ldc);
                    }
                    else
                    {
                        int i0 = u0 * MR, i1 = Math.Min(m, u1 * MR);
                        if (i1 <= i0) return;
                        double* As = transA ? A + i0 : A + (long)i0 * lda;
                        GemmSerial(transA, transB, i1 - i0, n, k, alpha, As, lda, B, ldb, C + (long)i0 * ldc, ldc);
                    }
                });
                return;
            }
        }
        GemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    }

    const int SmallK = 8;

    // Rank-k update with tiny k (S_KK += K Kᵀ for a few keys): one streaming pass over C with k axpys per row;
    // packing and register tiles would only add traffic here.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SmallKUpdate(bool transA, int m, int n, int k, double alpha, double* a, int lda, double* b, int ldb, double* c, int ldc)
    {
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        ParallelRanges(m, 2.0 * n * k, (i0, i1) =>
        {
            double* A = (double*)pa, B = (double*)pb, C = (double*)pc;
            for (int i = i0; i < i1; i++)
            {
                var crow = new Span<double>(C + (long)i * ldc, n);
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? A[(long)p * lda + i] : A[(long)i * lda + p];
                    if (av != 0) VectorOps.Axpy(alpha * av, new ReadOnlySpan<double>(B + (long)p * ldb, n), crow);
                }
            }
        });
    }

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

    /// <summary>C += alpha·op(A)·op(B) on the calling thread only (callers that parallelise themselves).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void GemmSerial(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, int lda, double* b, int ldb, double* c, int ldc)
    {
        int mr = MR, nr = NR;
        int ncMax = Math.Min(NC, (n + nr - 1) / nr * nr);
        int mcMax = Math.Min(MC, (m + mr - 1) / mr * mr);
        int kcMax = Math.Min(KC, k);
        double* packA = (double*)NativeMemory.AlignedAlloc((nuint)((long)mcMax * kcMax * sizeof(double)), 64);
        double* packB = (double*)NativeMemory.AlignedAlloc((nuint)((long)ncMax * kcMax * sizeof(double)), 64);
        double* tile = stackalloc double[16 * 16];
        try
        {
            for (int jc = 0; jc < n; jc += NC)
            {
                int nc = Math.Min(NC, n - jc);
                for (int pc = 0; pc < k; pc += KC)
                {
                    int kc = Math.Min(KC, k - pc);
                    PackB(transB, b, ldb, pc, jc, kc, nc, packB, nr);
                    for (int ic = 0; ic < m; ic += MC)
                    {
                        int mc = Math.Min(MC, m - ic);
                        PackA(transA, a, lda, ic, pc, mc, kc, packA, mr);
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            int nn = Math.Min(nr, nc - jr);
                            double* bp = packB + (long)jr * kc;
                            for (int ir = 0; ir < mc; ir += mr)
                            {
                                int mm = Math.Min(mr, mc - ir);
                                double* ap = packA + (long)ir * kc;
                                double* cp = c + (long)(ic + ir) * ldc + jc + jr;
                                if (mm == mr && nn == nr)
                                    Micro(kc, ap, bp, cp, ldc, alpha);
                                else
                                {
                                    for (int i = 0; i < mr * nr; i++) tile[i] = 0;
                                    Micro(kc, ap, bp, tile, nr, 1.0);
                                    for (int i = 0; i < mm; i++)
                                        for (int j = 0; j < nn; j++)
                                            cp[(long)i * ldc + j] += alpha * tile[i * nr + j];
                                }
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(packA);
            NativeMemory.AlignedFree(packB);
        }
    }

    // Packs op(A)[ic.., pc..] into panels of mr rows: panel r holds, for each p, mr consecutive values.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackA(bool transA, double* a, int lda, int ic, int pc, int mc, int kc, double* dst, int mr)
    {
        for (int r0 = 0; r0 < mc; r0 += mr)
        {
            int rows = Math.Min(mr, mc - r0);
            double* d = dst + (long)r0 * kc;
            if (!transA)
            {
                for (int i = 0; i < rows; i++)
                {
                    double* src = a + (long)(ic + r0 + i) * lda + pc;
                    for (int p = 0; p < kc; p++) d[p * mr + i] = src[p];
                }
            }
            else
            {
                for (int p = 0; p < kc; p++)
                {
                    double* src = a + (long)(pc + p) * lda + ic + r0;
                    for (int i = 0; i < rows; i++) d[p * mr + i] = src[i];
                }
            }
            if (rows < mr)
                for (int p = 0; p < kc; p++)
                    for (int i = rows; i < mr; i++) d[p * mr + i] = 0;
        }
    }

    // Packs op(B)[pc.., jc..] into panels of nr columns: panel j holds, for each p, nr consecutive values.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void PackB(bool transB, double* b, int ldb, int pc, int jc, int kc, int nc, double* dst, int nr)
    {
        for (int j0 = 0; j0 < nc; j0 += nr)
        {
            int cols = Math.Min(nr, nc - j0);
            double* d = dst + (long)j0 * kc;
            if (!transB)
            {
                for (int p = 0; p < kc; p++)
                {
                    double* src = b + (long)(pc + p) * ldb + jc + j0;
                    double* dp = d + p * nr;
                    if (cols == nr) Buffer.MemoryCopy(src, dp, nr * sizeof(double), nr * sizeof(double));
                    else { for (int j = 0; j < cols; j++) dp[j] = src[j]; for (int j = cols; j < nr; j++) dp[j] = 0; }
                }
            }
            else
            {
                for (int j = 0; j < cols; j++)
                {
                    double* src = b + (long)(jc + j0 + j) * ldb + pc;
                    for (int p = 0; p < kc; p++) d[p * nr + j] = src[p];
                }
                if (cols < nr)
                    for (int p = 0; p < kc; p++)
                        for (int j = cols; j < nr; j++) d[p * nr + j] = 0;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Micro(int kc, double* ap, double* bp, double* c, int ldc, double alpha)
    {
        if (Wide) Micro8x16(kc, ap, bp, c, ldc, alpha);
        else Micro6x8(kc, ap, bp, c, ldc, alpha);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Micro8x16(int kc, double* ap, double* bp, double* c, int ldc, double alpha)
    {
        Vector512<double> c00 = default, c01 = default, c10 = default, c11 = default,
            c20 = default, c21 = default, c30 = default, c31 = default,
            c40 = default, c41 = default, c50 = default, c51 = default,
            c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(bp);
            var b1 = Vector512.Load(bp + 8);
            var a = Vector512.Create(ap[0]);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            a = Vector512.Create(ap[1]);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            a = Vector512.Create(ap[2]);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            a = Vector512.Create(ap[3]);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            a = Vector512.Create(ap[4]);
            c40 = Vector512.FusedMultiplyAdd(a, b0, c40); c41 = Vector512.FusedMultiplyAdd(a, b1, c41);
            a = Vector512.Create(ap[5]);
            c50 = Vector512.FusedMultiplyAdd(a, b0, c50); c51 = Vector512.FusedMultiplyAdd(a, b1, c51);
            a = Vector512.Create(ap[6]);
            c60 = Vector512.FusedMultiplyAdd(a, b0, c60); c61 = Vector512.FusedMultiplyAdd(a, b1, c61);
            a = Vector512.Create(ap[7]);
            c70 = Vector512.FusedMultiplyAdd(a, b0, c70); c71 = Vector512.FusedMultiplyAdd(a, b1, c71);
            ap += 8; bp += 16;
        }
        var va = Vector512.Create(alpha);
        Store2(c, va, c00, c01); c += ldc;
        Store2(c, va, c10, c11); c += ldc;
        Store2(c, va, c20, c21); c += ldc;
        Store2(c, va, c30, c31); c += ldc;
        Store2(c, va, c40, c41); c += ldc;
        Store2(c, va, c50, c51); c += ldc;
        Store2(c, va, c60, c61); c += ldc;
        Store2(c, va, c70, c71);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2(double* c, Vector512<double> alpha, Vector512<double> x0, Vector512<double> x1)
    {
        Vector512.FusedMultiplyAdd(alpha, x0, Vector512.Load(c)).Store(c);
        Vector512.FusedMultiplyAdd(alpha, x1, Vector512.Load(c + 8)).Store(c + 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Micro6x8(int kc, double* ap, double* bp, double* c, int ldc, double alpha)
    {
        Vector256<double> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(bp);
            var b1 = Vector256.Load(bp + 4);
            var a = Vector256.Create(ap[0]);
            c00 = Vector256.FusedMultiplyAdd(a, b0, c00); c01 = Vector256.FusedMultiplyAdd(a, b1, c01);
            a = Vector256.Create(ap[1]);
            c10 = Vector256.FusedMultiplyAdd(a, b0, c10); c11 = Vector256.FusedMultiplyAdd(a, b1, c11);
            a = Vector256.Create(ap[2]);
            c20 = Vector256.FusedMultiplyAdd(a, b0, c20); c21 = Vector256.FusedMultiplyAdd(a, b1, c21);
            a = Vector256.Create(ap[3]);
            c30 = Vector256.FusedMultiplyAdd(a, b0, c30); c31 = Vector256.FusedMultiplyAdd(a, b1, c31);
            a = Vector256.Create(ap[4]);
            c40 = Vector256.FusedMultiplyAdd(a, b0, c40); c41 = Vector256.FusedMultiplyAdd(a, b1, c41);
            a = Vector256.Create(ap[5]);
            c50 = Vector256.FusedMultiplyAdd(a, b0, c50); c51 = Vector256.FusedMultiplyAdd(a, b1, c51);
            ap += 6; bp += 8;
        }
        var va = Vector256.Create(alpha);
        Store2(c, va, c00, c01); c += ldc;
        Store2(c, va, c10, c11); c += ldc;
        Store2(c, va, c20, c21); c += ldc;
        Store2(c, va, c30, c31); c += ldc;
        Store2(c, va, c40, c41); c += ldc;
        Store2(c, va, c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2(double* c, Vector256<double> alpha, Vector256<double> x0, Vector256<double> x1)
    {
        Vector256.FusedMultiplyAdd(alpha, x0, Vector256.Load(c)).Store(c);
        Vector256.FusedMultiplyAdd(alpha, x1, Vector256.Load(c + 4)).Store(c + 4);
    }
}
