namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// D4S state of one edited layer (spec §12.2, §17.2), float64:
/// <list type="bullet">
/// <item>running sums S_KK = Σ K Kᵀ (f×f) and S_RK = Σ R Kᵀ (d×f) — the persistable, exact form;</item>
/// <item>Γ = S_RK M⁻¹ with M = λC + S_KK, maintained by recursive least squares, so that the total update
/// is ΔW = Γ/(L − i) (<see cref="Delta"/>);</item>
/// <item>the Cholesky factor of M, kept current by rank-1 updates (additions only: stable).</item>
/// </list>
/// The factor is the largest part a layer keeps, held packed (f(f+1)/2 float64, <see cref="CholeskyFactor"/>): exact, and
/// half of f². Measured against the other ways to shrink it (GPT-2 small, f = 3072): one layer's factor at a time would
/// refactor every layer at every edit, ~1 s each against ~0.05 s for the rank-1 updates (an edit 2–3× slower); a float32
/// factor between edits would round it at every edit, a drift that grows with the edits and that D4S's batch equivalence
/// does not allow.
/// One <see cref="Add"/> costs O(f² n + d f n) instead of an f×f factorisation. Rounding drift of Γ is
/// watched by a random probe every <see cref="ProbeInterval"/> steps and Γ is re-anchored
/// (Γ ← S_RK M⁻¹ by triangular solves) when the probe exceeds <see cref="ProbeTolerance"/> or every
/// <see cref="ReanchorInterval"/> steps.
/// <para><see cref="Remove"/> (rollback of an earlier edit) subtracts that edit's terms from the sums and
/// then <b>refactors</b> M from λC + S_KK and re-anchors Γ (O(f³/3 + 2 f² d)). Rank-1 <i>downdates</i> were
/// not chosen: they are not backward stable and M is often ill-conditioned, so results would depend on
/// the order of edits and removals.</para>
/// <para>If λC + S_KK is not positive definite the state switches to the reference's dense path: each step
/// refactors M by LU with partial pivoting and recomputes Γ (reported by <see cref="FallbackReason"/>).</para>
/// </summary>
public sealed class D4sState
{
    // λC: a held matrix (the public constructors) or rebuilt from the statistics each time it is needed (Rebuilding:
    // refactoring after a rollback, the drift probe, the LU path), so a layer's state does not keep f² float64 beside its factor.
    readonly Func<MatrixD> _lambdaC;
    readonly string _what;
    CholeskyFactor? _factor;       // of M = λC + S_KK; null under the LU fallback
    readonly Random _probeRng = new(12345);

    /// <summary>Key dimension f.</summary>
    public int KeyDim { get; }
    /// <summary>Output dimension d.</summary>
    public int OutputDim { get; }
    /// <summary>Γ = S_RK (λC + S_KK)⁻¹ (d×f). Owned by the state: read, do not modify.</summary>
    public MatrixD Gamma { get; private set; }
    // S_KK and S_RK as the terms added (Kᵀ, n×f, and R, d×n, of each Add) while the keys are few: f×f and d×f float64
    // a layer otherwise, for sums of rank ≤ keys. Materialised by the same GEMMs in the same order as summing them as
    // they come (so the same bits); held dense once the keys pass f/8, or when restored from sums.
    readonly List<(MatrixD Kt, MatrixD R)> _terms = new();
    MatrixD? _sumKK, _sumRK;

    /// <summary>S_KK = Σ K Kᵀ over the edits held (f×f): a new matrix while the state holds the terms, else its own (do not modify).</summary>
    public MatrixD SumKK => _sumKK ?? Materialized(kk: true);
    /// <summary>S_RK = Σ R Kᵀ over the edits held (d×f), R not divided: as <see cref="SumKK"/>.</summary>
    public MatrixD SumRK => _sumRK ?? Materialized(kk: false);

    /// <summary>Writes S_KK into <paramref name="into"/> (f×f) without keeping a copy (persisting one layer at a time).</summary>
    public void WriteSumKK(MatrixD into) => WriteSum(true, into);
    /// <summary>Writes S_RK into <paramref name="into"/> (d×f).</summary>
    public void WriteSumRK(MatrixD into) => WriteSum(false, into);

