namespace Kedit.Editing.LinearAlgebra;

/// <summary>PRUNE restraint function F (spec §13.2); names as in the reference's <c>--reduce_type</c>.</summary>
public enum PruneMode
{
    /// <summary>F(σ) = ln σ − ln s0 + s0 for σ ≥ s0 (default).</summary>
    Log,
    /// <summary>Base-2 logarithm.</summary>
    Log2,
    /// <summary>Base-1.5 logarithm.</summary>
    Log1_5,
    /// <summary>Base-1.2 logarithm.</summary>
    Log1_2,
    /// <summary>F(σ) = (σ + s0)/2 for σ ≥ s0.</summary>
    Linear,
}

/// <summary>
/// Outcome of a PRUNE restraint of one layer's perturbation Δ = U diag(σ) Vᵀ: the restrained perturbation
/// is Δ' = Σ_{i&lt;r} F(σ_i) u_i v_iᵀ = <see cref="UPrime"/> · <see cref="VPrime"/>ᵀ, and the served weights W0 + Δ'.
/// </summary>
public sealed class PruneResult
{
    /// <summary>All computed singular values of Δ, descending (length min(m, d, f) factored; min(d, f) dense).</summary>
    public required double[] SingularValues { get; init; }
    /// <summary>F(σ_i) for i &lt; <see cref="Rank"/>.</summary>
    public required double[] RestrainedValues { get; init; }
    /// <summary>Numerical rank r = #{σ_i &gt; σ_1 · max(d, f) · eps}; components beyond it are dropped.</summary>
    public required int Rank { get; init; }
    /// <summary>How many of the kept singular values were ≥ s0 and hence changed.</summary>
    public required int RestrainedCount { get; init; }
    /// <summary>σ_max(W0) used as the threshold s0.</summary>
    public required double SigmaMaxW0 { get; init; }
    /// <summary>The mode applied.</summary>
    public required PruneMode Mode { get; init; }
    /// <summary>Whether F is a contraction for this s0 (s0 · ln α ≥ 1; always for linear). The caller must report false.</summary>
    public required bool IsContraction { get; init; }
    /// <summary>Left singular vectors of Δ (d×p), orthonormal columns (zero columns where σ = 0 in the dense path).</summary>
    public required MatrixD U { get; init; }
    /// <summary>Right singular vectors of Δ (f×p).</summary>
    public required MatrixD V { get; init; }
    /// <summary>U[:, :r] · diag(F(σ)) (d×r).</summary>
    public required MatrixD UPrime { get; init; }
    /// <summary>V[:, :r] (f×r).</summary>
    public required MatrixD VPrime { get; init; }

    /// <summary>Δ' = U' V'ᵀ as a dense d×f matrix.</summary>
    public MatrixD DeltaPrime() => MatrixD.Multiply(UPrime, VPrime, false, true);
}

/// <summary>
/// PRUNE (spec §13, §17.1): restrain the singular values of an edited layer's accumulated perturbation
/// that exceed σ_max(W0), keeping the singular vectors, dropping components beyond the numerical rank.
/// <see cref="RestrainFactored"/> works from ΔW = X Yᵀ by thin QR + a small core SVD, O((d+f) m² + m³);
/// <see cref="RestrainDense"/> is the dense reference (full SVD of Δ) for tests and small matrices.
/// </summary>
public static class Prune
{
    /// <summary>2⁻²³, float32 machine epsilon: the reference computes the SVD in float32 (spec §13.3 step 4).</summary>
    public const double Float32Epsilon = 1.1920928955078125e-7;
    /// <summary>2⁻⁵², float64 machine epsilon (numpy's matrix_rank on float64 data, as in the fixtures).</summary>
    public const double Float64Epsilon = 2.220446049250313e-16;

    /// <summary>Parses "log", "log2", "log1.5"/"log1_5", "log1.2"/"log1_2", "linear" (case-insensitive).</summary>
    public static PruneMode ParseMode(string name) => name?.Trim().ToLowerInvariant() switch
    {
        "log" or "ln" => PruneMode.Log,
        "log2" => PruneMode.Log2,
        "log1.5" or "log1_5" => PruneMode.Log1_5,
        "log1.2" or "log1_2" => PruneMode.Log1_2,
        "linear" => PruneMode.Linear,
        _ => throw new KeditException($"unknown PRUNE mode '{name}': expected log, log2, log1.5, log1.2 or linear"),
    };

