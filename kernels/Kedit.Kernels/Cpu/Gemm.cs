using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// General matrix multiply on row-major matrices: C = alpha * op(A) * op(B) + beta * C,
/// where op(A) is [m, k] and op(B) is [k, n]; lda / ldb / ldc are row strides in elements and may exceed
/// the logical row width. transA: A is stored [k, m]; transB: B is stored [n, k] (the nn.Linear weight layout).
/// </summary>
/// <remarks>
/// Large products run a packed, cache-blocked micro-kernel (AVX-512 14x32, else AVX2 6x16, else scalar 4x4,
/// chosen at runtime) split across up to <see cref="MaxThreads"/> threads; float products with few rows
/// (token-by-token generation; on AVX2 one row) take a skinny path that streams B once. beta == 0 makes C write-only, so
/// NaN or garbage in C is ignored. C must not overlap A or B (aliasing is not supported and gives
/// undefined results). Safe to call concurrently from several threads.
/// </remarks>
public static unsafe class Gemm
{
    /// <summary>Products below this many flops run on the calling thread: forking would cost more than it saves.</summary>
    internal const double ParallelMinFlops = 2e6;

    /// <summary>One-row products with a B of fewer elements run on the calling thread (256 KiB of float32).</summary>
    internal const long OneRowParallelMinElements = 1 << 16;

    /// <summary>Float products with at most this many rows use the skinny (B-streaming) path on AVX-512 (one row: <see cref="OneRowGemm"/>).</summary>
    internal const int SkinnyMaxRows = 16;

    private static int s_maxThreads = Environment.ProcessorCount;

    /// <summary>The best instruction set this process can use for GEMM.</summary>
    public static GemmIsa Isa { get; } =
        Avx512F.IsSupported ? GemmIsa.Avx512 :
        Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Avx2 : GemmIsa.Scalar;

