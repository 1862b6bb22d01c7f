namespace Kedit.Editing.LinearAlgebra;

/// <summary>Result of <see cref="SpectralNorm.Largest(int, int, Action{ReadOnlySpan{double}, Span{double}}, Action{ReadOnlySpan{double}, Span{double}}, int, double, int)"/>.</summary>
/// <param name="Value">Estimated σ_max (a lower bound that converges from below).</param>
/// <param name="Steps">Lanczos steps taken (products with W and with Wᵀ each).</param>
/// <param name="Converged">True when the Ritz residual bound β_k·|p_k| fell below tolerance·σ (so σ_max is certified
/// to that relative accuracy, barring a start vector orthogonal to the top singular vector) or the Krylov space became invariant.</param>
public readonly record struct SpectralNormResult(double Value, int Steps, bool Converged);

/// <summary>
/// σ_max of a matrix known only through products, by Golub–Kahan–Lanczos bidiagonalisation with full
/// reorthogonalisation (spec §17.1). The products are delegates, so float32 weights are used in place.
/// </summary>
public static class SpectralNorm
{
    /// <summary>σ₁(X·Yᵀ) from the factors (X d×n, Y f×n): thin QR of both, SVD of the small n×n core R_x R_yᵀ.</summary>
    public static double OfProduct(MatrixD x, MatrixD y)
    {
        if (x.Cols == 0) return 0;
        if (x.Cols == 1) return VectorOps.Norm2(x.Data) * VectorOps.Norm2(y.Data);
        var core = MatrixD.Multiply(ThinQr.Compute(x).R, ThinQr.Compute(y).R, false, true);
        return ThinSvd.Compute(core).S[0];
    }

    /// <summary>
    /// Largest singular value of a rows×cols matrix W given <paramref name="multiply"/> (x ∈ ℝ^cols ↦ W x ∈ ℝ^rows)
    /// and <paramref name="multiplyTransposed"/> (y ∈ ℝ^rows ↦ Wᵀ y ∈ ℝ^cols). Stops when the Ritz residual is below
    /// <paramref name="relativeTolerance"/>·σ, or after <paramref name="maxSteps"/> (capped at min(rows, cols) + 1: the step
    /// after the Krylov space fills the smaller side finds the invariant subspace and is exact).
    /// Deterministic for a given <paramref name="seed"/>.
    /// </summary>
    public static SpectralNormResult Largest(int rows, int cols,
        Action<ReadOnlySpan<double>, Span<double>> multiply, Action<ReadOnlySpan<double>, Span<double>> multiplyTransposed,
        int maxSteps = 100, double relativeTolerance = 1e-10, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(multiply); ArgumentNullException.ThrowIfNull(multiplyTransposed);
        if (rows <= 0 || cols <= 0) return new SpectralNormResult(0, 0, true);
        int cap = Math.Min(maxSteps, Math.Min(rows, cols) + 1);
        var rng = new Random(seed);
        var vs = new List<double[]>(); var us = new List<double[]>();
        var alphas = new List<double>(); var betas = new List<double>();
        var v = new double[cols];
        for (int i = 0; i < cols; i++) v[i] = 2 * rng.NextDouble() - 1;
        VectorOps.Scale(1.0 / VectorOps.Norm2(v), v);
        vs.Add(v);
        var u = new double[rows];
        multiply(v, u);
        double a = VectorOps.Norm2(u);
        if (a == 0) return new SpectralNormResult(0, 1, true);
        VectorOps.Scale(1.0 / a, u);
        us.Add(u); alphas.Add(a);
        for (int k = 1; ; k++)
        {
            // v' = Wᵀ u_k − α_k v_k, reorthogonalised against all v; β_k = ‖v'‖
            var vn = new double[cols];
            multiplyTransposed(us[^1], vn);
            VectorOps.Axpy(-alphas[^1], vs[^1], vn);
            Reorthogonalise(vn, vs);
            double b = VectorOps.Norm2(vn);
            // Ritz value θ of B_k with left vector p: ‖Wᵀ U_k p − θ V_k q‖ = β_k |p_k| bounds |θ − σ| for some σ
            var (theta, pLast) = TopTriplet(alphas, betas);
            if (b * Math.Abs(pLast) <= relativeTolerance * theta || b <= 1e-14 * theta)
                return new SpectralNormResult(theta, k, true);
            if (k >= cap) return new SpectralNormResult(theta, k, false);
            VectorOps.Scale(1.0 / b, vn);
            vs.Add(vn); betas.Add(b);
            // u' = W v_{k+1} − β_k u_k, reorthogonalised against all u
            var un = new double[rows];
            multiply(vn, un);
            VectorOps.Axpy(-b, us[^1], un);
            Reorthogonalise(un, us);
            a = VectorOps.Norm2(un);
            if (a <= 1e-14 * theta)
            {
                alphas.Add(0);   // invariant subspace: B_{k+1} holds the exact singular values
                return new SpectralNormResult(TopTriplet(alphas, betas).Theta, k + 1, true);
            }
            VectorOps.Scale(1.0 / a, un);
            us.Add(un); alphas.Add(a);
        }
    }

