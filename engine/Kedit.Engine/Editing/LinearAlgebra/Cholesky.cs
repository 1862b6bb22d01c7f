using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// Raised when a Cholesky factorisation meets a non-positive (or non-finite) pivot. No jitter is ever
/// added (it would change results); callers fall back to <see cref="LuFactor"/> and report it.
/// </summary>
public sealed class NotPositiveDefiniteException : KeditException
{
    /// <summary>Index of the first pivot that was not positive.</summary>
    public int PivotIndex { get; }
    /// <summary>The value the pivot had (Schur complement diagonal); ≤ 0 or NaN.</summary>
    public double PivotValue { get; }

    /// <summary>Creates the exception; <paramref name="what"/> names the matrix (e.g. "λ·C of layer 5").</summary>
    public NotPositiveDefiniteException(string what, int pivotIndex, double pivotValue)
        : base($"{what} is not positive definite: Cholesky pivot {pivotIndex} is {pivotValue:R}")
    {
        PivotIndex = pivotIndex; PivotValue = pivotValue;
    }
}

/// <summary>
/// Cholesky factor of a symmetric positive definite n×n matrix M = Rᵀ R = L Lᵀ (float64).
/// Held as the upper triangle R = Lᵀ packed row by row (row j: its n − j entries from the diagonal on), so that a
/// column of L is a contiguous row: rank-1 updates and few-row solves stream rows.
/// Packed, a factor holds n(n+1)/2 values rather than n²: D4S keeps one per edited layer for its whole run (f² float64
/// was 75 MB a layer on GPT-2 small, 2 GB on GPT-J). Solves of many rows (re-anchors, batches) unpack R into a
/// transient n×n matrix for the blocked GEMM path, the same arithmetic on the same values as a held full R.
/// Factorisation: blocked right-looking in a full n×n workspace, trailing update by the parallel GEMM; f³/3 flops.
/// Only the upper triangle of the input is read.
/// </summary>
public sealed unsafe class CholeskyFactor : ISpdFactor
{
    const int Block = 256;
    const int ColumnChunk = 128;
    const int SubBlock = 32;
    const int TrailingRows = 96;

    readonly double[] _p;   // R packed: row j from (j, j) to (j, n − 1), starting at Row(j)

    /// <summary>Order n of the factored matrix.</summary>
    public int Size { get; }

    CholeskyFactor(int n, double[] packed) { Size = n; _p = packed; }

    /// <summary>Packs the upper triangle of <paramref name="upper"/> (its strict lower triangle is ignored).</summary>
    static CholeskyFactor Pack(MatrixD upper)
    {
        int n = upper.Rows;
        var p = new double[(long)n * (n + 1) / 2];
        for (int j = 0; j < n; j++) Array.Copy(upper.Data, (long)j * n + j, p, Row(n, j), n - j);
        return new CholeskyFactor(n, p);
    }

    /// <summary>Where row j of a packed n×n upper triangle starts: the n − i entries of each row i &lt; j come first.</summary>
    static long Row(int n, int j) => (long)j * n - (long)j * (j - 1) / 2;

    /// <summary>
    /// Wraps an upper factor computed elsewhere (e.g. downloaded from a device) so it can take rank-1 updates;
    /// <paramref name="upper"/> is owned by the factor from now on and its strict lower triangle is ignored.
    /// </summary>
    internal static CholeskyFactor FromUpper(MatrixD upper)
    {
        if (upper.Rows != upper.Cols) throw new ArgumentException($"a Cholesky factor is square, got {upper.Rows}×{upper.Cols}", nameof(upper));
        return Pack(upper);
    }

    /// <summary><see cref="TryFactor(MatrixD, out CholeskyFactor?, out int, out double)"/> as an <see cref="SpdFactorizer"/>: the host's factorisation.</summary>
    public static bool TryFactorOnHost(MatrixD a, out ISpdFactor? factor, out int failedPivot, out double pivotValue)
    {
        bool ok = TryFactor(a, out var host, out failedPivot, out pivotValue);
        factor = host;
        return ok;
    }

