using System.Runtime.CompilerServices;
namespace Kedit.Editing.LinearAlgebra;

/// <summary>Raised when LU with partial pivoting finds an exactly zero (or non-finite) pivot.</summary>
public sealed class SingularMatrixException : KeditException
{
    /// <summary>Column whose pivot was zero or not finite.</summary>
    public int PivotIndex { get; }

    /// <summary>Creates the exception; <paramref name="what"/> names the matrix.</summary>
    public SingularMatrixException(string what, int pivotIndex)
        : base($"{what} is singular to working precision: LU pivot {pivotIndex} is zero or not finite")
    { PivotIndex = pivotIndex; }
}

/// <summary>
/// LU factorisation with partial pivoting, P A = L U (float64): the reference's solver, used as the
/// fallback when a Cholesky factorisation reports <see cref="NotPositiveDefiniteException"/>.
/// Blocked right-looking (panel of 128 columns, trailing update by the parallel GEMM), 2n³/3 flops.
/// L (unit lower) and U share one row-major n×n array.
/// </summary>
public sealed unsafe class LuFactor
{
    const int Block = 128;
    const int ColumnChunk = 128;
    const int SubBlock = 32;

    readonly MatrixD _lu;
    readonly int[] _perm;   // row i of P·A is row _perm[i] of A

    /// <summary>Order of the factored matrix.</summary>
    public int Size => _lu.Rows;

    LuFactor(MatrixD lu, int[] perm) { _lu = lu; _perm = perm; }

