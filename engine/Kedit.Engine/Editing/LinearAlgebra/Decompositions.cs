using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// Thin Householder QR of an m×n matrix A = Q R with p = min(m, n): Q is m×p with orthonormal columns,
/// R is p×n upper triangular (trapezoidal when n &gt; m). Works on Aᵀ so every column is a contiguous row.
/// O(m n p) flops, parallel over columns when large.
/// </summary>
public sealed class ThinQr
{
    /// <summary>Q (m×p), orthonormal columns.</summary>
    public MatrixD Q { get; }
    /// <summary>R (p×n), upper triangular.</summary>
    public MatrixD R { get; }

    ThinQr(MatrixD q, MatrixD r) { Q = q; R = r; }

    /// <summary>Computes the thin QR of <paramref name="a"/> (not modified).</summary>
    public static ThinQr Compute(MatrixD a)
    {
        ArgumentNullException.ThrowIfNull(a);
        int m = a.Rows, n = a.Cols, p = Math.Min(m, n);
        var at = a.Transpose();                 // n×m: row k = column k of A
        var vs = new double[p][];
        var taus = new double[p];
        var r = new MatrixD(p, n);
        for (int j = 0; j < p; j++)
        {
            var x = at.Data.AsSpan(j * m + j, m - j);
            double norm = VectorOps.Norm2(x);
            double alpha = x[0] > 0 ? -norm : norm;
            var v = x.ToArray();
            double tau = 0;
            if (norm > 0)
            {
                v[0] -= alpha;
                double vv = VectorOps.Dot(v, v);
                tau = vv > 0 ? 2.0 / vv : 0;
            }
            else alpha = 0;
            vs[j] = v; taus[j] = tau;
            r[j, j] = alpha;
            x.Clear(); x[0] = alpha;
            int rest = n - j - 1;
            if (tau != 0 && rest > 0)
            {
                int jj = j;
                DenseOps.ParallelRanges(rest, 4.0 * (m - j), (k0, k1) =>
                {
                    for (int k = jj + 1 + k0; k < jj + 1 + k1; k++)
                    {
                        var col = at.Data.AsSpan(k * m + jj, m - jj);
                        double w = VectorOps.Dot(v, col);
                        if (w != 0) VectorOps.Axpy(-tau * w, v, col);
                    }
                });
            }
            for (int k = j + 1; k < n; k++) r[j, k] = at.Data[(long)k * m + j];
        }
        // Q = H_0 ⋯ H_{p−1} [I_p; 0], built as Qᵀ (p×m) by applying the reflectors in reverse.
        var qt = new MatrixD(p, m);
        for (int i = 0; i < p; i++) qt[i, i] = 1.0;
        for (int j = p - 1; j >= 0; j--)
        {
            if (taus[j] == 0) continue;
            var v = vs[j]; double tau = taus[j]; int jj = j;
            DenseOps.ParallelRanges(p, 4.0 * (m - j), (i0, i1) =>
            {
                for (int i = i0; i < i1; i++)
                {
                    var q = qt.Data.AsSpan(i * m + jj, m - jj);
                    double w = VectorOps.Dot(v, q);
                    if (w != 0) VectorOps.Axpy(-tau * w, v, q);
                }
            });
        }
        return new ThinQr(qt.Transpose(), r);
    }
}

/// <summary>
/// Thin singular value decomposition A = U diag(S) Vᵀ of an m×n matrix, p = min(m, n), by one-sided
/// (Hestenes) Jacobi: rotations orthogonalise the columns, so singular values come out with high
/// relative accuracy. Meant for small cores (PRUNE's m×m) and test-sized dense matrices: O(p² max(m,n))
/// per sweep, typically 6–10 sweeps.
/// </summary>
public sealed class ThinSvd
{
    /// <summary>Left singular vectors (m×p). A column whose singular value is exactly 0 is the zero vector.</summary>
    public MatrixD U { get; }
    /// <summary>Singular values, descending, length p.</summary>
    public double[] S { get; }
    /// <summary>Right singular vectors (n×p), orthonormal columns.</summary>
    public MatrixD V { get; }

    ThinSvd(MatrixD u, double[] s, MatrixD v) { U = u; S = s; V = v; }