    MatrixD Materialized(bool kk)
    {
        var m = kk ? new MatrixD(KeyDim, KeyDim) : new MatrixD(OutputDim, KeyDim);
        WriteSum(kk, m);
        return m;
    }

    void WriteSum(bool kk, MatrixD into)
    {
        MatrixD.RequireShape(into, kk ? KeyDim : OutputDim, KeyDim, nameof(into));
        if ((kk ? _sumKK : _sumRK) is { } dense) { Array.Copy(dense.Data, into.Data, dense.Data.Length); return; }
        Array.Clear(into.Data);
        foreach (var (kt, r) in _terms)
            if (kk) DenseOps.Gemm(true, false, 1.0, kt, kt, 1.0, into);
            else DenseOps.Gemm(false, false, 1.0, r, kt, 1.0, into);
    }

    /// <summary>Bytes held: the factor of M (f(f+1)/2 float64, packed), Γ, and the sums (dense, or the keys and residuals added).</summary>
    public long HeldBytes =>
        ((_factor != null ? (long)KeyDim * (KeyDim + 1) / 2 : 0) + (long)OutputDim * KeyDim
         + (_sumKK != null ? (long)KeyDim * KeyDim + (long)OutputDim * KeyDim : _terms.Sum(t => t.Kt.Data.LongLength + t.R.Data.LongLength))) * sizeof(double);

    /// <summary>True while S_KK and S_RK are held as the terms added rather than as dense matrices.</summary>
    public bool HoldsTerms => _sumKK == null;

    void GoDense()
    {
        if (_sumKK != null) return;
        _sumKK = Materialized(true);
        _sumRK = Materialized(false);
        _terms.Clear();
    }
    /// <summary>Number of key columns currently held (added minus removed).</summary>
    public int KeyCount { get; private set; }
    /// <summary>Steps applied since Γ was last recomputed directly from S_RK.</summary>
    public int StepsSinceAnchor { get; private set; }
    /// <summary>How many times Γ has been re-anchored (diagnostic).</summary>
    public int ReanchorCount { get; private set; }
    /// <summary>The last drift probe value (relative), NaN before the first probe.</summary>
    public double LastProbe { get; private set; } = double.NaN;

    /// <summary>Re-anchor unconditionally after this many steps (default 1000).</summary>
    public int ReanchorInterval { get; set; } = 1000;
    /// <summary>Run the drift probe every this many steps (default 10; 0 disables).</summary>
    public int ProbeInterval { get; set; } = 10;
    /// <summary>Re-anchor when ‖(Γ M − S_RK) x‖ / ‖S_RK x‖ exceeds this (default 1e-8).</summary>
    public double ProbeTolerance { get; set; } = 1e-8;

    /// <summary>
    /// True when the last <see cref="Add"/> or <see cref="Remove"/> made f×f float64 matrices (λC rebuilt for a probe or a
    /// refactorisation, R unpacked for a re-anchor) that are garbage now: the caller may collect them before the next layer.
    /// </summary>
    public bool UsedWorkspace { get; private set; }

    /// <summary>True when the dense LU path is in use because λC + S_KK was not positive definite.</summary>
    public bool UsesLuFallback => _factor == null;
    /// <summary>Why the LU path is in use, or null.</summary>
    public string? FallbackReason { get; private set; }

    /// <summary>
    /// A fresh state (no edits: Γ = 0, M = λC), factoring λC itself. <paramref name="lambdaC"/> = λ·C (f×f) is
    /// referenced, not copied, and must not change.
    /// </summary>
    public D4sState(MatrixD lambdaC, int outputDim, string what = "λ·C + S_KK") : this(what, Held(lambdaC), lambdaC.Rows, outputDim) => Refactor();

