using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// What one layer received in one edit step: ΔW = X·Yᵀ with X (d×n) and Y (f×n), plus the
/// quantities the fixtures check. Keeping the factors lets PRUNE work on the low-rank form, and only
/// the factors are kept: a session holds every step, and a dense d×f ΔW per step and layer would grow
/// without bound over a long sequential run (GPT-J: 0.5 GB per layer and edit).
/// A D4S step is not factored so (<paramref name="Factored"/> false: X is its residual, Y its keys); its ΔW
/// lives in the running sums (<see cref="D4sState.Delta"/>).
/// </summary>
public sealed record LayerUpdate(int Layer, MatrixD X, MatrixD Y, MatrixD Keys, MatrixD CurrentZ, MatrixD Residual, bool Factored = true)
{
    /// <summary>This step's ΔW = X·Yᵀ (d×f), formed on each call.</summary>
    public MatrixD Delta => Factored ? MatrixD.Multiply(X, Y, transB: true)
        : throw new InvalidOperationException($"layer {Layer}: a D4S step's ΔW lives in the running sums (D4sState.Delta), not in the step");

    /// <summary>D4S: what this step changed in the served ΔW, as factors (d×n, f×n); see <see cref="D4sState.Add"/>.</summary>
    public (MatrixD X, MatrixD Y)? D4sChange { get; init; }

    /// <summary>This step's change of the layer's ΔW as factors: X·Yᵀ, or D4S's change of its total.</summary>
    public (MatrixD X, MatrixD Y) Change => Factored ? (X, Y)
        : D4sChange ?? throw new InvalidOperationException($"layer {Layer}: this D4S step did not record its change");
}

/// <summary>One edit step: the target values (d×n, one column per request) and each layer's update.</summary>
public sealed record EditStep(MatrixD Z, IReadOnlyList<LayerUpdate> Layers, IReadOnlyList<ZResult> ZRuns)
{
    /// <summary>Seconds spent in compute_z.</summary>
    public double TargetSeconds { get; init; }
    /// <summary>Seconds spent reading keys and current values (forward passes).</summary>
    public double KeySeconds { get; init; }
    /// <summary>Seconds spent in the linear algebra and the weight update.</summary>
    public double SolveSeconds { get; init; }
}

/// <summary>compute_z for a batch: one column per request.</summary>
public static class Targets
{
    public static (MatrixD Z, List<ZResult> Runs, double Seconds) Compute(EditContext ctx, IReadOnlyList<PreparedRequest> requests, HookPoint point, int layer, CancellationToken ct)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        if (ctx.SuppliedTargets is { } supplied && supplied.Count != requests.Count)
            throw new InvalidOperationException($"{supplied.Count} supplied targets for a step of {requests.Count} requests");
        var runs = ctx.SuppliedTargets?.ToList() ?? ComputeZ.RunBatch(ctx.Model, requests, layer, point, ctx.Z, ct).ToList();
        var Z = new MatrixD(ctx.Model.Config.Hidden, requests.Count);
        for (int j = 0; j < runs.Count; j++)
            for (int i = 0; i < Z.Rows; i++) Z[i, j] = runs[j].Z[i];
        return (Z, runs, sw.Elapsed.TotalSeconds);
    }
}

/// <summary>
/// MEMIT (spec §11): targets at the last edited layer's output, then layer by layer on the
/// current model: keys K, current values, residual spread over the remaining layers, and
/// ΔW = (R/(L−i))·((λC + KKᵀ)⁻¹K)ᵀ added to W. Run on W_{t−1} it is plain sequential MEMIT.
/// </summary>
public static class Memit
{
    public static EditStep Apply(EditContext ctx, IReadOnlyList<PreparedRequest> requests, CancellationToken ct = default) =>
        Apply(ctx, requests, (layer, K) => ctx.MemitSolver(layer).SolveKeysTransposed(K), ct);