    /// <summary>Computes the thin SVD of <paramref name="a"/> (not modified).</summary>
    public static ThinSvd Compute(MatrixD a, int maxSweeps = 80)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rows < a.Cols)
        {
            var t = Compute(a.Transpose(), maxSweeps);
            return new ThinSvd(t.V, t.S, t.U);
        }
        int m = a.Rows, n = a.Cols;
        var b = a.Transpose();          // n×m: row i = column i of A
        var vt = MatrixD.Identity(n);   // row i = column i of V
        var norms = new double[n];
        for (int i = 0; i < n; i++) norms[i] = VectorOps.Dot(b.Row(i), b.Row(i));
        const double tol = 1e-15;
        for (int sweep = 0; sweep < maxSweeps; sweep++)
        {
            bool rotated = false;
            for (int i = 0; i < n - 1; i++)
                for (int j = i + 1; j < n; j++)
                {
                    double alpha = norms[i], beta = norms[j];
                    if (alpha == 0 || beta == 0) continue;
                    double gamma = VectorOps.Dot(b.Row(i), b.Row(j));
                    if (Math.Abs(gamma) <= tol * Math.Sqrt(alpha * beta)) continue;
                    rotated = true;
                    double zeta = (beta - alpha) / (2 * gamma);
                    double tt = Math.Sign(zeta == 0 ? 1 : zeta) / (Math.Abs(zeta) + Math.Sqrt(1 + zeta * zeta));
                    double c = 1 / Math.Sqrt(1 + tt * tt), s = c * tt;
                    Rotate(b.Row(i), b.Row(j), c, s);
                    Rotate(vt.Row(i), vt.Row(j), c, s);
                    norms[i] = VectorOps.Dot(b.Row(i), b.Row(i));
                    norms[j] = VectorOps.Dot(b.Row(j), b.Row(j));
                }
            if (!rotated) break;
        }
        var sv = new double[n];
        for (int i = 0; i < n; i++) sv[i] = VectorOps.Norm2(b.Row(i));
        var order = Enumerable.Range(0, n).OrderByDescending(i => sv[i]).ToArray();
        var u = new MatrixD(m, n); var v = new MatrixD(n, n); var s2 = new double[n];
        for (int k = 0; k < n; k++)
        {
            int i = order[k];
            s2[k] = sv[i];
            double inv = sv[i] > 0 ? 1.0 / sv[i] : 0.0;
            for (int r = 0; r < m; r++) u[r, k] = b[i, r] * inv;
            for (int r = 0; r < n; r++) v[r, k] = vt[i, r];
        }
        return new ThinSvd(u, s2, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Rotate(Span<double> x, Span<double> y, double c, double s)
    {
        // x ← c x − s y ; y ← s x + c y
        int k = 0, len = x.Length;
        if (Vector256.IsHardwareAccelerated)
        {
            var vc = Vector256.Create(c);
            var vs = Vector256.Create(s);
            for (; k <= len - 4; k += 4)
            {
                var xv = Vector256.Create(x.Slice(k, 4));
                var yv = Vector256.Create(y.Slice(k, 4));
                (vc * xv - vs * yv).CopyTo(x.Slice(k, 4));
                (vs * xv + vc * yv).CopyTo(y.Slice(k, 4));
            }
        }
        for (; k < len; k++)
        {
            double xk = x[k], yk = y[k];
            x[k] = c * xk - s * yk;
            y[k] = s * xk + c * yk;
        }
    }
}

/// <summary>
/// Eigenvalues (and, on request, eigenvectors) of a real symmetric matrix: Householder tridiagonalisation
/// (parallel symmetric matrix-vector products and rank-2 updates, 4n³/3 flops) followed by the implicit
/// QL algorithm; for vectors the reflections are accumulated into Q and QL's rotations applied to it
/// (about 3n³ more flops, one-time work such as AlphaEdit's projector). Both triangles are read.
/// </summary>
public static class SymmetricEigen
{
    /// <summary>All eigenvalues of the symmetric n×n <paramref name="a"/> (not modified), ascending.</summary>
    public static double[] Eigenvalues(MatrixD a)
    {
        var (d, e, _) = Tridiagonalize(a, keepReflections: false);
        TridiagonalQl(d, e);
        Array.Sort(d);
        return d;
    }