    /// <summary>Factors <paramref name="a"/> (not modified). Returns false, with the failing pivot, if it is not SPD.</summary>
    public static bool TryFactor(MatrixD a, out CholeskyFactor? factor, out int failedPivot, out double pivotValue)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rows != a.Cols) throw new ArgumentException($"Cholesky needs a square matrix, got {a.Rows}×{a.Cols}", nameof(a));
        var r = a.Clone();
        failedPivot = FactorInPlace(r, out pivotValue);
        if (failedPivot >= 0) { factor = null; return false; }
        factor = Pack(r);
        return true;
    }

    /// <summary>Factors <paramref name="a"/>; throws <see cref="NotPositiveDefiniteException"/> naming <paramref name="what"/>.</summary>
    public static CholeskyFactor Factor(MatrixD a, string what = "matrix")
    {
        if (!TryFactor(a, out var f, out int p, out double v)) throw new NotPositiveDefiniteException(what, p, v);
        return f!;
    }

    /// <summary>A deep copy (rank-1 updates modify a factor in place).</summary>
    public CholeskyFactor Clone() => new(Size, (double[])_p.Clone());

    /// <summary>The lower factor L (M = L Lᵀ) as a new matrix.</summary>
    public MatrixD Lower() => Upper().Transpose();

    /// <summary>The upper factor R = Lᵀ (M = Rᵀ R) as a new n×n matrix (zeros below the diagonal).</summary>
    public MatrixD Upper()
    {
        int n = Size;
        var r = new MatrixD(n, n);
        for (int j = 0; j < n; j++) Array.Copy(_p, Row(n, j), r.Data, (long)j * n + j, n - j);
        return r;
    }

    /// <summary>log det M = 2 Σ log R_ii.</summary>
    public double LogDeterminant()
    {
        double s = 0;
        for (int i = 0; i < Size; i++) s += Math.Log(_p[Row(Size, i)]);
        return 2 * s;
    }

    /// <summary>Overwrites the n×k matrix <paramref name="b"/> with M⁻¹ b (columns are right-hand sides).</summary>
    public void SolveInPlace(MatrixD b) => CholeskyFactor.SolveColumnsByRows(Size, b, SolveRowsInPlace);

    /// <summary>M⁻¹ b as a new matrix (columns of the n×k <paramref name="b"/> are right-hand sides).</summary>
    public MatrixD Solve(MatrixD b) { var x = b.Clone(); SolveInPlace(x); return x; }

    /// <summary>
    /// Overwrites every row b of the k×n <paramref name="b"/> with the x solving M x = b, i.e. B ← B M⁻¹
    /// (M symmetric). This is the efficient orientation: the D4S re-anchor Γ = S_RK M⁻¹ is one call.
    /// </summary>
    public void SolveRowsInPlace(MatrixD b)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (b.Cols != Size) throw new ArgumentException($"right-hand-side rows have length {b.Cols}, factor is {Size}×{Size}", nameof(b));
        if (b.Rows <= FewRows) { SolveFewRows(b); return; }
        var r = Upper();
        SolveRowsUpperTransposedInPlace(b, r);   // Y R = B   (Y = X Rᵀ)
        SolveRowsUpperInPlace(b, r);             // X Rᵀ = Y
    }

    /// <summary>
    /// Replaces M by M + x xᵀ for every row x of <paramref name="rows"/> (k×n), updating the factor in
    /// O(k n²) with Givens-like rotations in one pass over R. Additions only: backward stable.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RankOneUpdates(MatrixD rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Cols != Size) throw new ArgumentException($"update vectors have length {rows.Cols}, factor is {Size}×{Size}", nameof(rows));
        int n = Size, kv = rows.Rows;
        var x = rows.Clone();   // consumed by the rotations
        for (int k = 0; k < n; k++)
        {
            long at = Row(n, k);
            var rrow = _p.AsSpan(checked((int)(at + 1)), n - k - 1);
            for (int v = 0; v < kv; v++)
            {
                double xk = x.Data[(long)v * n + k];
                if (xk == 0) continue;
                double rkk = _p[at];
                double r = Hypot(rkk, xk);
                double c = r / rkk, s = xk / rkk;
                _p[at] = r;
                var xs = x.Data.AsSpan(v * n + k + 1, n - k - 1);
                // row ← (row + s·x)/c ; x ← c·x − s·row_new
                RotateRow(rrow, xs, c, s);
            }
        }
    }

    /// <summary>Replaces M by M + x xᵀ.</summary>
    public void RankOneUpdate(ReadOnlySpan<double> x)
    {
        var m = new MatrixD(1, x.Length);
        x.CopyTo(m.Data);
        RankOneUpdates(m);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RotateRow(Span<double> row, Span<double> x, double c, double s)
    {
        double invC = 1.0 / c;
        int len = row.Length, i = 0;
        fixed (double* pr = row) fixed (double* px = x)
        {
            if (Vector256.IsHardwareAccelerated)
            {
                var vs = Vector256.Create(s);
                var vc = Vector256.Create(c);
                var vic = Vector256.Create(invC);
                for (; i <= len - 4; i += 4)
                {
                    var rv = Vector256.Load(pr + i);
                    var xv = Vector256.Load(px + i);
                    var rn = Vector256.FusedMultiplyAdd(vs, xv, rv) * vic;
                    rn.Store(pr + i);
                    Vector256.FusedMultiplyAdd(vc, xv, -(vs * rn)).Store(px + i);
                }
            }
            for (; i < len; i++)
            {
                double rn = (pr[i] + s * px[i]) * invC;
                pr[i] = rn;
                px[i] = c * px[i] - s * rn;
            }
        }
    }

    static double Hypot(double a, double b)
    {
        a = Math.Abs(a); b = Math.Abs(b);
        double mx = Math.Max(a, b), mn = Math.Min(a, b);
        if (mx == 0) return 0;
        double q = mn / mx;
        return mx * Math.Sqrt(1 + q * q);
    }

    /// <summary>In place upper Cholesky; returns -1 on success or the index of the failing pivot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static int FactorInPlace(MatrixD a, out double pivotValue)
    {
        int n = a.Rows;
        pivotValue = 0;
        fixed (double* A = a.Data)
        {
            for (int k0 = 0; k0 < n; k0 += Block)
            {
                int b = Math.Min(Block, n - k0), k1 = k0 + b, t = n - k1;
                // 1. diagonal block, unblocked right-looking on rows of the upper triangle
                for (int j = k0; j < k1; j++)
                {
                    double d = A[(long)j * n + j];
                    if (!(d > 0) || !double.IsFinite(d)) { pivotValue = d; return j; }
                    double r = Math.Sqrt(d);
                    A[(long)j * n + j] = r;
                    var rowj = new Span<double>(A + (long)j * n + j + 1, k1 - j - 1);
                    VectorOps.Scale(1.0 / r, rowj);
                    for (int i = j + 1; i < k1; i++)
                        VectorOps.Axpy(-A[(long)j * n + i], new ReadOnlySpan<double>(A + (long)j * n + i, k1 - i),
                            new Span<double>(A + (long)i * n + i, k1 - i));
                }
                if (t == 0) break;
                // 2. panel R12 = R11⁻ᵀ A12: small triangles by axpy in cache-sized column chunks,
                //    the rest of the panel by GEMM (keeps the O(n² b) part at GEMM speed)
                nint pA = (nint)A;
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
                                var rowj = new Span<double>(P + (long)j * n + col, w);
                                VectorOps.Scale(1.0 / P[(long)j * n + j], rowj);
                                for (int i = j + 1; i < s1; i++)
                                    VectorOps.Axpy(-P[(long)j * n + i], rowj, new Span<double>(P + (long)i * n + col, w));
                            }
                        }
                    });
                    if (s1 < k1)
                        DenseOps.Gemm(true, false, k1 - s1, t, s1 - s0, -1.0, A + (long)s0 * n + s1, n,
                            A + (long)s0 * n + k1, n, 1.0, A + (long)s1 * n + k1, n);
                }
                // 3. trailing update of the upper triangle: A22 −= R12ᵀ R12, block rows spread over threads
                int rowBlocks = (t + TrailingRows - 1) / TrailingRows;
                int threads = Math.Min(DenseOps.MaxThreads, rowBlocks);
                if (threads <= 1 || (double)t * t * b < 4e6)
                {
                    for (int i0 = k1; i0 < n; i0 += TrailingRows)
                    {
                        int i1 = Math.Min(n, i0 + TrailingRows);
                        DenseOps.Gemm(true, false, i1 - i0, n - i0, b, -1.0,
                            A + (long)k0 * n + i0, n, A + (long)k0 * n + i0, n, 1.0, A + (long)i0 * n + i0, n);
                    }
                }
                else
                {
                    // rows near the top carry the most columns: hand out block rows in order, dynamically
                    int next = -1;
                    Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
                    {
                        double* P = (double*)pA;
                        int r;
                        while ((r = Interlocked.Increment(ref next)) < rowBlocks)
                        {
                            int i0 = k1 + r * TrailingRows, i1 = Math.Min(n, i0 + TrailingRows);
                            DenseOps.GemmSerial(true, false, i1 - i0, n - i0, b, -1.0,
                                P + (long)k0 * n + i0, n, P + (long)k0 * n + i0, n, P + (long)i0 * n + i0, n);
                        }
                    });
                }
            }
            for (int i = 1; i < n; i++) new Span<double>(A + (long)i * n, i).Clear();
        }
        return -1;
    }

    const int FewRows = 4;

    // A handful of right-hand sides (MEMIT/D4S keys): stream R once per pass for all rows together.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void SolveFewRows(MatrixD bm)
    {
        int n = Size, k = bm.Rows;
        fixed (double* B = bm.Data) fixed (double* R = _p)
        {
            for (int j = 0; j < n; j++)          // Y R = B: y_j = b_j / R_jj, then b[j+1..] −= y_j R[j, j+1..]
            {
                double rjj = R[Row(n, j)];
                var rrow = new ReadOnlySpan<double>(R + Row(n, j) + 1, n - j - 1);
                for (int r = 0; r < k; r++)
                {
                    double* x = B + (long)r * n;
                    double y = x[j] / rjj;
                    x[j] = y;
                    if (y != 0) VectorOps.Axpy(-y, rrow, new Span<double>(x + j + 1, n - j - 1));
                }
            }
            for (int j = n - 1; j >= 0; j--)     // X Rᵀ = Y: x_j = (y_j − R[j, j+1..]·x[j+1..]) / R_jj
            {
                double rjj = R[Row(n, j)];
                var rrow = new ReadOnlySpan<double>(R + Row(n, j) + 1, n - j - 1);
                for (int r = 0; r < k; r++)
                {
                    double* x = B + (long)r * n;
                    x[j] = (x[j] - VectorOps.Dot(rrow, new ReadOnlySpan<double>(x + j + 1, n - j - 1))) / rjj;
                }
            }
        }
    }

    // Y R = B for every row (forward over columns), in place.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SolveRowsUpperTransposedInPlace(MatrixD bm, MatrixD rm)
    {
        int n = rm.Rows, k = bm.Rows;
        fixed (double* B = bm.Data) fixed (double* R = rm.Data)
        {
            nint pB = (nint)B, pR = (nint)R;
            for (int j0 = 0; j0 < n; j0 += Block)
            {
                int j1 = Math.Min(n, j0 + Block), jb = j1 - j0;
                if (j0 > 0) DenseOps.Gemm(false, false, k, jb, j0, -1.0, B, n, R + j0, n, 1.0, B + j0, n);
                DenseOps.ParallelRanges(k, (double)jb * jb, (r0, r1) =>
                {
                    double* Bp = (double*)pB, Rp = (double*)pR;
                    for (int r = r0; r < r1; r++)
                    {
                        double* x = Bp + (long)r * n;
                        for (int j = j0; j < j1; j++)
                        {
                            double xj = x[j] / Rp[(long)j * n + j];
                            x[j] = xj;
                            if (xj != 0)
                                VectorOps.Axpy(-xj, new ReadOnlySpan<double>(Rp + (long)j * n + j + 1, j1 - j - 1),
                                    new Span<double>(x + j + 1, j1 - j - 1));
                        }
                    }
                });
            }
        }
    }

    // X Rᵀ = Y for every row (backward over columns), in place.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void SolveRowsUpperInPlace(MatrixD bm, MatrixD rm)
    {
        int n = rm.Rows, k = bm.Rows;
        fixed (double* B = bm.Data) fixed (double* R = rm.Data)
        {
            nint pB = (nint)B, pR = (nint)R;
            int lastStart = (n - 1) / Block * Block;
            for (int j0 = lastStart; j0 >= 0; j0 -= Block)
            {
                int j1 = Math.Min(n, j0 + Block), jb = j1 - j0;
                if (j1 < n) DenseOps.Gemm(false, true, k, jb, n - j1, -1.0, B + j1, n, R + (long)j0 * n + j1, n, 1.0, B + j0, n);
                DenseOps.ParallelRanges(k, (double)jb * jb, (r0, r1) =>
                {
                    double* Bp = (double*)pB, Rp = (double*)pR;
                    for (int r = r0; r < r1; r++)
                    {
                        double* x = Bp + (long)r * n;
                        for (int j = j1 - 1; j >= j0; j--)
                        {
                            double s = VectorOps.Dot(new ReadOnlySpan<double>(Rp + (long)j * n + j + 1, j1 - j - 1),
                                new ReadOnlySpan<double>(x + j + 1, j1 - j - 1));
                            x[j] = (x[j] - s) / Rp[(long)j * n + j];
                        }
                    }
                });
            }
        }
    }

    /// <summary>
    /// Column right-hand sides through a factor's row solve: the n×k <paramref name="b"/> is overwritten with
    /// M⁻¹ b by solving its transpose row by row (every factor here is fastest on contiguous rows).
    /// </summary>
    internal static void SolveColumnsByRows(int size, MatrixD b, Action<MatrixD> solveRowsInPlace)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (b.Rows != size) throw new ArgumentException($"right-hand side has {b.Rows} rows, factor is {size}×{size}", nameof(b));
        var t = b.Transpose();
        solveRowsInPlace(t);
        TransposeInto(t, b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void TransposeInto(MatrixD src, MatrixD dst)
    {
        // dst (src.Cols × src.Rows) ← srcᵀ
        for (int i = 0; i < src.Rows; i++)
            for (int j = 0; j < src.Cols; j++)
                dst.Data[(long)j * src.Rows + i] = src.Data[(long)i * src.Cols + j];
    }
}
