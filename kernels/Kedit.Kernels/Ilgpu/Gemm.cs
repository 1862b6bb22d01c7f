using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Arguments of <see cref="GemmKernels.Gemm{T, TA, TB, TLoad}"/>: C = alpha·op(A)·op(B) + beta·C (+ bias[col]) on sub-matrices at
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
/// How a product reads its operands as T: A's stored elements (TA) and B's (TB) each widened, or not, as they are
/// loaded (the tile loads on GPUs), so no widened copy of either is made.
/// </summary>
public interface IOperands<TA, TB, T> where TA : unmanaged where TB : unmanaged where T : unmanaged
{
    T A(TA v);
    T B(TB v);
}

/// <summary>Both operands stored as T.</summary>
public struct AsStored<T> : IOperands<T, T, T> where T : unmanaged
{
    public readonly T A(T v) => v;
    public readonly T B(T v) => v;
}

/// <summary>float32 activations times a bfloat16 weight (the high half of a float32: exact).</summary>
public struct BFloat16Weight : IOperands<float, ushort, float>
{
    public readonly float A(float v) => v;
    public readonly float B(ushort v) => Interop.IntAsFloat((uint)v << 16);
}

/// <summary>float32 activations times an IEEE binary16 weight, widened exactly (subnormals, infinities and NaN included).</summary>
public struct Float16Weight : IOperands<float, ushort, float>
{
    public readonly float A(float v) => v;

    public readonly float B(ushort v)
    {
        int exp = (v >> 10) & 31, mant = v & 1023;
        float sign = (v & 0x8000) != 0 ? -1f : 1f;
        if (exp == 31) return mant == 0 ? sign * float.PositiveInfinity : float.NaN;
        // (1024 + mant)·2^(exp − 25) for normal values, mant·2^−24 for subnormals: both exact in float32.
        return exp == 0 ? sign * mant * 5.9604644775390625e-8f : sign * (1024 + mant) * Interop.IntAsFloat((uint)(exp - 25 + 127) << 23);
    }
}

/// <summary>float32 keys summed in float64 (the covariance): the product of two widened float32 values is exact.</summary>
public struct WidenedKeys : IOperands<float, float, double>
{
    public readonly double A(float v) => v;
    public readonly double B(float v) => v;
}

/// <summary>
/// The product for the forward, the backward's linear maps and the editing linear algebra, in float32 or
/// float64 (T), operands stored as T or, for the forward's 16-bit weights, B as F16/BF16 widened as it is loaded
/// (<see cref="IOperands{TA, TB, T}"/>; the covariance's float32 keys likewise widen to float64), in two forms with the same arithmetic: <see cref="Gemm{T, TA, TB, TLoad}"/> (a grid-stride range over the elements of C, no
/// barriers: the CPU accelerator's) and <see cref="TiledGemm{T, TA, TB, TLoad}"/> (shared-memory tiles: the GPUs'). Products are
/// summed in k order in T; beta = 0 never reads C. The reference is <c>Kedit.Kernels.Cpu.Gemm.Sgemm</c> (float32)
/// and the host <c>DenseOps</c> (float64).
/// </summary>
public static class GemmKernels
{
    public static void Gemm<T, TA, TB, TLoad>(Index1D lane, Lanes lanes, GemmArgs<T> s, ArrayView<TA> a, ArrayView<TB> b, ArrayView<T> c, ArrayView<T> bias)
        where T : unmanaged, INumber<T> where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T>
    {
        for (long e = lane; e < lanes.Total; e += lanes.Stride)
        {
            int col = (int)(e % s.N), row = (int)(e / s.N);
            if (s.Tri != 0 && row > col) continue;
            T acc = T.Zero;
            for (int k = 0; k < s.K; k++) acc += A<T, TA, TB, TLoad>(s, a, row, k) * B<T, TA, TB, TLoad>(s, b, k, col);
            Store(s, c, bias, row, col, acc);
        }
    }

    /// <summary>
    /// The same product with shared-memory tiles: a square group of tile × tile threads (tile = Group.DimX, chosen
    /// at launch: small on the CPU accelerator, 16 on GPUs) computes a tile × tile block of C, walking K in steps of
    /// tile with A's and B's tiles staged in dynamic shared memory (2·tile² elements of T). Ragged edges load zeros,
    /// so every element sums the same products in the same order as <see cref="Gemm{T, TA, TB, TLoad}"/>.
    /// </summary>
    public static void TiledGemm<T, TA, TB, TLoad>(GemmArgs<T> s, ArrayView<TA> a, ArrayView<TB> b, ArrayView<T> c, ArrayView<T> bias)
        where T : unmanaged, INumber<T> where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T>
    {
        int tile = Group.DimX, tx = Group.IdxX, ty = Group.IdxY;
        int col = Grid.IdxX * tile + tx, row = Grid.IdxY * tile + ty;
        var shared = SharedMemory.GetDynamic<T>();
        var aTile = shared.SubView(0, tile * tile);
        var bTile = shared.SubView(tile * tile, tile * tile);
        T acc = T.Zero;
        for (int k0 = 0; k0 < s.K; k0 += tile)
        {
            // Thread (tx, ty) loads A[row, k0 + tx] and B[k0 + ty, col].
            aTile[ty * tile + tx] = row < s.M && k0 + tx < s.K ? A<T, TA, TB, TLoad>(s, a, row, k0 + tx) : T.Zero;
            bTile[ty * tile + tx] = k0 + ty < s.K && col < s.N ? B<T, TA, TB, TLoad>(s, b, k0 + ty, col) : T.Zero;
            Group.Barrier();
            for (int kk = 0; kk < tile; kk++) acc += aTile[ty * tile + kk] * bTile[kk * tile + tx];
            Group.Barrier();
        }
        if (col < s.N && row < s.M && (s.Tri == 0 || row <= col)) Store(s, c, bias, row, col, acc);
    }

