namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// MEMIT's per-layer solve (spec §11 step d–e, §17.2) with the factor of λC cached once:
/// <code>
/// G = (λC)⁻¹ K,  S = I + Kᵀ G,  A = G S⁻¹ = (λC + K Kᵀ)⁻¹ K,  ΔW = R Aᵀ
/// </code>
/// O(f² n + d f n) per call instead of an f×f factorisation. If λC is not positive definite the solver
/// falls back to LU with partial pivoting (the reference's solver) and says so in
/// <see cref="FallbackReason"/>; no jitter is added. Where λC is factored (host or device) is the
/// <c>LinearAlgebraPlacement</c>'s choice; the per-call n×n system stays on the host.
/// </summary>
public sealed class MemitSolver
{
    readonly ISpdFactor? _chol;
    readonly LuFactor? _lu;

    /// <summary>Key dimension f.</summary>
    public int KeyDim { get; }

    /// <summary>True when λC was not SPD and LU is used instead of Cholesky.</summary>
    public bool UsesLuFallback => _lu != null;

    /// <summary>Why the LU fallback is in use (the Cholesky failure message), or null.</summary>
    public string? FallbackReason { get; }

    /// <summary>
    /// The cached host Cholesky factor of λC, shareable with <see cref="D4sState"/>; null under the LU fallback
    /// and when λC was factored on a device (see <see cref="SpdFactor"/>).
    /// </summary>
    public CholeskyFactor? Factor => _chol as CholeskyFactor;

    /// <summary>The cached Cholesky factor of λC wherever it lives (host or device); null under the LU fallback.</summary>
    public ISpdFactor? SpdFactor => _chol;

    /// <summary>True when the factor of λC is held on a device (any factor but the host's).</summary>
    public bool FactorOnDevice => _chol is not null and not CholeskyFactor;

    /// <summary>
    /// Factors <paramref name="lambdaC"/> = λ·C (f×f, symmetric; already multiplied by λ). Cholesky first;
    /// on <see cref="NotPositiveDefiniteException"/> falls back to LU (throws <see cref="SingularMatrixException"/>
    /// if even that fails). <paramref name="what"/> names the matrix in messages (e.g. "λ·C of layer 7").
    /// </summary>
    public MemitSolver(MatrixD lambdaC, string what = "λ·C") : this(lambdaC, what, CholeskyFactor.TryFactorOnHost) { }

    /// <summary>
    /// As <see cref="MemitSolver(MatrixD, string)"/>, with the Cholesky factorisation of λC (and every later solve
    /// with it) where <paramref name="factorize"/> puts it (the placement's, e.g. on a device); the LU fallback runs on the host.
    /// </summary>
    public MemitSolver(MatrixD lambdaC, string what, SpdFactorizer factorize)
    {
        ArgumentNullException.ThrowIfNull(lambdaC); ArgumentNullException.ThrowIfNull(factorize);
        if (lambdaC.Rows != lambdaC.Cols) throw new ArgumentException($"{what} must be square, got {lambdaC.Rows}×{lambdaC.Cols}", nameof(lambdaC));
        KeyDim = lambdaC.Rows;
        if (factorize(lambdaC, out var f, out int p, out double v)) _chol = f;
        else
        {
            FallbackReason = new NotPositiveDefiniteException(what, p, v).Message + "; using LU with partial pivoting";
            _lu = LuFactor.Factor(lambdaC, what);
        }
    }

    /// <summary>Uses an already computed (cached) Cholesky factor of λC; it is not modified.</summary>
    public MemitSolver(CholeskyFactor lambdaCFactor)
    {
        _chol = lambdaCFactor ?? throw new ArgumentNullException(nameof(lambdaCFactor));
        KeyDim = lambdaCFactor.Size;
    }

    /// <summary>Solves rows in place: every row b ← (λC)⁻¹ b (λC symmetric).</summary>
    internal void SolveLambdaCRows(MatrixD rows)
    {
        if (_chol != null) _chol.SolveRowsInPlace(rows); else _lu!.SolveRowsInPlace(rows);
    }

    /// <summary>
    /// Aᵀ = ((λC + K Kᵀ)⁻¹ K)ᵀ as an n×f matrix (row j is the solved key j), for keys K (f×n).
    /// Stored transposed because every consumer (ΔW = R Aᵀ, PRUNE's Y factor) wants rows.
    /// </summary>
    public MatrixD SolveKeysTransposed(MatrixD keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Rows != KeyDim) throw new ArgumentException($"keys must have {KeyDim} rows (f), got {keys.Rows}×{keys.Cols}", nameof(keys));
        int n = keys.Cols;
        var kt = keys.Transpose();              // n×f
        var gt = kt.Clone();
        SolveLambdaCRows(gt);                    // Gᵀ = Kᵀ (λC)⁻¹
        var s = MatrixD.Identity(n);
        DenseOps.Gemm(false, true, 1.0, kt, gt, 1.0, s);   // S = I + Kᵀ G
        Symmetrize(s);
        // Aᵀ = S⁻¹ Gᵀ (S symmetric). S is SPD whenever λC is; LU otherwise.
        if (CholeskyFactor.TryFactor(s, out var sf, out _, out _)) sf!.SolveInPlace(gt);
        else LuFactor.Factor(s, "I + Kᵀ(λC)⁻¹K").SolveInPlace(gt);
        return gt;
    }

    /// <summary>
    /// ΔW = R Aᵀ = R Kᵀ (λC + K Kᵀ)⁻¹ (d×f) for keys K (f×n) and residuals R (d×n) that the caller has
    /// already divided by (L − i).
    /// </summary>
    public MatrixD Solve(MatrixD keys, MatrixD residuals)
    {
        ArgumentNullException.ThrowIfNull(keys); ArgumentNullException.ThrowIfNull(residuals);
        if (residuals.Cols != keys.Cols)
            throw new ArgumentException($"residuals have {residuals.Cols} columns but keys have {keys.Cols} (one per request)", nameof(residuals));
        var at = SolveKeysTransposed(keys);
        return MatrixD.Multiply(residuals, at);
    }

    internal static void Symmetrize(MatrixD s)
    {
        int n = s.Rows;
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
            {
                double v = 0.5 * (s[i, j] + s[j, i]);
                s[i, j] = v; s[j, i] = v;
            }
    }
}