    /// <summary>
    /// MEMIT's layer loop with another solve: <paramref name="solveKeysTransposed"/>(layer, K) returns the n×f
    /// matrix Aᵀ with ΔW = (R/(L−i))·Aᵀ (AlphaEdit's null-space solve uses this).
    /// </summary>
    public static EditStep Apply(EditContext ctx, IReadOnlyList<PreparedRequest> requests, Func<int, MatrixD, MatrixD> solveKeysTransposed, CancellationToken ct)
    {
        var (Z, runs, zSeconds) = Targets.Compute(ctx, requests, HookPoint.BlockOutput, ctx.ZLayer, ct);
        var updates = new List<LayerUpdate>();
        int L = ctx.Layers.Count;
        var keyWatch = new System.Diagnostics.Stopwatch(); var solveWatch = new System.Diagnostics.Stopwatch();
        for (int i = 0; i < L; i++)
        {
            ct.ThrowIfCancellationRequested();
            var layer = ctx.Layers[i];
            keyWatch.Start();
            var K = Keys.Memit(ctx.Model, requests, layer.Layer);
            var cur = Keys.AtBare(ctx.Model, requests, ctx.ZLayer, HookPoint.BlockOutput);
            keyWatch.Stop(); solveWatch.Start();
            var R = MatrixD.Subtract(Z, cur);
            R.Scale(1.0 / (L - i));
            var At = solveKeysTransposed(layer.Layer, K); // n×f
            layer.AddDelta(MatrixD.Multiply(R, At));
            solveWatch.Stop();
            updates.Add(new LayerUpdate(layer.Layer, R, At.Transpose(), K, cur, R));
            ctx.LayerSolved();
        }
        return new EditStep(Z, updates, runs) { TargetSeconds = zSeconds, KeySeconds = keyWatch.Elapsed.TotalSeconds, SolveSeconds = solveWatch.Elapsed.TotalSeconds };
    }
}

/// <summary>
/// AlphaEdit (spec §14): MEMIT's targets, keys and per-layer residuals, with each layer's update confined to
/// the null space of its key covariance (<see cref="NullSpaceSolver"/>), so keys the statistics cover are
/// (nearly) untouched. Weights accumulate; after every batch its keys, read again on the updated model,
/// join the preserved set that later batches must not disturb.
/// </summary>
public sealed class AlphaEdit
{
    readonly EditContext _ctx;
    readonly double _threshold, _alpha;
    readonly Dictionary<int, NullSpaceSolver> _solvers = new();
    readonly IDictionary<int, MatrixD> _bases;

    /// <param name="ctx">The run's context (model, layers, statistics).</param>
    /// <param name="nullspaceThreshold">Eigenvalues of C below this span the null space.</param>
    /// <param name="alpha">α (hparam <c>L2</c>).</param>
    /// <param name="bases">
    /// Null-space bases by layer, shared with later runs on the same statistics (the editor's replays), so the O(f³)
    /// eigendecomposition runs once per layer; filled on first use.
    /// </param>
    public AlphaEdit(EditContext ctx, double nullspaceThreshold, double alpha, IDictionary<int, MatrixD>? bases = null)
    {
        _ctx = ctx; _threshold = nullspaceThreshold; _alpha = alpha; _bases = bases ?? new Dictionary<int, MatrixD>();
    }

    /// <summary>A layer's null-space solver (its projector computed on first use, from the unedited statistics).</summary>
    public NullSpaceSolver Solver(int layer)
    {
        if (_solvers.TryGetValue(layer, out var s)) return s;
        if (_bases.TryGetValue(layer, out var basis)) return _solvers[layer] = new NullSpaceSolver(basis, _alpha);
        s = NullSpaceSolver.FromCovariance(_ctx.Mom2(layer), _threshold, _alpha, $"layer {layer}");
        _bases[layer] = s.Basis;
        return _solvers[layer] = s;
    }