    /// <summary>A's and B's elements as T, widened here, in the load (the tile load on GPUs).</summary>
    static T A<T, TA, TB, TLoad>(GemmArgs<T> s, ArrayView<TA> a, int row, int k)
        where T : unmanaged where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T> =>
        default(TLoad).A(s.TransA != 0 ? a[s.OffA + (long)k * s.Lda + row] : a[s.OffA + (long)row * s.Lda + k]);

    static T B<T, TA, TB, TLoad>(GemmArgs<T> s, ArrayView<TB> b, int k, int col)
        where T : unmanaged where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T> =>
        default(TLoad).B(s.TransB != 0 ? b[s.OffB + (long)col * s.Ldb + k] : b[s.OffB + (long)k * s.Ldb + col]);

    /// <summary>C[row, col] = alpha·acc + beta·C (+ bias), mirrored to (col, row) when Tri is 2.</summary>
    static void Store<T>(GemmArgs<T> s, ArrayView<T> c, ArrayView<T> bias, int row, int col, T acc) where T : unmanaged, INumber<T>
    {
        long o = s.OffC + (long)row * s.Ldc + col;
        T v = s.Alpha * acc;
        if (s.Beta != T.Zero) v += s.Beta * c[o];
        if (s.HasBias != 0) v += bias[col];
        c[o] = v;
        if (s.Tri == 2 && row != col) c[s.OffC + (long)col * s.Ldc + row] = v;
    }

    /// <summary>y = A x (A [rows, cols], stride lda): an item per row.</summary>
    public static void MatVec(Index1D lane, Lanes lanes, int cols, ArrayView<float> a, int lda, ArrayView<float> x, ArrayView<float> y)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            float s = 0f;
            for (int c = 0; c < cols; c++) s += a[(long)r * lda + c] * x[c];
            y[r] = s;
        }
    }

    /// <summary>y = Aᵀ x: an item per column.</summary>
    public static void MatVecTransposed(Index1D lane, Lanes lanes, int rows, ArrayView<float> a, int lda, ArrayView<float> x, ArrayView<float> y)
    {
        for (int c = lane; c < lanes.Total; c += lanes.Stride)
        {
            float s = 0f;
            for (int r = 0; r < rows; r++) s += a[(long)r * lda + c] * x[r];
            y[c] = s;
        }
    }

    /// <summary>sum[c] += Σ_r y[r, c] (a linear map's bias gradient): an item per column, rows in order.</summary>
    public static void ColumnSumAccumulate(Index1D lane, Lanes lanes, int rows, int cols, ArrayView<float> y, ArrayView<float> sum)
    {
        for (int c = lane; c < lanes.Total; c += lanes.Stride)
        {
            float s = 0f;
            for (int r = 0; r < rows; r++) s += y[(long)r * cols + c];
            sum[c] += s;
        }
    }

    /// <summary>W[rows, cols] += A[rows, r]·B[cols, r]ᵀ in place (a rank-r weight update in its stored layout); an item per element.</summary>
    public static void RankKUpdate(Index1D lane, Lanes lanes, int r, ArrayView<float> w, int ldw, ArrayView<float> a, int lda, ArrayView<float> b, int ldb)
    {
        for (long e = lane; e < lanes.Total; e += lanes.Stride)
        {
            long c = e % lanes.Width, row = e / lanes.Width;
            float s = 0f;
            for (int p = 0; p < r; p++) s += a[row * lda + p] * b[c * ldb + p];
            w[row * ldw + c] += s;
        }
    }

}

/// <summary>The launch of <see cref="GemmKernels.TiledGemm{T, TA, TB, TLoad}"/>: its group shape and shared memory from the tile size.</summary>
public static class TiledGemmLaunch
{
    /// <summary>The tile edge on GPUs: 16 × 16 = 256 threads a group, 2 KiB (float32) or 4 KiB (float64) of shared memory.</summary>
    public const int GpuTile = 16;

    public static Action<KernelConfig, GemmArgs<T>, ArrayView<TA>, ArrayView<TB>, ArrayView<T>, ArrayView<T>> Load<T, TA, TB, TLoad>(Accelerator accelerator)
        where T : unmanaged, INumber<T> where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T> =>
        accelerator.LoadStreamKernel<GemmArgs<T>, ArrayView<TA>, ArrayView<TB>, ArrayView<T>, ArrayView<T>>(GemmKernels.TiledGemm<T, TA, TB, TLoad>);

    /// <summary>Groups of tile × tile threads covering C [m, n]; tile² must not exceed the accelerator's group size.</summary>
    public static KernelConfig Config<T>(int m, int n, int tile) where T : unmanaged
    {
        if (tile < 1) throw new ArgumentOutOfRangeException(nameof(tile), tile, "the tile edge must be positive");
        return new KernelConfig(new Index2D((n + tile - 1) / tile, (m + tile - 1) / tile), new Index2D(tile, tile),
            SharedMemoryConfig.RequestDynamic<T>(2 * tile * tile));
    }
}