    /// <summary>Upper bound on threads one GEMM call uses (default: logical processor count).</summary>
    public static int MaxThreads
    {
        get => s_maxThreads;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value), value, "Gemm.MaxThreads must be at least 1.");
            s_maxThreads = value;
        }
    }

    /// <summary>Single-precision C = alpha * op(A) * op(B) + beta * C (see the class remarks for layout).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => Run(Isa, s_maxThreads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>
    /// As <see cref="Sgemm(bool, bool, int, int, int, float, float*, int, float*, int, float, float*, int)"/> on at most
    /// <paramref name="maxThreads"/> threads: 1 for callers that already run many small products in parallel
    /// (per-head attention), where a nested split only adds synchronisation.
    /// </summary>
    public static void Sgemm(int maxThreads, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
        => Run(Isa, Math.Clamp(maxThreads, 1, s_maxThreads), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>Single-precision GEMM on spans; span lengths are checked against the shapes and strides.</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        CheckSpans(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Sgemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }

    /// <summary>Double-precision C = alpha * op(A) * op(B) + beta * C, same conventions as <see cref="Sgemm(bool, bool, int, int, int, float, float*, int, float*, int, float, float*, int)"/>.</summary>
    public static void Dgemm(bool transA, bool transB, int m, int n, int k, double alpha,
        double* a, int lda, double* b, int ldb, double beta, double* c, int ldc)
        => Run(Isa, s_maxThreads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);

    /// <summary>Double-precision GEMM on spans; span lengths are checked against the shapes and strides.</summary>
    public static void Dgemm(bool transA, bool transB, int m, int n, int k, double alpha,
        ReadOnlySpan<double> a, int lda, ReadOnlySpan<double> b, int ldb, double beta, Span<double> c, int ldc)
    {
        CheckSpans(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        fixed (double* pa = a) fixed (double* pb = b) fixed (double* pc = c)
            Dgemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }

    /// <summary>
    /// Single-precision matrix-vector product y = alpha * op(A) * x + beta * y with A stored [rows, cols]
    /// row-major (stride lda). transA = false: x has cols elements and y has rows; transA = true: x has
    /// rows elements and y has cols. beta == 0 makes y write-only.
    /// </summary>
    public static void Sgemv(bool transA, int rows, int cols, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> x, float beta, Span<float> y)
    {
        int xLen = transA ? rows : cols, yLen = transA ? cols : rows;
        if (x.Length < xLen) throw new ArgumentException($"Sgemv: x has {x.Length} elements, op(A) needs {xLen}.", nameof(x));
        if (y.Length < yLen) throw new ArgumentException($"Sgemv: y has {y.Length} elements, op(A) produces {yLen}.", nameof(y));
        // y^T = x^T * op(A)^T: one row of output, so this lands on the skinny path that streams A once.
        if (!transA)
            Sgemm(false, true, 1, rows, cols, alpha, x, Math.Max(cols, 1), a, lda, beta, y, Math.Max(rows, 1));
        else
            Sgemm(false, false, 1, cols, rows, alpha, x, Math.Max(rows, 1), a, lda, beta, y, Math.Max(cols, 1));
    }

    /// <summary>Core entry with an explicit instruction set and thread count (tests use it to cover every path).</summary>
    internal static void Run<T>(GemmIsa isa, int threads, bool transA, bool transB, int m, int n, int k, T alpha,
        T* a, int lda, T* b, int ldb, T beta, T* c, int ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        CheckArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == T.Zero)
        {
            ScaleC(m, n, beta, c, ldc);
            return;
        }
        if (isa == GemmIsa.Avx512 && !Avx512F.IsSupported) throw new PlatformNotSupportedException("AVX-512F is not available on this CPU.");
        if (isa == GemmIsa.Avx2 && !(Avx2.IsSupported && Fma.IsSupported)) throw new PlatformNotSupportedException("AVX2/FMA is not available on this CPU.");

        int parts = Math.Max(1, threads);
        // One row is bound by reading B, not by flops: worth both cores once B is past a few hundred KiB.
        if (m == 1 ? (long)n * k < OneRowParallelMinElements : 2.0 * m * n * k < ParallelMinFlops) parts = 1;
        if (typeof(T) == typeof(float) && m == 1 && isa != GemmIsa.Scalar && Avx2.IsSupported && Fma.IsSupported)
        {
            OneRowGemm.Run<F32Weights>(parts, transB, n, k, Unsafe.BitCast<T, float>(alpha), (float*)a, transA ? lda : 1, (void*)b,
                ldb, Unsafe.BitCast<T, float>(beta), (float*)c);
            return;
        }
        if (typeof(T) == typeof(float) && isa == GemmIsa.Avx512 && m <= SkinnyMaxRows)
        {
            RunSkinny(parts, transA, transB, m, n, k, Unsafe.BitCast<T, float>(alpha), (float*)a, lda, (float*)b, ldb,
                Unsafe.BitCast<T, float>(beta), (float*)c, ldc);
            return;
        }
        // The blocked driver shares its packed operands and tiles among the threads itself.
        int tiles = (m + MicroRows(isa) - 1) / MicroRows(isa) * ((n + MicroCols<T>(isa) - 1) / MicroCols<T>(isa));
        parts = Math.Min(parts, tiles);
        switch (isa)
        {
            case GemmIsa.Avx512:
                BlockedGemm<T, Avx512Kernel<T>>.Run(parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                break;
            case GemmIsa.Avx2:
                BlockedGemm<T, Avx2Kernel<T>>.Run(parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                break;
            default:
                BlockedGemm<T, ScalarKernel<T>>.Run(parts, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                break;
        }
    }

    /// <summary>
    /// Skinny products (few rows, AVX-512) split B's columns into one slab per thread: each thread streams its
    /// share of B once and needs only the few rows of A, so there is nothing worth sharing between them.
    /// </summary>
    private static void RunSkinny(int parts, bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        // Each thread's slab of C's columns is a whole number of strips.
        int nr = SkinnyGemm.StripWidth, strips = (n + nr - 1) / nr;
        parts = Math.Min(parts, strips);
        if (parts == 1)
        {
            SkinnyGemm.Run(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        int chunk = (strips + parts - 1) / parts * nr;
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
        {
            int start = part * chunk, len = Math.Min(chunk, n - start);
            if (len <= 0) return;
            float* bs = transB ? (float*)pb + (nint)start * ldb : (float*)pb + start;
            SkinnyGemm.Run(transA, transB, m, len, k, alpha, (float*)pa, lda, bs, ldb, beta, (float*)pc + start, ldc);
        });
    }

    private static int MicroRows(GemmIsa isa) => isa switch { GemmIsa.Avx512 => 14, GemmIsa.Avx2 => 6, _ => 4 };

    private static int MicroCols<T>(GemmIsa isa) where T : unmanaged => isa switch
    {
        GemmIsa.Avx512 => 128 / sizeof(T),
        GemmIsa.Avx2 => 64 / sizeof(T),
        _ => 4,
    };

    private static void ScaleC<T>(int m, int n, T beta, T* c, nint ldc) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            var row = new Span<T>(c + i * ldc, n);
            if (beta == T.Zero) row.Clear();
            else if (beta != T.One)
                for (int j = 0; j < n; j++) row[j] *= beta;
        }
    }

    private static void CheckArgs<T>(bool transA, bool transB, int m, int n, int k, T* a, int lda, T* b, int ldb, T* c, int ldc)
        where T : unmanaged
    {
        if (m < 0) throw new ArgumentOutOfRangeException(nameof(m), m, "GEMM row count m must be non-negative.");
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), n, "GEMM column count n must be non-negative.");
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k), k, "GEMM inner dimension k must be non-negative.");
        int aCols = transA ? m : k, bCols = transB ? k : n;
        if (lda < Math.Max(1, aCols))
            throw new ArgumentOutOfRangeException(nameof(lda), lda, $"GEMM lda must be at least {Math.Max(1, aCols)} (A stored {(transA ? "[k, m]" : "[m, k]")}).");
        if (ldb < Math.Max(1, bCols))
            throw new ArgumentOutOfRangeException(nameof(ldb), ldb, $"GEMM ldb must be at least {Math.Max(1, bCols)} (B stored {(transB ? "[n, k]" : "[k, n]")}).");
        if (ldc < Math.Max(1, n))
            throw new ArgumentOutOfRangeException(nameof(ldc), ldc, $"GEMM ldc must be at least n = {n}.");
        if (m > 0 && n > 0 && c == null) throw new ArgumentNullException(nameof(c), "GEMM output C is null.");
        if (m > 0 && n > 0 && k > 0 && (a == null || b == null))
            throw new ArgumentNullException(a == null ? nameof(a) : nameof(b), "GEMM input matrix is null.");
    }

    private static void CheckSpans(bool transA, bool transB, int m, int n, int k, int aLen, int lda, int bLen, int ldb, int cLen, int ldc)
    {
        if (m < 0 || n < 0 || k < 0)
            throw new ArgumentOutOfRangeException(m < 0 ? nameof(m) : n < 0 ? nameof(n) : nameof(k), "GEMM dimensions must be non-negative.");
        long need(int rows, int cols, int ld) => rows == 0 || cols == 0 ? 0 : (long)(rows - 1) * ld + cols;
        long aNeed = transA ? need(k, m, lda) : need(m, k, lda);
        long bNeed = transB ? need(n, k, ldb) : need(k, n, ldb);
        long cNeed = need(m, n, ldc);
        if (aLen < aNeed) throw new ArgumentException($"GEMM: A has {aLen} elements, its shape and lda = {lda} need {aNeed}.", "a");
        if (bLen < bNeed) throw new ArgumentException($"GEMM: B has {bLen} elements, its shape and ldb = {ldb} need {bNeed}.", "b");
        if (cLen < cNeed) throw new ArgumentException($"GEMM: C has {cLen} elements, its shape and ldc = {ldc} need {cNeed}.", "c");
    }
}