    /// <summary>σ_max of a dense matrix by the same Lanczos iteration.</summary>
    public static SpectralNormResult Largest(MatrixD w, int maxSteps = 100, double relativeTolerance = 1e-10, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(w);
        return Largest(w.Rows, w.Cols, (x, y) => DenseOps.MatVec(w, x, y), (x, y) => DenseOps.MatTVec(w, x, y),
            maxSteps, relativeTolerance, seed);
    }

    // Two passes of classical Gram–Schmidt ("twice is enough").
    static void Reorthogonalise(double[] x, List<double[]> basis)
    {
        for (int pass = 0; pass < 2; pass++)
            foreach (var q in basis)
            {
                double c = VectorOps.Dot(q, x);
                if (c != 0) VectorOps.Axpy(-c, q, x);
            }
    }

    // Upper bidiagonal B_k (diag α, super β): its largest singular value and the last entry of its left vector.
    static (double Theta, double PLast) TopTriplet(List<double> alphas, List<double> betas)
    {
        int k = alphas.Count;
        var bk = new MatrixD(k, k);
        for (int i = 0; i < k; i++)
        {
            bk[i, i] = alphas[i];
            if (i + 1 < k) bk[i, i + 1] = betas[i];
        }
        var svd = ThinSvd.Compute(bk);
        return (svd.S[0], svd.U[k - 1, 0]);
    }
}

/// <summary>σ_max, σ_min and κ = σ_max/σ_min over the d non-zero singular values of a wide d×f matrix.</summary>
public readonly record struct ConditionResult(double SigmaMax, double SigmaMin, double Kappa);

/// <summary>
/// PRUNE's condition-number diagnostic (spec §17.1) for W = W0 + X Yᵀ (d×f, d ≤ f): caches the Gram
/// matrix G0 = W0 W0ᵀ once, forms W Wᵀ = G0 + P Xᵀ + X Pᵀ + X (YᵀY) Xᵀ with P = W0 Y, and takes its extreme
/// eigenvalues. Squaring limits the measurable κ to about 1e7–1e8 in float64; diagnostics only.
/// </summary>
public sealed class ConditionNumber
{
    readonly Action<ReadOnlySpan<double>, Span<double>> _multiplyW0;

    /// <summary>G0 = W0 W0ᵀ (d×d).</summary>
    public MatrixD Gram0 { get; }
    /// <summary>d (rows of W0).</summary>
    public int OutputDim { get; }
    /// <summary>f (columns of W0).</summary>
    public int KeyDim { get; }

