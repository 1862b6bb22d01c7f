
namespace Kedit.Kernels.Cpu;

/// <summary>
/// Symmetric rank-k update of the upper triangle: C[i, j] += Σ_p A[p, i]·A[p, j] for j ≥ i, A [k, n] row-major
/// (k observations of n features: the key statistics' tall block of keys), C [n, n] float64. The strictly lower
/// triangle is never read or written; the caller mirrors it once when it needs the full matrix.
/// </summary>
/// <remarks>
/// The triangle is cut into block rows of <see cref="BlockRows"/>; each is one packed GEMM
/// Aᵀ[rows of the block] · A[columns from the diagonal on], so about n²/2 + n·BlockRows/2 products are
/// computed instead of n² (8 % above the triangle at n = 3072). <see cref="UpperF32"/> runs those products in
/// float32 (the SIMD kernel at full width) into a float32 block that is folded into the float64 C at once, so
/// float32 sums never span more than one call's k rows; <see cref="UpperF64"/> runs them in float64 (exact
/// products of float32 inputs) straight into C.
/// </remarks>
public static unsafe class Syrk
{
    /// <summary>
    /// Height of one block row: small enough that the triangle wastes little (n·BlockRows/2 extra products),
    /// tall enough (≥ 18 of the AVX-512 kernel's 14-row tiles) that each GEMM keeps both cores busy.
    /// </summary>
    public const int BlockRows = 256;

    [ThreadStatic] private static float[]? s_block;

    /// <summary>Float32 products and float32 sums over the k rows, folded into float64 C (see the class remarks).</summary>
    public static void UpperF32(int n, int k, float* a, int lda, double* c, int ldc)
    {
        Check(n, k, lda, ldc);
        if (n == 0 || k == 0) return;
        int rows = Math.Min(BlockRows, n);
        long need = (long)rows * n;
        if (s_block == null || s_block.LongLength < need) s_block = GC.AllocateUninitializedArray<float>((int)need, pinned: true);
        fixed (float* block = s_block)
            for (int i0 = 0; i0 < n; i0 += BlockRows)
            {
                int m = Math.Min(BlockRows, n - i0), width = n - i0;
                // block [m, width] = A[:, i0..i0+m]ᵀ · A[:, i0..n]; its row r covers C[i0 + r, i0..n].
                Gemm.Sgemm(true, false, m, width, k, 1f, a + i0, lda, a + i0, lda, 0f, block, width);
                for (int r = 0; r < m; r++)
                {
                    double* cr = c + (long)(i0 + r) * ldc + i0;
                    float* br = block + (long)r * width;
                    // Only j ≥ i: the diagonal block's lower part was computed (a GEMM tile) but is not kept.
                    for (int j = r; j < width; j++) cr[j] += br[j];
                }
            }
    }

    /// <summary>Float64 products and sums (exact products of float32 keys widened to float64) straight into C.</summary>
    public static void UpperF64(int n, int k, double* a, int lda, double* c, int ldc)
    {
        Check(n, k, lda, ldc);
        if (n == 0 || k == 0) return;
        for (int i0 = 0; i0 < n; i0 += BlockRows)
        {
            int m = Math.Min(BlockRows, n - i0), width = n - i0;
            // The diagonal block's strictly lower part is written too (a GEMM fills whole tiles); it is the
            // caller's to overwrite when mirroring, so only the triangle's block rows above it need care.
            Gemm.Dgemm(true, false, m, width, k, 1.0, a + i0, lda, a + i0, lda, 1.0, c + (long)i0 * ldc + i0, ldc);
        }
    }

    /// <summary>Copies the upper triangle of the n×n matrix c onto its lower triangle.</summary>
    public static void MirrorUpper(int n, Span<double> c)
    {
        if (c.Length < (long)n * n) throw new ArgumentException($"MirrorUpper: {c.Length} values cannot hold a {n}×{n} matrix", nameof(c));
        // Tiles keep both the row reads and the column writes within a few cache lines' reach.
        const int Tile = 64;
        for (int i0 = 0; i0 < n; i0 += Tile)
            for (int j0 = 0; j0 <= i0; j0 += Tile)
                for (int i = i0; i < Math.Min(n, i0 + Tile); i++)
                    for (int j = j0; j < Math.Min(i, j0 + Tile); j++)
                        c[i * n + j] = c[j * n + i];
    }

    private static void Check(int n, int k, int lda, int ldc)
    {
        if (n < 0 || k < 0) throw new ArgumentOutOfRangeException(n < 0 ? nameof(n) : nameof(k), "SYRK dimensions must be non-negative.");
        if (lda < Math.Max(1, n)) throw new ArgumentOutOfRangeException(nameof(lda), lda, $"SYRK lda must be at least n = {n}.");
        if (ldc < Math.Max(1, n)) throw new ArgumentOutOfRangeException(nameof(ldc), ldc, $"SYRK ldc must be at least n = {n}.");
    }
}