    public EditStep Apply(IReadOnlyList<PreparedRequest> requests, CancellationToken ct = default)
    {
        foreach (var l in _ctx.Layers) Solver(l.Layer);   // projectors before any weight changes
        var step = Memit.Apply(_ctx, requests, (layer, K) => Solver(layer).SolveKeysTransposed(K), ct);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        foreach (var l in _ctx.Layers) Solver(l.Layer).Preserve(Keys.Memit(_ctx.Model, requests, l.Layer));
        return step with { KeySeconds = step.KeySeconds + watch.Elapsed.TotalSeconds };
    }

    /// <summary>Forgets the preserved keys (the weights went back to W0); the projectors are kept.</summary>
    public void Reset()
    {
        foreach (var layer in _solvers.Keys.ToList()) _solvers[layer] = new NullSpaceSolver(_solvers[layer].Basis, _alpha);
    }
}

/// <summary>
/// ROME (spec §10) at one layer, one request at a time: u = C⁻¹k̄ normalised (k̄ = flat mean key
/// over the contexts), z from compute_v at the MLP output, v = (z − o₀)/(k₀·u), ΔW = v uᵀ.
/// </summary>
public static class Rome
{
    public static EditStep Apply(EditContext ctx, IReadOnlyList<PreparedRequest> requests, bool mom2Adjustment = true, CancellationToken ct = default)
    {
        if (ctx.Layers.Count != 1) throw new KeditException($"ROME edits exactly one layer; the hparams name {ctx.Layers.Count}");
        var layer = ctx.Layers[0];
        int d = layer.D, f = layer.F;
        var Zall = new MatrixD(d, requests.Count);
        var runs = new List<ZResult>();
        var xs = new MatrixD(d, requests.Count); var ys = new MatrixD(f, requests.Count);
        var keys = new MatrixD(f, requests.Count); var curs = new MatrixD(d, requests.Count);
        var timers = new PhaseTimers();
        for (int j = 0; j < requests.Count; j++)
        {
            var vec = Vectors(ctx, requests[j], mom2Adjustment, timers, ct);
            runs.Add(vec.Z);
            timers.Solve.Start();
            var delta = MatrixD.Multiply(new MatrixD(d, 1, vec.V), new MatrixD(f, 1, vec.U), false, true);
            layer.AddDelta(delta);
            timers.Solve.Stop();
            for (int i = 0; i < d; i++) { Zall[i, j] = vec.Z.Z[i]; xs[i, j] = vec.V[i]; curs[i, j] = vec.CurOut[i]; }
            for (int i = 0; i < f; i++) { ys[i, j] = vec.U[i]; keys[i, j] = vec.CurIn[i]; }
        }
        var update = new LayerUpdate(layer.Layer, xs, ys, keys, curs, xs);
        return new EditStep(Zall, new[] { update }, runs)
        {
            TargetSeconds = timers.Targets.Elapsed.TotalSeconds, KeySeconds = timers.Keys.Elapsed.TotalSeconds, SolveSeconds = timers.Solve.Elapsed.TotalSeconds,
        };
    }

    /// <summary>ROME's pieces for one request, without touching the model (what the fixtures store).</summary>
    public static RomeVectors Explain(EditContext ctx, PreparedRequest r, bool mom2Adjustment = true) => Vectors(ctx, r, mom2Adjustment, new PhaseTimers(), default);

    /// <summary>k̄, u = C⁻¹k̄/‖·‖, z (compute_v), k₀ and o₀ at the bare sentence, v = (z − o₀)/(k₀·u).</summary>
    static RomeVectors Vectors(EditContext ctx, PreparedRequest r, bool mom2Adjustment, PhaseTimers t, CancellationToken ct)
    {
        var layer = ctx.Layers[0];
        t.Keys.Start();
        var kMean = Keys.FlatMean(ctx.Model, r, layer.Layer);
        t.Keys.Stop(); t.Solve.Start();
        var u = new MatrixD(layer.F, 1, (double[])kMean.Clone());
        if (mom2Adjustment) ctx.CovarianceFactor(layer.Layer).SolveInPlace(u);
        u.Scale(1.0 / u.FrobeniusNorm());
        t.Solve.Stop(); t.Targets.Start();
        var z = ComputeZ.Run(ctx.Model, r, layer.Layer, HookPoint.MlpValue, ctx.Z, ct);
        t.Targets.Stop(); t.Keys.Start();
        var kIn = Keys.AtBare(ctx.Model, new[] { r }, layer.Layer, HookPoint.MlpKey).Data;
        var vOut = Keys.AtBare(ctx.Model, new[] { r }, layer.Layer, HookPoint.MlpValue).Data;
        t.Keys.Stop();
        double denom = 0;
        for (int i = 0; i < layer.F; i++) denom += kIn[i] * u.Data[i];
        var v = Enumerable.Range(0, layer.D).Select(i => (z.Z[i] - vOut[i]) / denom).ToArray();
        return new RomeVectors(kMean, u.Data, z, kIn, vOut, v);
    }