    /// <summary>
    /// A fresh state that does not hold λC: <paramref name="lambdaC"/> builds it (a new f×f matrix each call, always the
    /// same values) when the state needs it. It takes over <paramref name="lambdaCFactor"/>, a factor of λC made for it
    /// alone (updated in place from now on: no f×f copy); with none it factors λC itself (LU when it is not positive definite).
    /// </summary>
    public static D4sState Rebuilding(Func<MatrixD> lambdaC, int keyDim, int outputDim, CholeskyFactor? lambdaCFactor = null, string what = "λ·C + S_KK")
    {
        ArgumentNullException.ThrowIfNull(lambdaC);
        if (lambdaCFactor != null && lambdaCFactor.Size != keyDim)
            throw new ArgumentException($"factor is {lambdaCFactor.Size}×{lambdaCFactor.Size}, λC is {keyDim}×{keyDim}", nameof(lambdaCFactor));
        var s = new D4sState(what, lambdaC, keyDim, outputDim);
        if (lambdaCFactor != null) s._factor = lambdaCFactor;
        else s.Refactor();
        return s;
    }

    static Func<MatrixD> Held(MatrixD lambdaC)
    {
        ArgumentNullException.ThrowIfNull(lambdaC);
        if (lambdaC.Rows != lambdaC.Cols) throw new ArgumentException($"λC must be square, got {lambdaC.Rows}×{lambdaC.Cols}", nameof(lambdaC));
        return () => lambdaC;
    }

    /// <summary>The fields of an empty state; the factor is set by the caller.</summary>
    D4sState(string what, Func<MatrixD> lambdaC, int keyDim, int outputDim)
    {
        if (keyDim <= 0) throw new ArgumentOutOfRangeException(nameof(keyDim), "key dimension f must be positive");
        if (outputDim <= 0) throw new ArgumentOutOfRangeException(nameof(outputDim), "output dimension d must be positive");
        _lambdaC = lambdaC; _what = what;
        KeyDim = keyDim; OutputDim = outputDim;
        Gamma = new MatrixD(outputDim, KeyDim);
    }

    /// <summary>
    /// Restores a state from persisted sums (S_KK f×f, S_RK d×f, number of keys): factors M = λC + S_KK
    /// and computes Γ directly. The sums are copied.
    /// </summary>
    public static D4sState FromSums(MatrixD lambdaC, MatrixD sumKK, MatrixD sumRK, int keyCount, string what = "λ·C + S_KK")
    {
        ArgumentNullException.ThrowIfNull(lambdaC); ArgumentNullException.ThrowIfNull(sumKK); ArgumentNullException.ThrowIfNull(sumRK);
        MatrixD.RequireShape(sumKK, lambdaC.Rows, lambdaC.Rows, nameof(sumKK));
        if (sumRK.Cols != lambdaC.Rows) throw new ArgumentException($"S_RK must have {lambdaC.Rows} columns (f), got {sumRK.Rows}×{sumRK.Cols}", nameof(sumRK));
        var s = new D4sState(what, Held(lambdaC), lambdaC.Rows, sumRK.Rows);
        s._sumKK = sumKK.Clone();
        s._sumRK = sumRK.Clone();
        s.KeyCount = keyCount;
        s.Refactor();
        s.Reanchor();
        return s;
    }