    /// <summary>The canonical name of a mode ("log", "log2", "log1.5", "log1.2", "linear").</summary>
    public static string ModeName(PruneMode mode) => mode switch
    {
        PruneMode.Log => "log", PruneMode.Log2 => "log2", PruneMode.Log1_5 => "log1.5",
        PruneMode.Log1_2 => "log1.2", PruneMode.Linear => "linear",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>Base α of a logarithmic mode (NaN for linear).</summary>
    public static double LogBase(PruneMode mode) => mode switch
    {
        PruneMode.Log => Math.E, PruneMode.Log2 => 2.0, PruneMode.Log1_5 => 1.5, PruneMode.Log1_2 => 1.2,
        PruneMode.Linear => double.NaN, _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>
    /// F(σ): σ if σ &lt; s0; otherwise log_α(σ) − log_α(s0) + s0 (log modes) or (σ + s0)/2 (linear).
    /// The comparison is ≥, as in the reference.
    /// </summary>
    public static double Restrain(double sigma, double sigmaMaxW0, PruneMode mode)
    {
        if (sigma < sigmaMaxW0) return sigma;
        if (mode == PruneMode.Linear) return 0.5 * (sigma + sigmaMaxW0);
        double lnA = Math.Log(LogBase(mode));
        return (Math.Log(sigma) - Math.Log(sigmaMaxW0)) / lnA + sigmaMaxW0;
    }

    /// <summary>True when F(σ) ≤ σ for all σ ≥ s0, i.e. s0 · ln α ≥ 1 (always for linear).</summary>
    public static bool IsContraction(double sigmaMaxW0, PruneMode mode)
        => mode == PruneMode.Linear || sigmaMaxW0 * Math.Log(LogBase(mode)) >= 1.0;

    /// <summary>r = #{ i : σ_i &gt; σ_1 · max(rows, cols) · eps } for descending σ (numpy matrix_rank's rule).</summary>
    public static int NumericalRank(ReadOnlySpan<double> descending, int rows, int cols, double eps)
    {
        if (descending.Length == 0 || !(descending[0] > 0)) return 0;
        double tol = descending[0] * Math.Max(rows, cols) * eps;
        int r = 0;
        foreach (double s in descending) if (s > tol) r++;
        return r;
    }

    /// <summary>
    /// PRUNE from factors: Δ = X Yᵀ with X (d×m), Y (f×m). Thin QR of X and Y, SVD of the core R_x R_yᵀ,
    /// rank rule with <paramref name="rankEpsilon"/> (default 2⁻²³, the reference's float32 rule of §17.1;
    /// pass <see cref="Float64Epsilon"/> to match float64 computations such as the fixtures), then F.
    /// </summary>
    public static PruneResult RestrainFactored(MatrixD x, MatrixD y, double sigmaMaxW0, PruneMode mode = PruneMode.Log,
        double rankEpsilon = Float32Epsilon)
    {
        ArgumentNullException.ThrowIfNull(x); ArgumentNullException.ThrowIfNull(y);
        if (x.Cols != y.Cols) throw new ArgumentException($"X ({x.Rows}×{x.Cols}) and Y ({y.Rows}×{y.Cols}) need the same number of columns", nameof(y));
        CheckThreshold(sigmaMaxW0);
        int d = x.Rows, f = y.Rows;
        if (x.Cols == 0)
            return Build(new MatrixD(d, 0), Array.Empty<double>(), new MatrixD(f, 0), d, f, sigmaMaxW0, mode, rankEpsilon);
        var qx = ThinQr.Compute(x);
        var qy = ThinQr.Compute(y);
        var core = MatrixD.Multiply(qx.R, qy.R, false, true);     // px×py
        var svd = ThinSvd.Compute(core);
        var u = MatrixD.Multiply(qx.Q, svd.U);                      // d×q
        var v = MatrixD.Multiply(qy.Q, svd.V);                      // f×q
        return Build(u, svd.S, v, d, f, sigmaMaxW0, mode, rankEpsilon);
    }

    /// <summary>Dense reference: full thin SVD of Δ (d×f), then the same rank rule and F.</summary>
    public static PruneResult RestrainDense(MatrixD delta, double sigmaMaxW0, PruneMode mode = PruneMode.Log,
        double rankEpsilon = Float32Epsilon)
    {
        ArgumentNullException.ThrowIfNull(delta);
        CheckThreshold(sigmaMaxW0);
        var svd = ThinSvd.Compute(delta);
        return Build(svd.U, svd.S, svd.V, delta.Rows, delta.Cols, sigmaMaxW0, mode, rankEpsilon);
    }

    static void CheckThreshold(double s0)
    {
        if (!(s0 > 0) || !double.IsFinite(s0))
            throw new ArgumentOutOfRangeException(nameof(s0), $"σ_max(W0) must be positive and finite, got {s0}");
    }

    static PruneResult Build(MatrixD u, double[] s, MatrixD v, int d, int f, double s0, PruneMode mode, double eps)
    {
        int r = NumericalRank(s, d, f, eps);
        var restrained = new double[r];
        int changed = 0;
        var up = new MatrixD(d, r);
        var vp = new MatrixD(f, r);
        for (int i = 0; i < r; i++)
        {
            restrained[i] = Restrain(s[i], s0, mode);
            if (s[i] >= s0) changed++;
        }
        for (int row = 0; row < d; row++)
            for (int i = 0; i < r; i++) up[row, i] = u[row, i] * restrained[i];
        for (int row = 0; row < f; row++)
            for (int i = 0; i < r; i++) vp[row, i] = v[row, i];
        return new PruneResult
        {
            SingularValues = s, RestrainedValues = restrained, Rank = r, RestrainedCount = changed,
            SigmaMaxW0 = s0, Mode = mode, IsContraction = IsContraction(s0, mode),
            U = u, V = v, UPrime = up, VPrime = vp,
        };
    }
}
