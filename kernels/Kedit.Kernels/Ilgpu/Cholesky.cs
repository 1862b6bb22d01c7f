using ILGPU;
using ILGPU.Algorithms;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Float64 blocked Cholesky (A = RᵀR, R upper, row-major) and the triangular solves of the MEMIT / ROME solve
/// (reference: <c>CholeskyFactor</c>). The trailing and block updates are <see cref="GemmKernels.Gemm{T, TA, TB, TLoad}"/>.
/// </summary>
public static class CholeskyKernels
{
    /// <summary>
    /// Unblocked right-looking factor of the nb×nb diagonal block at (k0, k0), by one thread. A pivot that is not
    /// positive and finite stores its global index and value in status[0], status[1]; once one has failed every
    /// later block is skipped, so status keeps the first failure.
    /// </summary>
    public static void DiagonalBlock(Index1D unused, int n, int k0, int nb, ArrayView<double> a, ArrayView<double> status)
    {
        if (status[0] >= 0.0) return;
        long d0 = (long)k0 * n + k0;
        for (int j = 0; j < nb; j++)
        {
            double d = a[d0 + (long)j * n + j];
            if (!(d > 0.0 && d <= double.MaxValue)) { status[0] = k0 + j; status[1] = d; return; }
            double r = XMath.Sqrt(d);
            a[d0 + (long)j * n + j] = r;
            for (int c = j + 1; c < nb; c++) a[d0 + (long)j * n + c] /= r;
            for (int i = j + 1; i < nb; i++)
                for (int c = i; c < nb; c++) a[d0 + (long)i * n + c] -= a[d0 + (long)j * n + i] * a[d0 + (long)j * n + c];
        }
    }

    /// <summary>R12 = R11⁻ᵀ A12 for the columns right of the factored block, by forward substitution; an item per column.</summary>
    public static void Panel(Index1D lane, Lanes lanes, int n, int k0, int nb, ArrayView<double> a)
    {
        for (int g = lane; g < lanes.Total; g += lanes.Stride)
        {
            int c = k0 + nb + g;
            long p = (long)k0 * n;
            for (int j = 0; j < nb; j++)
            {
                double s = a[p + (long)j * n + c];
                for (int i = 0; i < j; i++) s -= a[p + (long)i * n + k0 + j] * a[p + (long)i * n + c];
                a[p + (long)j * n + c] = s / a[p + (long)j * n + k0 + j];
            }
        }
    }

    /// <summary>Y R = B within the column block [j0, j0+jb) of every row of B [k, n] (earlier blocks subtracted); an item per row.</summary>
    public static void SolveForward(Index1D lane, Lanes lanes, int n, int j0, int jb, ArrayView<double> x, ArrayView<double> r)
    {
        for (int row = lane; row < lanes.Total; row += lanes.Stride)
        {
            long xo = (long)row * n;
            int j1 = j0 + jb;
            for (int j = j0; j < j1; j++)
            {
                double xj = x[xo + j] / r[(long)j * n + j];
                x[xo + j] = xj;
                for (int c = j + 1; c < j1; c++) x[xo + c] -= xj * r[(long)j * n + c];
            }
        }
    }

    /// <summary>X Rᵀ = Y within the column block [j0, j0+jb) (later blocks subtracted), backward over columns.</summary>
    public static void SolveBackward(Index1D lane, Lanes lanes, int n, int j0, int jb, ArrayView<double> x, ArrayView<double> r)
    {
        for (int row = lane; row < lanes.Total; row += lanes.Stride)
        {
            long xo = (long)row * n;
            int j1 = j0 + jb;
            for (int j = j1 - 1; j >= j0; j--)
            {
                double s = x[xo + j];
                for (int c = j + 1; c < j1; c++) s -= r[(long)j * n + c] * x[xo + c];
                x[xo + j] = s / r[(long)j * n + j];
            }
        }
    }
}