    /// <summary>
    /// One D4S step with keys K (f×n) and residuals R (d×n, not divided): S_KK += K Kᵀ, S_RK += R Kᵀ and
    /// Γ ← Γ + (R − Γ K) S⁻¹ Gᵀ with G = M⁻¹ K, S = I + Kᵀ G; the factor of M gets n rank-1 updates.
    /// Returns Γ's change as factors E (d×n) and Wᵀ (f×n), E = R − Γ_old K and W = S⁻¹ Gᵀ = (M_new⁻¹ K)ᵀ:
    /// what this edit changes, of rank ≤ n (the size of a single edit, see <see cref="EditRegime"/>).
    /// </summary>
    public (MatrixD X, MatrixD Y) Add(MatrixD keys, MatrixD residuals)
    {
        CheckBatch(keys, residuals);
        UsedWorkspace = false;
        var kt = keys.Transpose();                                   // n×f
        var e = residuals.Clone();
        DenseOps.Gemm(false, true, -1.0, Gamma, kt, 1.0, e);          // E = R − Γ K
        if (_sumKK != null)
        {
            DenseOps.Gemm(true, false, 1.0, kt, kt, 1.0, _sumKK);            // S_KK += K Kᵀ
            DenseOps.Gemm(false, false, 1.0, residuals, kt, 1.0, _sumRK!);   // S_RK += R Kᵀ
        }
        else _terms.Add((kt, residuals.Clone()));
        KeyCount += keys.Cols;
        if (KeyCount > KeyDim / 8) GoDense();

        if (_factor == null) { Refactor(); Reanchor(); return (e, SolveM(keys)); }

        int n = keys.Cols;
        var gt = kt.Clone();
        _factor.SolveRowsInPlace(gt);                                 // Gᵀ = Kᵀ M⁻¹
        var s = MatrixD.Identity(n);
        DenseOps.Gemm(false, true, 1.0, kt, gt, 1.0, s);              // S = I + Kᵀ G
        MemitSolver.Symmetrize(s);
        if (CholeskyFactor.TryFactor(s, out var sf, out _, out _)) sf!.SolveInPlace(gt);   // W = S⁻¹ Gᵀ
        else LuFactor.Factor(s, "I + Kᵀ M⁻¹ K").SolveInPlace(gt);
        DenseOps.Gemm(false, false, 1.0, e, gt, 1.0, Gamma);          // Γ += E W
        _factor.RankOneUpdates(kt);                                   // M ← M + K Kᵀ

        StepsSinceAnchor++;
        if (ReanchorInterval > 0 && StepsSinceAnchor >= ReanchorInterval) Reanchor();
        else if (ProbeInterval > 0 && StepsSinceAnchor % ProbeInterval == 0 && DriftProbe() > ProbeTolerance) Reanchor();
        return (e, gt.Transpose());
    }

    /// <summary>
    /// Rolls back an edit previously added with exactly these keys and residuals: subtracts its terms from
    /// the sums, refactors M = λC + S_KK and recomputes Γ = S_RK M⁻¹ (see the class remarks).
    /// </summary>
    public void Remove(MatrixD keys, MatrixD residuals)
    {
        CheckBatch(keys, residuals);
        if (keys.Cols > KeyCount) throw new InvalidOperationException($"cannot remove {keys.Cols} keys: the state holds {KeyCount}");
        UsedWorkspace = false;
        var kt = keys.Transpose();
        // Held as terms: drop that edit's terms (the sums of the rest, exactly); dense: subtract them.
        int at = _terms.FindIndex(t => t.Kt.Data.AsSpan().SequenceEqual(kt.Data) && t.R.Data.AsSpan().SequenceEqual(residuals.Data));
        if (_sumKK == null && at < 0) GoDense();
        if (_sumKK == null) _terms.RemoveAt(at);
        else
        {
            DenseOps.Gemm(true, false, -1.0, kt, kt, 1.0, _sumKK);
            DenseOps.Gemm(false, false, -1.0, residuals, kt, 1.0, _sumRK!);
        }
        KeyCount -= keys.Cols;
        Refactor();
        Reanchor();
    }

    /// <summary>The total update of this layer, ΔW = Γ / divisor (d×f, new matrix); divisor = L − i.</summary>
    public MatrixD Delta(double divisor)
    {
        if (!(divisor > 0)) throw new ArgumentOutOfRangeException(nameof(divisor), $"divisor must be positive (L − i), got {divisor}");
        var d = Gamma.Clone();
        d.Scale(1.0 / divisor);
        return d;
    }

    /// <summary>M⁻¹·B for columns B (f×m) with the current factor of M = λC + S_KK (PRUNE's right factor).</summary>
    public MatrixD SolveM(MatrixD columns)
    {
        if (columns.Rows != KeyDim) throw new ArgumentException($"columns must have {KeyDim} rows, got {columns.Rows}", nameof(columns));
        var rows = columns.Transpose();
        if (_factor != null) _factor.SolveRowsInPlace(rows);
        else LuFactor.Factor(BuildM(), _what).SolveRowsInPlace(rows);
        return rows.Transpose();
    }

