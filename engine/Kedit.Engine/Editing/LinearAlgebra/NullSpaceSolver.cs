namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// AlphaEdit's per-layer solve (spec §14) in null-space coordinates (§17.3). U0 (f×r) spans the eigenvectors
/// of the key second moment C whose eigenvalue is below <c>nullspace_threshold</c>, so P = U0 U0ᵀ projects
/// onto directions the preserved keys hardly use; with Ã = U0ᵀ Σ_prev U0 (the earlier batches' keys),
/// <code>
/// G = U0 (Ã + αI + Kᵤ Kᵤᵀ)⁻¹ Kᵤ,  Kᵤ = U0ᵀ K,   ΔW = R Gᵀ
/// </code>
/// which equals the paper's R Kᵀ P (Σ_prev P + K Kᵀ P + αI)⁻¹. The factor of Ã + αI is kept and grows by
/// rank-one updates as batches are preserved, so a step costs O(f r n + r² n) and never refactorises r×r;
/// the solve with it is <see cref="MemitSolver"/>'s, with Ã + αI in the place of λC.
/// </summary>
public sealed class NullSpaceSolver
{
    readonly MatrixD _basis;
    readonly CholeskyFactor _preserved;
    readonly MemitSolver _solver;

    /// <summary>The null-space basis U0 (f×r, orthonormal columns).</summary>
    public MatrixD Basis => _basis;
    /// <summary>Key dimension f.</summary>
    public int KeyDim => _basis.Rows;
    /// <summary>Dimension r of the null space.</summary>
    public int Rank => _basis.Cols;
    /// <summary>α (hparam <c>L2</c>).</summary>
    public double Alpha { get; }
    /// <summary>Keys preserved so far (columns of every <see cref="Preserve"/> call).</summary>
    public int PreservedKeys { get; private set; }

    /// <summary>Uses <paramref name="basis"/> (f×r, orthonormal columns) as U0; nothing preserved yet.</summary>
    public NullSpaceSolver(MatrixD basis, double alpha)
    {
        ArgumentNullException.ThrowIfNull(basis);
        if (!(alpha > 0) || double.IsInfinity(alpha)) throw new KeditException($"AlphaEdit needs L2 (α) > 0, got {alpha}: with α = 0 the null-space system is singular until enough keys are preserved");
        if (basis.Cols == 0) throw new KeditException("AlphaEdit: the null space is empty");
        _basis = basis; Alpha = alpha;
        var start = MatrixD.Identity(basis.Cols);
        start.Scale(alpha);
        _preserved = CholeskyFactor.Factor(start, "αI");
        _solver = new MemitSolver(_preserved);
    }

    /// <summary>
    /// U0 from the eigenvectors of <paramref name="mom2"/> (C, f×f) whose eigenvalue is below
    /// <paramref name="threshold"/> (computed once per layer on the unedited model; O(f³)).
    /// </summary>
    /// <exception cref="KeditException">No eigenvalue is below the threshold (names the smallest).</exception>
    public static NullSpaceSolver FromCovariance(MatrixD mom2, double threshold, double alpha, string what)
    {
        ArgumentNullException.ThrowIfNull(mom2);
        var (values, vectors) = SymmetricEigen.Decompose(mom2);
        var keep = Enumerable.Range(0, values.Length).Where(j => Math.Abs(values[j]) < threshold).ToArray();
        if (keep.Length == 0)
            throw new KeditException($"{what}: no eigenvalue of the key covariance is below nullspace_threshold {threshold:G3} (smallest {values.Min(Math.Abs):G3}); AlphaEdit has no null space to edit in — raise nullspace_threshold or edit another layer");
        var basis = new MatrixD(vectors.Rows, keep.Length);
        for (int r = 0; r < vectors.Rows; r++)
            for (int j = 0; j < keep.Length; j++) basis[r, j] = vectors[r, keep[j]];
        return new NullSpaceSolver(basis, alpha);
    }

    /// <summary>Kᵤ = U0ᵀ K (r×n) for keys K (f×n).</summary>
    MatrixD Project(MatrixD keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Rows != KeyDim) throw new ArgumentException($"keys must have {KeyDim} rows (f), got {keys.Rows}×{keys.Cols}", nameof(keys));
        return MatrixD.Multiply(_basis, keys, transA: true);
    }

    /// <summary>Gᵀ (n×f), G = U0 (Ã + αI + KᵤKᵤᵀ)⁻¹ Kᵤ: ΔW = R Gᵀ for residuals R (d×n, already divided by L − i).</summary>
    public MatrixD SolveKeysTransposed(MatrixD keys) =>
        MatrixD.Multiply(_solver.SolveKeysTransposed(Project(keys)), _basis, transB: true);

    /// <summary>Σ_prev += K Kᵀ for keys K (f×n) read after the batch's update (AlphaEdit's cache_c).</summary>
    public void Preserve(MatrixD keys)
    {
        _preserved.RankOneUpdates(Project(keys).Transpose());
        PreservedKeys += keys.Cols;
    }
}
