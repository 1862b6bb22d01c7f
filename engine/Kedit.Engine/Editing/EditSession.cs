using System.Diagnostics;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>Timings of one edit step, by phase (seconds).</summary>
public sealed record StepTimings(double Targets, double KeysAndSolve, double Total);

/// <summary>What the journal keeps of one step.</summary>
public sealed record JournalStep(int Index, int[] RequestIndices, EditStep Step, StepTimings Timings);

/// <summary>
/// A sequence of edits on one model with one method: ROME, MEMIT (a batch, or sequential steps
/// that accumulate), D4S (running sums) or AlphaEdit (null-space updates), optionally with PRUNE's restraint applied whenever
/// the weights are materialised. The single entry point the CLI, the demo and the embedding API use.
/// </summary>
public sealed class EditSession
{
    readonly List<JournalStep> _steps = new();
    readonly List<PreparedRequest> _prepared = new();
    readonly D4s? _d4s;
    readonly AlphaEdit? _alphaEdit;
    IReadOnlyDictionary<int, PruneResult>? _restrained;   // PRUNE's results for the weights served now

    /// <param name="nullSpaceBases">AlphaEdit: null-space bases shared across sessions on the same statistics (see <see cref="Editing.AlphaEdit"/>).</param>
    public EditSession(Transformer model, HParams hparams, Covariance? stats, ContextTemplates templates, PruneMode? prune = null, bool d4sRestore = true,
        IDictionary<int, MatrixD>? nullSpaceBases = null)
    {
        hparams.Validate(model.Config);
        Model = model; HParams = hparams; Templates = templates;
        double lambda = hparams.Method == EditMethod.Rome ? 0 : hparams.Mom2UpdateWeight ?? throw new KeditException($"{hparams.Source}: mom2_update_weight is required for {hparams.Method}");
        Context = new EditContext(model, hparams.Layers, stats, lambda, ZSettings.From(hparams, model.Config.Layers));
        if (hparams.Method == EditMethod.D4S) _d4s = new D4s(Context, hparams.RestoreBetweenEdits ?? d4sRestore);
        if (hparams.Method == EditMethod.AlphaEdit) _alphaEdit = new AlphaEdit(Context, hparams.NullspaceThreshold!.Value, hparams.L2!.Value, nullSpaceBases);
        if (prune is PruneMode mode) Restraint = new PerturbationRestraint(Context, mode);
        // D4S in restore mode computes every target on W0, so in the loop and after the fact are the same run;
        // in accumulate mode its steps start from the current weights, where kedit restrains only after the fact.
        if (Restraint != null && hparams.Prune?.InLoop == true && _d4s is { RestoreBetweenEdits: false })
            throw new KeditException($"{hparams.Source}: field 'prune.in_loop' is true, which D4S's accumulate mode (restore_between_edits false) does not support; set it false or use restore mode");
        Regime = new EditRegime(Context);
    }

    public Transformer Model { get; }
    public HParams HParams { get; }
    public ContextTemplates Templates { get; }
    public EditContext Context { get; }
    public PerturbationRestraint? Restraint { get; }
    /// <summary>PRUNE in the loop (hparams <c>prune.in_loop</c>): each edit is computed on, and added to, the restrained weights.</summary>
    public bool InLoop => Restraint != null && HParams.Prune?.InLoop == true && _d4s == null;
    /// <summary>The size of every step's edit per layer against σ_max(W0) (see <see cref="RegimeNow"/>).</summary>
    public EditRegime Regime { get; }
    public D4s? D4s => _d4s;
    /// <summary>AlphaEdit's per-layer null-space state, or null for other methods.</summary>
    public AlphaEdit? AlphaEdit => _alphaEdit;
    public IReadOnlyList<JournalStep> Steps => _steps;
    public int EditCount => _prepared.Count;
    public IReadOnlyList<PreparedRequest> Requests => _prepared;

    public PreparedRequest Prepare(EditRequest r) => RequestPreparer.Prepare(Model.RequireTokenizer(), r, Templates, HParams.FactToken);

    /// <summary>Applies one step (a batch of requests) on the current (unrestrained) weights.</summary>
    public EditStep Apply(IReadOnlyList<EditRequest> batch, CancellationToken ct = default) =>
        Apply(batch.Select(Prepare).ToList(), ct);