    /// <summary>From a dense W0 (d×f, d ≤ f); W0 is referenced for the products W0·Y.</summary>
    public ConditionNumber(MatrixD w0)
    {
        ArgumentNullException.ThrowIfNull(w0);
        if (w0.Rows > w0.Cols) throw new ArgumentException($"W0 must be wide (d ≤ f) in math orientation, got {w0.Rows}×{w0.Cols}", nameof(w0));
        OutputDim = w0.Rows; KeyDim = w0.Cols;
        Gram0 = MatrixD.Multiply(w0, w0, false, true);
        _multiplyW0 = (x, y) => DenseOps.MatVec(w0, x, y);
    }

    /// <summary>From a cached Gram matrix G0 (d×d) and the product x ∈ ℝ^f ↦ W0 x ∈ ℝ^d (e.g. on float32 weights).</summary>
    public ConditionNumber(MatrixD gram0, int keyDim, Action<ReadOnlySpan<double>, Span<double>> multiplyW0)
    {
        ArgumentNullException.ThrowIfNull(gram0); ArgumentNullException.ThrowIfNull(multiplyW0);
        if (gram0.Rows != gram0.Cols) throw new ArgumentException($"G0 must be square, got {gram0.Rows}×{gram0.Cols}", nameof(gram0));
        if (keyDim < gram0.Rows) throw new ArgumentException($"W0 must be wide (d ≤ f): d = {gram0.Rows}, f = {keyDim}", nameof(keyDim));
        Gram0 = gram0; OutputDim = gram0.Rows; KeyDim = keyDim; _multiplyW0 = multiplyW0;
    }

    /// <summary>κ of W0 + X Yᵀ (X d×m, Y f×m); both null gives κ(W0).</summary>
    public ConditionResult Compute(MatrixD? x = null, MatrixD? y = null)
    {
        if ((x == null) != (y == null)) throw new ArgumentException("give both factors X and Y, or neither");
        var g = Gram0.Clone();
        if (x != null && y != null)
        {
            if (x.Rows != OutputDim) throw new ArgumentException($"X must have {OutputDim} rows (d), got {x.Rows}×{x.Cols}", nameof(x));
            if (y.Rows != KeyDim) throw new ArgumentException($"Y must have {KeyDim} rows (f), got {y.Rows}×{y.Cols}", nameof(y));
            if (x.Cols != y.Cols) throw new ArgumentException($"X and Y need the same number of columns, got {x.Cols} and {y.Cols}", nameof(y));
            int m = x.Cols;
            var pt = new MatrixD(m, OutputDim);        // Pᵀ, row j = W0 y_j
            var col = new double[KeyDim];
            for (int j = 0; j < m; j++)
            {
                for (int i = 0; i < KeyDim; i++) col[i] = y[i, j];
                _multiplyW0(col, pt.Row(j));
            }
            var yty = MatrixD.Multiply(y, y, true, false);     // m×m
            var t = MatrixD.Multiply(x, yty);                   // X YᵀY
            DenseOps.Gemm(true, true, 1.0, pt, x, 1.0, g);      // P Xᵀ
            DenseOps.Gemm(false, false, 1.0, x, pt, 1.0, g);    // X Pᵀ
            DenseOps.Gemm(false, true, 1.0, t, x, 1.0, g);      // X YᵀY Xᵀ
            MemitSolver.Symmetrize(g);
        }
        return FromGram(g);
    }

    /// <summary>σ_max, σ_min, κ from a Gram matrix W Wᵀ (negative rounding eigenvalues count as 0: κ = ∞).</summary>
    public static ConditionResult FromGram(MatrixD gram)
    {
        var ev = SymmetricEigen.Eigenvalues(gram);
        if (ev.Length == 0) return new ConditionResult(0, 0, double.NaN);
        double smax = Math.Sqrt(Math.Max(0, ev[^1])), smin = Math.Sqrt(Math.Max(0, ev[0]));
        return new ConditionResult(smax, smin, smin > 0 ? smax / smin : double.PositiveInfinity);
    }
}