    /// <summary>Factors <paramref name="a"/> (not modified); throws <see cref="SingularMatrixException"/> naming <paramref name="what"/>.</summary>
    public static LuFactor Factor(MatrixD a, string what = "matrix")
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rows != a.Cols) throw new ArgumentException($"LU needs a square matrix, got {a.Rows}×{a.Cols}", nameof(a));
        var lu = a.Clone();
        var perm = new int[a.Rows];
        for (int i = 0; i < perm.Length; i++) perm[i] = i;
        int bad = FactorInPlace(lu, perm);
        if (bad >= 0) throw new SingularMatrixException(what, bad);
        return new LuFactor(lu, perm);
    }

    /// <summary>Overwrites the n×k <paramref name="b"/> with A⁻¹ b (columns are right-hand sides).</summary>
    public void SolveInPlace(MatrixD b) => CholeskyFactor.SolveColumnsByRows(Size, b, SolveRowsInPlace);

    /// <summary>A⁻¹ b as a new matrix.</summary>
    public MatrixD Solve(MatrixD b) { var x = b.Clone(); SolveInPlace(x); return x; }

    /// <summary>Overwrites every row b of the k×n <paramref name="b"/> with the x solving A x = b (B ← B A⁻ᵀ).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SolveRowsInPlace(MatrixD b)
    {
        ArgumentNullException.ThrowIfNull(b);
        int n = Size, k = b.Rows;
        if (b.Cols != n) throw new ArgumentException($"right-hand-side rows have length {b.Cols}, factor is {n}×{n}", nameof(b));
        // permute each row: c_i = b_perm[i]
        var tmp = new double[n];
        for (int r = 0; r < k; r++)
        {
            var row = b.Row(r);
            for (int i = 0; i < n; i++) tmp[i] = row[_perm[i]];
            tmp.CopyTo(row);
        }
        fixed (double* B = b.Data) fixed (double* LU = _lu.Data)
        {
            nint pB = (nint)B, pL = (nint)LU;
            // L y = c  (unit lower): y_j = c_j − L[j, <j]·y[<j]
            for (int j0 = 0; j0 < n; j0 += Block)
            {
                int j1 = Math.Min(n, j0 + Block), jb = j1 - j0;
                if (j0 > 0) DenseOps.Gemm(false, true, k, jb, j0, -1.0, B, n, LU + (long)j0 * n, n, 1.0, B + j0, n);
                DenseOps.ParallelRanges(k, (double)jb * jb, (r0, r1) =>
                {
                    double* Bp = (double*)pB, Lp = (double*)pL;
                    for (int r = r0; r < r1; r++)
                    {
                        double* x = Bp + (long)r * n;
                        for (int j = j0 + 1; j < j1; j++)
                            x[j] -= VectorOps.Dot(new ReadOnlySpan<double>(Lp + (long)j * n + j0, j - j0), new ReadOnlySpan<double>(x + j0, j - j0));
                    }
                });
            }
            // U x = y: x_j = (y_j − U[j, >j]·x[>j]) / U_jj
            int last = (n - 1) / Block * Block;
            for (int j0 = last; j0 >= 0; j0 -= Block)
            {
                int j1 = Math.Min(n, j0 + Block), jb = j1 - j0;
                if (j1 < n) DenseOps.Gemm(false, true, k, jb, n - j1, -1.0, B + j1, n, LU + (long)j0 * n + j1, n, 1.0, B + j0, n);
                DenseOps.ParallelRanges(k, (double)jb * jb, (r0, r1) =>
                {
                    double* Bp = (double*)pB, Up = (double*)pL;
                    for (int r = r0; r < r1; r++)
                    {
                        double* x = Bp + (long)r * n;
                        for (int j = j1 - 1; j >= j0; j--)
                        {
                            double s = VectorOps.Dot(new ReadOnlySpan<double>(Up + (long)j * n + j + 1, j1 - j - 1), new ReadOnlySpan<double>(x + j + 1, j1 - j - 1));
                            x[j] = (x[j] - s) / Up[(long)j * n + j];
                        }
                    }
                });
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static int FactorInPlace(MatrixD a, int[] perm)
    {
        int n = a.Rows;
        fixed (double* A = a.Data)
        {
            nint pA = (nint)A;
            for (int k0 = 0; k0 < n; k0 += Block)
            {
                int b = Math.Min(Block, n - k0), k1 = k0 + b, t = n - k1;
                // 1. panel (rows k0..n, columns k0..k1) with partial pivoting; swaps move whole rows
                for (int j = k0; j < k1; j++)
                {
                    int p = j; double best = Math.Abs(A[(long)j * n + j]);
                    for (int i = j + 1; i < n; i++)
                    {
                        double v = Math.Abs(A[(long)i * n + j]);
                        if (v > best) { best = v; p = i; }
                    }
                    if (!(best > 0) || !double.IsFinite(best)) return j;
                    if (p != j)
                    {
                        double* rj = A + (long)j * n, rp = A + (long)p * n;
                        for (int c = 0; c < n; c++) (rj[c], rp[c]) = (rp[c], rj[c]);
                        (perm[j], perm[p]) = (perm[p], perm[j]);
                    }
                    double inv = 1.0 / A[(long)j * n + j];
                    var urow = new ReadOnlySpan<double>(A + (long)j * n + j + 1, k1 - j - 1);
                    for (int i = j + 1; i < n; i++)
                    {
                        double l = A[(long)i * n + j] * inv;
                        A[(long)i * n + j] = l;
                        if (l != 0) VectorOps.Axpy(-l, urow, new Span<double>(A + (long)i * n + j + 1, k1 - j - 1));
                    }
                }
                if (t == 0) break;
                // 2. U12 = L11⁻¹ A12: small unit triangles by axpy in column chunks, the rest by GEMM
                int chunks = (t + ColumnChunk - 1) / ColumnChunk;
                for (int s0 = k0; s0 < k1; s0 += SubBlock)
                {
                    int s1 = Math.Min(k1, s0 + SubBlock), ss = s0;
                    DenseOps.ParallelRanges(chunks, (double)SubBlock * SubBlock * ColumnChunk, (c0, c1) =>
                    {
                        double* P = (double*)pA;
                        for (int ch = c0; ch < c1; ch++)
                        {
                            int col = k1 + ch * ColumnChunk, w = Math.Min(ColumnChunk, n - col);
                            for (int j = ss; j < s1; j++)
                            {
                                var rowj = new ReadOnlySpan<double>(P + (long)j * n + col, w);
                                for (int i = j + 1; i < s1; i++)
                                    VectorOps.Axpy(-P[(long)i * n + j], rowj, new Span<double>(P + (long)i * n + col, w));
                            }
                        }
                    });
                    if (s1 < k1)
                        DenseOps.Gemm(false, false, k1 - s1, t, s1 - s0, -1.0, A + (long)s1 * n + s0, n,
                            A + (long)s0 * n + k1, n, 1.0, A + (long)s1 * n + k1, n);
                }
                // 3. A22 −= L21 U12
                DenseOps.Gemm(false, false, t, t, b, -1.0, A + (long)k1 * n + k0, n, A + (long)k0 * n + k1, n, 1.0, A + (long)k1 * n + k1, n);
            }
        }
        return -1;
    }
}