    public EditStep Apply(IReadOnlyList<PreparedRequest> batch, CancellationToken ct = default)
    {
        if (batch.Count == 0) throw new KeditException("an edit step needs at least one request");
        bool wasMaterialised = Restraint?.IsMaterialised ?? false;
        if (InLoop && _steps.Count > 0)
        {
            Restraint!.Commit(_restrained ?? Restraint.Materialise());
            _restrained = null;
        }
        else Unmaterialise();
        var sw = Stopwatch.StartNew();
        var step = HParams.Method switch
        {
            EditMethod.Rome => Rome.Apply(Context, batch, HParams.Mom2Adjustment, ct),
            EditMethod.D4S => _d4s!.Apply(batch, ct),
            EditMethod.AlphaEdit => _alphaEdit!.Apply(batch, ct),
            _ => Memit.Apply(Context, batch, ct),
        };
        // A diverged target would poison the weights and the journal (JSON holds no NaN): stop at this step.
        foreach (var z in step.ZRuns)
            if (!double.IsFinite(z.Trace[^1].Loss) || !double.IsFinite(z.Trace[0].Loss) || !double.IsFinite(ComputeZ.Norm(z.Delta)))
                throw new KeditException($"{HParams.Source}: the target optimisation diverged (loss {z.Trace[^1].Loss}); lower v_lr or clamp_norm_factor");
        double total = sw.Elapsed.TotalSeconds;
        int first = _prepared.Count;
        _prepared.AddRange(batch);
        _steps.Add(new JournalStep(_steps.Count, Enumerable.Range(first, batch.Count).ToArray(), step, new StepTimings(step.TargetSeconds, total - step.TargetSeconds, total)));
        Regime.Record(step);
        if (Restraint != null)
        {
            if (_d4s != null) RecordD4sFactors(); else Restraint.Record(step);
        }
        if (wasMaterialised) Materialise();
        return step;
    }

    /// <summary>
    /// D4S in restore mode: removes one applied step from the running sums (see <see cref="Editing.D4s.Remove"/>)
    /// and from the journal, re-deriving PRUNE's factors; no target is recomputed. Other methods roll back
    /// by restoring W0 and replaying the remaining steps.
    /// </summary>
    /// <exception cref="KeditException">Not a D4S session, or D4S in accumulate mode.</exception>
    public void Remove(EditStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (_d4s == null) throw new KeditException($"{HParams.Method} edits cannot be taken out individually; restore W0 and replay the others");
        int index = _steps.FindIndex(s => ReferenceEquals(s.Step, step));
        if (index < 0) throw new InvalidOperationException("the step is not one of this session's");
        bool wasMaterialised = Restraint?.IsMaterialised ?? false;
        Unmaterialise();
        _d4s.Remove(step);
        Regime.RemoveAt(index);
        // Keep journal indices dense: steps renumbered, their requests moved down.
        var remaining = _steps.Where((_, i) => i != index).ToList();
        var prepared = _prepared.ToList();
        _steps.Clear(); _prepared.Clear();
        foreach (var s in remaining)
        {
            int first = _prepared.Count;
            _prepared.AddRange(s.RequestIndices.Select(j => prepared[j]));
            _steps.Add(s with { Index = _steps.Count, RequestIndices = Enumerable.Range(first, s.RequestIndices.Length).ToArray() });
        }
        if (Restraint != null) RecordD4sFactors();
        if (wasMaterialised) Materialise();
    }

    /// <summary>
    /// D4S's total ΔW = (R_all/(L−i))·(M⁻¹K_all)ᵀ has rank ≤ m; its right factor changes every step,
    /// so PRUNE gets the factors afresh from the keys and residuals of every step so far.
    /// </summary>
    void RecordD4sFactors()
    {
        for (int i = 0; i < Context.Layers.Count; i++)
        {
            var layer = Context.Layers[i];
            var updates = _steps.Select(j => j.Step.Layers[i]).ToList();
            var X = MatrixD.ConcatColumns(updates.Select(u => u.Residual).ToList(), layer.D);
            var K = MatrixD.ConcatColumns(updates.Select(u => u.Keys).ToList(), layer.F);
            Restraint!.SetFactors(layer.Layer, X, _d4s!.State(layer.Layer).SolveM(K));
        }
    }

    /// <summary>Serves PRUNE-restrained weights (no-op without PRUNE).</summary>
    public IReadOnlyDictionary<int, PruneResult>? Materialise()
    {
        if (Restraint?.IsMaterialised != false) return null;
        return _restrained = Restraint.Materialise();
    }

    public void Unmaterialise()
    {
        Restraint?.Unmaterialise();
        _restrained = null;
    }

    /// <summary>
    /// Per edited layer: σ₁ of the accumulated unrestrained ΔW and of single edits over σ_max(W0), and how many
    /// singular values PRUNE restrains (from the current materialisation, else computed).
    /// </summary>
    public IReadOnlyList<LayerRegime> RegimeNow()
    {
        MatrixD? scratch = null;
        return Regime.Summarise(layer =>
        {
            if (Restraint == null) return (Context.Layer(layer).CurrentDeltaNorm(ref scratch), null);
            var p = _restrained?[layer] ?? Restraint.Restrain(layer);
            return (p.SingularValues.Length > 0 ? p.SingularValues[0] : 0, p.RestrainedCount);
        });
    }

    /// <summary>Puts W0 back in every edited layer.</summary>
    public void RestoreOriginal()
    {
        Unmaterialise();
        foreach (var l in Context.Layers) l.Restore();
        _alphaEdit?.Reset();
    }
}