    sealed class PhaseTimers
    {
        public readonly System.Diagnostics.Stopwatch Keys = new(), Targets = new(), Solve = new();
    }
}

/// <summary>ROME's intermediate vectors for one request (spec §10): ΔW = v uᵀ.</summary>
public sealed record RomeVectors(double[] KMean, double[] U, ZResult Z, double[] CurIn, double[] CurOut, double[] V);

/// <summary>
/// D4S (spec §12.2): per layer running sums S_KK = ΣKKᵀ and S_RK = Σ(z − h)Kᵀ kept as a recursive
/// least-squares state, so after t edits ΔW = S_RK(λC + S_KK)⁻¹/(L−i) — batch-equivalent, O(d·f)
/// per step, never a dense refactorisation. The residual is measured once per edit (before the
/// layer loop), as the D4S code does. In restore mode (the reference's keep_original_weight) every
/// edit is computed on W0 and the served weights are W0 + ΔW; otherwise weights accumulate.
/// The starting factor of λC is taken where the context's <see cref="EditContext.Placement"/> says (the device
/// for large λC on a device model); the rank-1 updates, re-anchors and rollback refactorisations run on the host.
/// </summary>
public sealed class D4s
{
    readonly EditContext _ctx;
    readonly Dictionary<int, D4sState> _states = new();
    // What each applied step added to the sums (its residuals and per-layer keys), so it can be taken out again.
    readonly Dictionary<EditStep, (MatrixD R, MatrixD[] Keys)> _terms = new(ReferenceEqualityComparer.Instance);

    public D4s(EditContext ctx, bool restoreBetweenEdits = true)
    {
        _ctx = ctx; RestoreBetweenEdits = restoreBetweenEdits;
    }

    public bool RestoreBetweenEdits { get; }
    public int Edits { get; private set; }
    /// <summary>
    /// The running state of an edited layer (fresh, Γ = 0, before its first edit). Built on first use, so the
    /// starting factor is taken where the context's placement says at that time.
    /// </summary>
    public D4sState State(int layer) => _states.TryGetValue(layer, out var s) ? s : _states[layer] = _ctx.FreshD4sState(layer);

    /// <summary>Bytes the layers' states hold (see <see cref="D4sState.HeldBytes"/>).</summary>
    public long HeldBytes => _states.Values.Sum(s => s.HeldBytes);