    /// <summary>Recomputes Γ = S_RK M⁻¹ directly from the sums with the current factor (2 f² d flops).</summary>
    public void Reanchor()
    {
        UsedWorkspace = true;
        var g = _sumRK?.Clone() ?? Materialized(kk: false);
        if (_factor != null) _factor.SolveRowsInPlace(g);
        else LuFactor.Factor(BuildM(), _what).SolveRowsInPlace(g);
        Gamma = g;
        StepsSinceAnchor = 0;
        ReanchorCount++;
    }

    /// <summary>
    /// Drift check: max over <paramref name="probes"/> random x of ‖(Γ M − S_RK) x‖ / ‖S_RK x‖
    /// (absolute ‖Γ M x‖ when S_RK x = 0). Cost O(f² + d f) per probe. Stored in <see cref="LastProbe"/>.
    /// </summary>
    public double DriftProbe(int probes = 1)
    {
        int f = KeyDim, d = OutputDim;
        var x = new double[f]; var mx = new double[f]; var t = new double[f];
        var g = new double[d]; var s = new double[d];
        double worst = 0;
        MatrixD? lambdaC = null;
        for (int p = 0; p < probes; p++)
        {
            for (int i = 0; i < f; i++) x[i] = 2 * _probeRng.NextDouble() - 1;
            DenseOps.MatVec(lambdaC ??= LambdaC(), x, mx);
            SumTimes(true, x, t);
            for (int i = 0; i < f; i++) mx[i] += t[i];
            DenseOps.MatVec(Gamma, mx, g);
            SumTimes(false, x, s);
            double den = VectorOps.Norm2(s);
            for (int i = 0; i < d; i++) g[i] -= s[i];
            double num = VectorOps.Norm2(g);
            worst = Math.Max(worst, den > 0 ? num / den : num);
        }
        LastProbe = worst;
        return worst;
    }

    void Refactor()
    {
        var m = BuildM();
        if (CholeskyFactor.TryFactor(m, out var f, out int p, out double v)) { _factor = f; FallbackReason = null; }
        else
        {
            _factor = null;
            FallbackReason = new NotPositiveDefiniteException(_what, p, v).Message + "; using LU with partial pivoting at every step";
        }
    }

    /// <summary>y = S_KK x (kk) or S_RK x, from the terms while they are held (Σ K (Kᵀ x), Σ R (Kᵀ x)).</summary>
    void SumTimes(bool kk, double[] x, double[] y)
    {
        if ((kk ? _sumKK : _sumRK) is { } dense) { DenseOps.MatVec(dense, x, y); return; }
        Array.Clear(y);
        foreach (var (kt, r) in _terms)
        {
            var u = new double[kt.Rows];
            DenseOps.MatVec(kt, x, u);                                   // Kᵀ x
            if (kk)
                for (int v = 0; v < kt.Rows; v++)
                    for (int i = 0; i < KeyDim; i++) y[i] += kt.Data[(long)v * KeyDim + i] * u[v];
            else
                for (int i = 0; i < OutputDim; i++)
                    for (int v = 0; v < kt.Rows; v++) y[i] += r.Data[(long)i * r.Cols + v] * u[v];
        }
    }

    MatrixD BuildM() => MatrixD.Add(LambdaC(), SumKK);

    MatrixD LambdaC()
    {
        UsedWorkspace = true;
        var m = _lambdaC();
        if (m.Rows != KeyDim || m.Cols != KeyDim) throw new InvalidOperationException($"λC was rebuilt as {m.Rows}×{m.Cols}, the state is {KeyDim}×{KeyDim}");
        return m;
    }

    void CheckBatch(MatrixD keys, MatrixD residuals)
    {
        ArgumentNullException.ThrowIfNull(keys); ArgumentNullException.ThrowIfNull(residuals);
        if (keys.Rows != KeyDim) throw new ArgumentException($"keys must have {KeyDim} rows (f), got {keys.Rows}×{keys.Cols}", nameof(keys));
        if (residuals.Rows != OutputDim || residuals.Cols != keys.Cols)
            throw new ArgumentException($"residuals must be {OutputDim}×{keys.Cols} (d × number of keys), got {residuals.Rows}×{residuals.Cols}", nameof(residuals));
    }
}