    /// <summary>
    /// Eigenvalues (ascending) and orthonormal eigenvectors (column j of <c>Vectors</c> belongs to
    /// <c>Values[j]</c>) of the symmetric n×n <paramref name="a"/> (not modified): a = V diag(λ) Vᵀ.
    /// </summary>
    public static (double[] Values, MatrixD Vectors) Decompose(MatrixD a)
    {
        // Qᵀ, because QL rotates pairs of eigenvector columns, and as rows of Qᵀ those are contiguous.
        var (d, e, qt) = Tridiagonalize(a, keepReflections: true);
        int n = d.Length;
        TridiagonalQl(d, e, qt);
        var order = Enumerable.Range(0, n).OrderBy(i => d[i]).ToArray();
        var values = order.Select(i => d[i]).ToArray();
        var vectors = new MatrixD(n, n);
        for (int j = 0; j < n; j++)
        {
            var row = qt!.Row(order[j]);
            for (int r = 0; r < n; r++) vectors[r, j] = row[r];
        }
        return (values, vectors);
    }

    /// <summary>
    /// Householder reduction a = Q T Qᵀ: T's diagonal d and off-diagonal e (e[i] couples i and i+1), and Qᵀ
    /// when <paramref name="keepReflections"/> (else null).
    /// </summary>
    static (double[] D, double[] E, MatrixD? Qt) Tridiagonalize(MatrixD a, bool keepReflections)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rows != a.Cols) throw new ArgumentException($"eigenvalues need a square matrix, got {a.Rows}×{a.Cols}", nameof(a));
        int n = a.Rows;
        var d = new double[n];
        var e = new double[n];      // e[i] couples i and i+1
        if (n == 0) return (d, e, keepReflections ? new MatrixD(0, 0) : null);
        var w = a.Clone();
        var p = new double[n];
        var reflections = keepReflections ? new (double[] V, double Tau)[n] : null;
        for (int k = 0; k < n - 1; k++)
        {
            int len = n - k - 1;
            var x = w.Data.AsSpan(k * n + k + 1, len);     // column k below the diagonal = row k right of it
            d[k] = w[k, k];
            double norm = VectorOps.Norm2(x);
            if (norm == 0) { e[k] = 0; continue; }
            double alpha = x[0] > 0 ? -norm : norm;
            var v = x.ToArray();
            v[0] -= alpha;
            double tau = 2.0 / VectorOps.Dot(v, v);
            e[k] = alpha;
            if (reflections != null) reflections[k] = (v, tau);
            int off = k + 1;
            // p = τ A22 v
            DenseOps.ParallelRanges(len, 2.0 * len, (i0, i1) =>
            {
                for (int i = i0; i < i1; i++) p[i] = tau * VectorOps.Dot(w.Data.AsSpan((off + i) * n + off, len), v);
            });
            var ps = p.AsSpan(0, len);
            double kk = 0.5 * tau * VectorOps.Dot(v, ps);
            VectorOps.Axpy(-kk, v, ps);              // w = p − K v
            var wv = ps.ToArray();
            // A22 −= v wᵀ + w vᵀ
            DenseOps.ParallelRanges(len, 4.0 * len, (i0, i1) =>
            {
                for (int i = i0; i < i1; i++)
                {
                    var row = w.Data.AsSpan((off + i) * n + off, len);
                    VectorOps.Axpy(-v[i], wv, row);
                    VectorOps.Axpy(-wv[i], v, row);
                }
            });
        }
        d[n - 1] = w[n - 1, n - 1];
        e[n - 1] = 0;
        if (reflections == null) return (d, e, null);
        // Qᵀ = H_{n−2} ⋯ H_1 H_0, built as Qᵀ ← Qᵀ H_k from k = n−2 down: only rows and columns k+1.. of what is
        // built so far are non-trivial, and each of those rows takes row −= τ (row·v) vᵀ on its own (in parallel).
        var qt = MatrixD.Identity(n);
        for (int k = n - 2; k >= 0; k--)
        {
            var (v, tau) = reflections[k];
            if (v == null) continue;
            int off = k + 1, len = n - off;
            DenseOps.ParallelRanges(len, 4.0 * len, (i0, i1) =>
            {
                for (int i = i0; i < i1; i++)
                {
                    var row = qt.Data.AsSpan((off + i) * n + off, len);
                    VectorOps.Axpy(-tau * VectorOps.Dot(row, v), v, row);
                }
            });
        }
        return (d, e, qt);
    }

    /// <summary>
    /// Eigenvalues of the symmetric tridiagonal matrix with diagonal <paramref name="d"/> and off-diagonal
    /// <paramref name="e"/> (e[i] couples i and i+1; e[n−1] ignored), by implicit QL with Wilkinson shifts.
    /// Overwrites d with the eigenvalues (unsorted) and destroys e.
    /// </summary>
    public static void TridiagonalQl(double[] d, double[] e) => TridiagonalQl(d, e, null);

    /// <summary>
    /// As <see cref="TridiagonalQl(double[], double[])"/>, applying every rotation to the rows of <paramref name="zt"/>
    /// when given (the eigenvector matrix transposed: row i is vector i).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TridiagonalQl(double[] d, double[] e, MatrixD? zt)
    {
        int n = d.Length;
        if (n == 0) return;
        e[n - 1] = 0;
        // The rotations do not depend on the vectors: they are recorded (up to a batch) and then applied to the
        // vectors in column slices that stay in L2 while they take the whole sequence, on both cores.
        // A full run records about n² rotations; room for 2n² (at most 32 MiB) means one batch in practice.
        var rotations = zt != null ? new RotationBatch(zt, (int)Math.Min(1 << 21, 2L * n * n)) : null;
        for (int l = 0; l < n; l++)
        {
            int iter = 0;
            int m;
            do
            {
                for (m = l; m < n - 1; m++)
                {
                    double dd = Math.Abs(d[m]) + Math.Abs(d[m + 1]);
                    if (Math.Abs(e[m]) <= double.Epsilon || Math.Abs(e[m]) <= 2.220446049250313e-16 * dd) break;
                }
                if (m != l)
                {
                    if (iter++ == 100) throw new InvalidOperationException("tridiagonal QL did not converge in 100 iterations");
                    double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
                    double r = Hypot(g, 1.0);
                    g = d[m] - d[l] + e[l] / (g + (g >= 0 ? Math.Abs(r) : -Math.Abs(r)));
                    double s = 1, c = 1, p = 0;
                    int i;
                    bool underflow = false;
                    for (i = m - 1; i >= l; i--)
                    {
                        double f = s * e[i], b = c * e[i];
                        r = Hypot(f, g);
                        e[i + 1] = r;
                        if (r == 0) { d[i + 1] -= p; e[m] = 0; underflow = true; break; }
                        s = f / r; c = g / r;
                        g = d[i + 1] - p;
                        r = (d[i] - g) * s + 2.0 * c * b;
                        p = s * r;
                        d[i + 1] = g + p;
                        g = c * r - b;
                        rotations?.Add(i, c, s);
                    }
                    if (underflow) continue;
                    d[l] -= p; e[l] = g; e[m] = 0;
                }
            } while (m != l);
        }
        rotations?.Flush();
    }

    /// <summary>Plane rotations (rows i, i+1) recorded in order and applied to a matrix's rows in column slices.</summary>
    sealed class RotationBatch(MatrixD zt, int capacity)
    {
        const int Slice = 32;   // a slice of 32 columns is n·256 bytes: it stays in L2 through the whole batch
        readonly int[] _row = new int[capacity];
        readonly double[] _c = new double[capacity], _s = new double[capacity];
        int _count;

        public void Add(int row, double c, double s)
        {
            _row[_count] = row; _c[_count] = c; _s[_count] = s;
            if (++_count == capacity) Flush();
        }

        public void Flush()
        {
            int count = _count, cols = zt.Cols;
            _count = 0;
            if (count == 0) return;
            void Run(int c0, int c1)
            {
                for (int j = 0; j < count; j++)
                {
                    int i = _row[j];
                    RotateRows(zt.Data.AsSpan(i * cols + c0, c1 - c0), zt.Data.AsSpan((i + 1) * cols + c0, c1 - c0), _c[j], _s[j]);
                }
            }
            if ((long)count * cols < 1 << 16) { Run(0, cols); return; }
            Parallel.For(0, (cols + Slice - 1) / Slice, q => Run(q * Slice, Math.Min(cols, (q + 1) * Slice)));
        }
    }

    /// <summary>(x, y) ← (c·x − s·y, s·x + c·y).</summary>
    static void RotateRows(Span<double> x, Span<double> y, double c, double s)
    {
        int k = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var vx = System.Runtime.InteropServices.MemoryMarshal.Cast<double, System.Numerics.Vector<double>>(x);
            var vy = System.Runtime.InteropServices.MemoryMarshal.Cast<double, System.Numerics.Vector<double>>(y);
            for (int v = 0; v < vx.Length; v++)
            {
                var xv = vx[v];
                vx[v] = c * xv - s * vy[v];
                vy[v] = s * xv + c * vy[v];
            }
            k = vx.Length * System.Numerics.Vector<double>.Count;
        }
        for (; k < x.Length; k++)
        {
            double xv = x[k];
            x[k] = c * xv - s * y[k];
            y[k] = s * xv + c * y[k];
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
}