    public EditStep Apply(IReadOnlyList<PreparedRequest> requests, CancellationToken ct = default)
    {
        if (RestoreBetweenEdits) foreach (var l in _ctx.Layers) l.Restore();
        MatrixD Z, cur; List<ZResult> runs; double zSeconds;
        var keyWatch = new System.Diagnostics.Stopwatch(); var solveWatch = new System.Diagnostics.Stopwatch();
        // In restore mode a cancelled step serves the sums it found again (taking out what it had added), so the
        // caller has nothing to replay.
        try
        {
            (Z, runs, zSeconds) = Targets.Compute(_ctx, requests, HookPoint.BlockOutput, _ctx.ZLayer, ct);
            keyWatch.Start();
            cur = Keys.AtBare(_ctx.Model, requests, _ctx.ZLayer, HookPoint.BlockOutput);
            keyWatch.Stop();
        }
        catch when (RestoreBetweenEdits) { ServeSums(); throw; }
        var R = MatrixD.Subtract(Z, cur);
        var updates = new List<LayerUpdate>();
        int L = _ctx.Layers.Count;
        var keys = new MatrixD[L];
        for (int i = 0; i < L; i++)
        {
            if (ct.IsCancellationRequested && RestoreBetweenEdits)
            {
                // Cancelled between layers: take this step's terms out of the layers done so far and serve the sums found.
                for (int j = 0; j < i; j++) State(_ctx.Layers[j].Layer).Remove(keys[j], R);
                ServeSums();
            }
            ct.ThrowIfCancellationRequested();
            var layer = _ctx.Layers[i];
            keyWatch.Start();
            var K = keys[i] = Keys.Memit(_ctx.Model, requests, layer.Layer);
            keyWatch.Stop(); solveWatch.Start();
            bool fresh = !_states.ContainsKey(layer.Layer);
            var state = State(layer.Layer);
            var (cx, cy) = state.Add(K, R);
            cx.Scale(1.0 / (L - i));
            // Restore mode serves W0 + ΔW; accumulate mode lands ΔW on W_{t−1} (the D4S script's other setting).
            // ΔW = Γ/(L − i) is applied scaled on the fly: a copy of Γ (d×f) cost more than the whole update.
            if (RestoreBetweenEdits) layer.SetDelta(state.Gamma, 1.0 / (L - i)); else layer.AddDelta(state.Gamma, 1.0 / (L - i));
            solveWatch.Stop();
            // A layer's first step factored λC; probes, re-anchors and refactors rebuild it: f×f garbage to return now.
            if (fresh || state.UsedWorkspace) EditContext.CollectWorkspace();
            var rd = R.Clone(); rd.Scale(1.0 / (L - i));
            updates.Add(new LayerUpdate(layer.Layer, rd, K, K, cur, rd, Factored: false) { D4sChange = (cx, cy) });
        }
        Edits++;
        var step = new EditStep(Z, updates, runs) { TargetSeconds = zSeconds, KeySeconds = keyWatch.Elapsed.TotalSeconds, SolveSeconds = solveWatch.Elapsed.TotalSeconds };
        _terms[step] = (R, keys);
        return step;
    }

    /// <summary>
    /// Takes an applied step out of the running sums (restore mode): S_KK −= KKᵀ, S_RK −= RKᵀ, refactor,
    /// and serve W0 + ΔW of the remaining steps. Every step's target was computed on W0, so none of the
    /// others depends on the removed one: the result is the batch solution of the rest, with no target
    /// recomputed (O(f³) per layer). Removing the last step restores W0 bit for bit.
    /// </summary>
    /// <exception cref="KeditException">Accumulate mode, where later steps were computed on top of this one.</exception>
    public void Remove(EditStep step)
    {
        if (!RestoreBetweenEdits)
            throw new KeditException("D4S: an edit can be taken out of the running sums only in restore mode (in accumulate mode later edits were computed on top of it)");
        if (!_terms.Remove(step, out var t)) throw new InvalidOperationException("the step was not applied by this D4S state (or was removed already)");
        for (int i = 0; i < _ctx.Layers.Count; i++)
        {
            int l = _ctx.Layers[i].Layer;
            // Nothing left: fresh sums (rebuilt on the next edit) and exactly W0, rather than sums that cancel to rounding.
            if (_terms.Count == 0) _states.Remove(l);
            else { State(l).Remove(t.Keys[i], t.R); EditContext.CollectWorkspace(); }
        }
        ServeSums();
        Edits--;
    }

    /// <summary>Restore mode: serves W0 + ΔW of the current sums in every layer (exactly W0 when no step is held).</summary>
    void ServeSums()
    {
        int L = _ctx.Layers.Count;
        for (int i = 0; i < L; i++)
        {
            var layer = _ctx.Layers[i];
            if (_terms.Count == 0) layer.Restore();
            else layer.SetDelta(State(layer.Layer).Gamma, 1.0 / (L - i));
        }
    }
}
