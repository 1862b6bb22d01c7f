using System.Numerics;
using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Arguments of <see cref="GemmKernels.Gemm{T}"/>: C = alpha·op(A)·op(B) + beta·C (+ bias[col]) on sub-matrices at
/// element offsets, op(A) [M, K], op(B) [K, N], row-major with leading dimensions. Tri selects what is written:
/// 0 everything, 1 the upper triangle (row ≤ col), 2 the upper triangle mirrored to (col, row), so a Gram
/// matrix comes out exactly symmetric from one triangle of work.
/// </summary>
public struct GemmArgs<T> where T : unmanaged
{
    public int M, N, K, Lda, Ldb, Ldc, TransA, TransB, HasBias, Tri;
    public long OffA, OffB, OffC;
    public T Alpha, Beta;
}

/// <summary>
/// The product for the forward, the backward's linear maps and the editing linear algebra, in float32 or
/// float64 (T). One thread per element of C, products summed in k order in T; beta = 0 never reads C.
/// The reference is <c>Kedit.Kernels.Cpu.Gemm.Sgemm</c> (float32) and the host <c>DenseOps</c> (float64).
/// </summary>
public static class GemmKernels
{
    public static void Gemm<T>(Index2D i, GemmArgs<T> s, ArrayView<T> a, ArrayView<T> b, ArrayView<T> c, ArrayView<T> bias)
        where T : unmanaged, INumber<T>
    {
        int col = i.X, row = i.Y;
        if (col >= s.N || row >= s.M || (s.Tri != 0 && row > col)) return;
        T acc = T.Zero;
        for (int k = 0; k < s.K; k++)
        {
            T av = s.TransA != 0 ? a[s.OffA + (long)k * s.Lda + row] : a[s.OffA + (long)row * s.Lda + k];
            T bv = s.TransB != 0 ? b[s.OffB + (long)col * s.Ldb + k] : b[s.OffB + (long)k * s.Ldb + col];
            acc += av * bv;
        }
        long o = s.OffC + (long)row * s.Ldc + col;
        T v = s.Alpha * acc;
        if (s.Beta != T.Zero) v += s.Beta * c[o];
        if (s.HasBias != 0) v += bias[col];
        c[o] = v;
        if (s.Tri == 2 && row != col) c[s.OffC + (long)col * s.Ldc + row] = v;
    }

    /// <summary>y = A x (A [rows, cols], stride lda): a thread per row.</summary>
    public static void MatVec(Index1D r, int cols, ArrayView<float> a, int lda, ArrayView<float> x, ArrayView<float> y)
    {
        float s = 0f;
        for (int c = 0; c < cols; c++) s += a[(long)r.X * lda + c] * x[c];
        y[r] = s;
    }

    /// <summary>y = Aᵀ x: a thread per column.</summary>
    public static void MatVecTransposed(Index1D c, int rows, ArrayView<float> a, int lda, ArrayView<float> x, ArrayView<float> y)
    {
        float s = 0f;
        for (int r = 0; r < rows; r++) s += a[(long)r * lda + c] * x[r];
        y[c] = s;
    }

    /// <summary>sum[c] += Σ_r y[r, c] (a linear map's bias gradient): a thread per column, rows in order.</summary>
    public static void ColumnSumAccumulate(Index1D c, int rows, int cols, ArrayView<float> y, ArrayView<float> sum)
    {
        float s = 0f;
        for (int r = 0; r < rows; r++) s += y[(long)r * cols + c];
        sum[c] += s;
    }

    /// <summary>W[rows, cols] += A[rows, r]·B[cols, r]ᵀ in place (a rank-r weight update in its stored layout); a thread per element.</summary>
    public static void RankKUpdate(Index2D i, int r, ArrayView<float> w, int ldw, ArrayView<float> a, int lda, ArrayView<float> b, int ldb)
    {
        int c = i.X, row = i.Y;
        float s = 0f;
        for (int p = 0; p < r; p++) s += a[(long)row * lda + p] * b[(long)c * ldb + p];
        w[(long)row * ldw + c] += s;
    }

    /// <summary>dst = (double)src: float32 keys widened so their products are exact in the float64 Gram sum.</summary>
    public static void Widen(Index1D i, ArrayView<float> src, ArrayView<double> dst) => dst[i] = src[i];
}
