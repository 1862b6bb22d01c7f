using System.Diagnostics;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Evaluation;
using Kedit.IO;
using Kedit.Backends.Ort;
using Kedit.IO.Onnx;
using Kedit.Models;

namespace Kedit.Api;

/// <summary>
/// An in-process knowledge editor: one loaded model served for generation and scoring while
/// ROME / MEMIT / D4S edits are applied to it and rolled back, one at a time.
/// </summary>
/// <remarks>
/// <para><b>Concurrency.</b> Two models share every weight array except the edited layers' down
/// projections: the <i>live</i> model that <see cref="Generate"/> and <see cref="Score"/> read, and a
/// <i>work</i> model on which edits are computed (the long part: target optimisation and solves).
/// Readers hold a read lock for a whole call; an edit, once computed, is published by copying the
/// work model's edited weights into the live ones under the write lock, so a reader sees either all
/// of an edit or none of it. Edits, rollbacks and exports are serialised by a separate gate and never
/// block readers while they compute. All members are thread-safe.</para>
/// <para><b>Rollback.</b> The editor keeps the applied edits in order. For D4S (restore mode) rolling
/// back edit <i>i</i> takes its terms (keys K, residuals R) out of the running sums and re-solves: the
/// served ΔW is exactly the D4S solution of the remaining terms (to float64 rounding), at the cost of one
/// refactorisation per layer and no target optimisation, however long the history. Targets are computed
/// on W0, so no other edit's target depends on edit <i>i</i>; with several edited layers, the keys of
/// later edits above the lowest layer were read with edit <i>i</i> in the layers below and are kept as
/// they are. For ROME and MEMIT, whose later edits were computed on top of earlier ones, rollback
/// restores W0 (a bit-exact copy) and re-applies every other edit in its original order (one full edit
/// each), which equals never having applied edit <i>i</i> bit for bit. Rolling back all edits gives W0
/// bit for bit with every method. A failed or cancelled edit never reaches the served weights; the work
/// copy is put back by the replay, except after a cancelled D4S edit, which takes its terms out of the sums
/// and needs none (a service timing edits out does not pay for the whole history).</para>
/// </remarks>
public sealed class KnowledgeEditor : IDisposable
{
    readonly Transformer _live;
    readonly Transformer _work;
    readonly HParams _hparams;
    readonly Covariance? _stats;
    readonly ContextTemplates _templates;
    readonly EditorOptions _options;
    readonly ReaderWriterLockSlim _weightsLock = new(LockRecursionPolicy.NoRecursion);
    readonly SemaphoreSlim _editGate = new(1, 1);
    readonly List<AppliedEdit> _applied = new();
    // AlphaEdit's projectors (an O(f³) eigendecomposition per layer) survive the fresh sessions of rollbacks.
    readonly Dictionary<int, MatrixD> _nullSpaceBases = new();
    EditSession _session;
    // With ServeWithOnnxRuntime: the session over the exported graph and its file (deleted on Dispose).
    readonly OrtDecoder? _ort;
    readonly string? _onnxPath;
    // Snapshot of the applied edits, replaced (never mutated) under the gate, so listing never waits for an edit.
    volatile IReadOnlyList<EditRecord> _records = Array.Empty<EditRecord>();
    int _nextId = 1;
    bool _disposed;

    /// <summary>An applied edit: its requests per step and the session's record of each step (replaced by a rebuild).</summary>
    sealed record AppliedEdit(EditRecord Record, IReadOnlyList<IReadOnlyList<PreparedRequest>> Steps)
    {
        public List<EditStep> SessionSteps { get; } = new();
    }

    KnowledgeEditor(Transformer live, EditorOptions options, HParams hparams, Covariance? stats)
    {
        _live = live; _options = options; _hparams = hparams; _stats = stats;
        _work = live.WithPrivateDownProjections(hparams.Layers);
        // Generated templates depend on the model: draw them once, from W0, so replays are identical.
        var templates = hparams.ContextTemplates ?? TemplateGenerator.Memit(_work, options.TemplateSeed);
        if (hparams.Method == EditMethod.Rome && templates.Groups.Count > 1) templates = ContextTemplates.Flat(templates.All, "ROME context templates (flattened)");
        _templates = templates;
        _session = NewSession();
        if (options.ServeWithOnnxRuntime)
        {
            _onnxPath = Path.Combine(Path.GetTempPath(), $"kedit-serve-{Guid.NewGuid():N}.onnx");
            try
            {
                OnnxExporter.Export(live, _onnxPath, new OnnxExportOptions { EditedLayers = hparams.Layers.ToList() });
                _ort = new OrtDecoder(_onnxPath, live.Config, OrtWeightSet.DownProjections(live, hparams.Layers));
            }
            catch { DeleteOnnx(); throw; }
        }
    }

    void DeleteOnnx()
    {
        if (_onnxPath == null) return;
        File.Delete(_onnxPath);
        File.Delete(_onnxPath + ".data");
    }

    /// <summary>The ONNX Runtime decoder generation runs through (null unless <see cref="EditorOptions.ServeWithOnnxRuntime"/>); for tests and benchmarks.</summary>
    internal OrtDecoder? OnnxRuntime => _ort;

    /// <summary>Loads a model directory and prepares it for editing with <paramref name="options"/>.</summary>
    /// <param name="modelDir">A Hugging Face model directory with a tokenizer.</param>
    /// <param name="options">Method, hparams, statistics and PRUNE mode.</param>
    /// <exception cref="KeditException">Missing or invalid model, hparams or statistics.</exception>
    public static KnowledgeEditor Load(string modelDir, EditorOptions options)
    {
        ArgumentNullException.ThrowIfNull(modelDir);
        ArgumentNullException.ThrowIfNull(options);
        HParams h = options.HParamsPath != null ? HParams.Load(options.HParamsPath, options.Method)
            : options.HParamsJson != null ? HParams.Parse(options.HParamsJson, options.Method)
            : throw new KeditException("hparams: give a hparams file or hparams JSON");
        var model = Transformer.Load(modelDir);
        try
        {
            model.RequireTokenizer();
            h.Validate(model.Config);
            Covariance? stats = null;
            if (options.Method != EditMethod.Rome || h.Mom2Adjustment)
            {
                if (options.StatsPath == null) throw new KeditException($"stats: {options.Method} needs key statistics (a file from kedit stats)");
                stats = Covariance.Load(options.StatsPath, h.Layers, model.Config.Intermediate);
            }
            return new KnowledgeEditor(model, options, h, stats);
        }
        catch { model.Dispose(); throw; }
    }

    /// <summary>The served model (its weights change only when an edit is published).</summary>
    public Transformer Model => _live;

    /// <summary>The editing method.</summary>
    public EditMethod Method => _hparams.Method;

    /// <summary>Greedy continuation of <paramref name="prompt"/> (the new text only, without the prompt).</summary>
    /// <exception cref="KeditException">Empty prompt, negative length, or a prompt longer than the model's context.</exception>
    public string Generate(string prompt, int maxNewTokens) => Generate(prompt, maxNewTokens, CancellationToken.None);

    /// <summary>Greedy continuation, stopped between tokens when <paramref name="ct"/> fires.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> fired before the continuation was complete.</exception>
    public string Generate(string prompt, int maxNewTokens, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tok = _live.RequireTokenizer();
        var ids = tok.Encode(prompt);
        ct.ThrowIfCancellationRequested();
        _weightsLock.EnterReadLock();
        try
        {
            var options = new GenerationOptions { MaxNewTokens = maxNewTokens };
            var output = _ort != null ? Generator.Generate(_ort, _live.Config, ids, options, _ => ct.ThrowIfCancellationRequested())
                                      : Generator.Generate(_live, ids, options, _ => ct.ThrowIfCancellationRequested());
            return tok.Decode(output);
        }
        finally { _weightsLock.ExitReadLock(); }
    }

    /// <summary>
    /// <see cref="ApplyEdits(IReadOnlyList{EditRequest}, CancellationToken)"/> within a time budget (waiting for
    /// a running edit included). Past the budget the edit is abandoned and the served weights stay as they were.
    /// </summary>
    /// <exception cref="TimeoutException">The budget ran out; nothing was published.</exception>
    public EditRecord ApplyEdits(IReadOnlyList<EditRequest> requests, TimeSpan timeBudget, CancellationToken ct = default) =>
        WithinBudget(timeBudget, ct, "the edit", "the served weights are unchanged", token => ApplyEdits(requests, token));

    /// <summary>Greedy continuation within a time budget.</summary>
    /// <exception cref="TimeoutException">The budget ran out before the continuation was complete.</exception>
    public string Generate(string prompt, int maxNewTokens, TimeSpan timeBudget, CancellationToken ct = default) =>
        WithinBudget(timeBudget, ct, "generation", "no text was returned", token => Generate(prompt, maxNewTokens, token));

    /// <summary>
    /// Runs <paramref name="call"/> with a token that also fires after <paramref name="timeBudget"/>, turning that
    /// cancellation into a <see cref="TimeoutException"/>. The deadline is kept by a dedicated thread, not CancelAfter:
    /// timer callbacks run on the thread pool, which the call's own parallel loops can keep busy past the budget
    /// (on 2 cores a 1 ms edit budget often never fired).
    /// </summary>
    static T WithinBudget<T>(TimeSpan timeBudget, CancellationToken ct, string what, string outcome, Func<CancellationToken, T> call)
    {
        if (timeBudget <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeBudget), timeBudget, "the time budget must be positive");
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var finished = new ManualResetEventSlim();
        var watchdog = new Thread(() => { if (!finished.Wait(timeBudget)) budget.Cancel(); }) { IsBackground = true, Name = "kedit time budget" };
        watchdog.Start();
        try { return call(budget.Token); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"{what} did not finish within its time budget of {timeBudget.TotalSeconds:0.###} s; {outcome}");
        }
        finally { finished.Set(); watchdog.Join(); }
    }

    /// <summary>What the editor holds in memory (see <see cref="MemoryReport"/>).</summary>
    public MemoryReport Memory()
    {
        var layers = _session.Context.Layers;
        long copies = layers.Sum(l => 2L * l.D * l.F * sizeof(float));
        if (_session.Restraint?.IsMaterialised == true) copies += layers.Sum(l => (long)l.D * l.F * sizeof(float));
        long stats = _stats == null ? 0 : _stats.Layers.Count * (long)_stats.KeyDim * _stats.KeyDim * sizeof(double);
        // λC and its factor per layer (AlphaEdit: its null-space basis and factor, at most as much); D4S adds S_KK (f²), S_RK and Γ (d·f each).
        long state = layers.Sum(l => 2L * l.F * l.F * sizeof(double)
            + (_hparams.Method == EditMethod.D4S ? ((long)l.F * l.F + 2L * l.D * l.F) * sizeof(double) : 0));
        if (_hparams.Method == EditMethod.Rome && _stats == null) state = 0;
        return new MemoryReport(_live.Weights.ResidentBytes, copies, stats, state, GC.GetGCMemoryInfo().HeapSizeBytes, Environment.WorkingSet);
    }

    /// <summary>Mean negative log-likelihood (nats per token) of <paramref name="candidate"/> following <paramref name="prompt"/>; lower is preferred.</summary>
    public double Score(string prompt, string candidate)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(candidate);
        _weightsLock.EnterReadLock();
        try { return Metrics.Score(_live, new[] { (prompt, candidate) })[0].Nll; }
        finally { _weightsLock.ExitReadLock(); }
    }

    /// <summary>Parses requests in any format <see cref="RequestLoader"/> accepts and applies them as one edit.</summary>
    /// <exception cref="KeditException">Malformed requests or an edit that cannot be computed.</exception>
    public EditRecord ApplyEdits(string requestsJson, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(requestsJson);
        return ApplyEdits(RequestLoader.Parse(requestsJson, "requests"), ct);
    }

    /// <summary>
    /// Applies <paramref name="requests"/> as one edit (one MEMIT/D4S batch; ROME: one step per request)
    /// and publishes the new weights atomically. Waits for an edit already running.
    /// </summary>
    /// <returns>The edit's record, whose id <see cref="Rollback"/> takes.</returns>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> fired; the served weights are unchanged.</exception>
    public EditRecord ApplyEdits(IReadOnlyList<EditRequest> requests, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.Count == 0) throw new KeditException("requests: an edit needs at least one request");
        _editGate.Wait(ct);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // Tokenise and validate everything before any weight moves.
            var prepared = requests.Select(_session.Prepare).ToList();
            IReadOnlyList<IReadOnlyList<PreparedRequest>> steps = _hparams.Method == EditMethod.Rome
                ? prepared.Select(p => (IReadOnlyList<PreparedRequest>)new[] { p }).ToList()
                : new[] { (IReadOnlyList<PreparedRequest>)prepared };
            var sw = Stopwatch.StartNew();
            var sessionSteps = new List<EditStep>();
            try
            {
                foreach (var step in steps) sessionSteps.Add(_session.Apply(step, ct));
                _session.Materialise();
            }
            catch (OperationCanceledException) when (_session.D4s is { RestoreBetweenEdits: true } && sessionSteps.Count == 0)
            {
                // A cancelled D4S step takes out what it had added and serves the sums it found: nothing to replay.
                _session.Materialise();
                throw;
            }
            catch
            {
                Rebuild();
                throw;
            }
            Publish();
            var record = new EditRecord($"e{_nextId++}", requests.ToList(), DateTimeOffset.UtcNow, sw.Elapsed.TotalSeconds);
            var applied = new AppliedEdit(record, steps);
            applied.SessionSteps.AddRange(sessionSteps);
            _applied.Add(applied);
            _records = _applied.Select(a => a.Record).ToArray();
            return record;
        }
        finally { _editGate.Release(); }
    }

    /// <summary>The published edits, oldest first (does not wait for an edit being computed).</summary>
    public IReadOnlyList<EditRecord> ListEdits() => _records;

    /// <summary>Removes one edit: D4S takes it out of its running sums; ROME/MEMIT restore W0 and re-apply the others in order.</summary>
    /// <param name="editId">An id from <see cref="ApplyEdits(IReadOnlyList{EditRequest}, CancellationToken)"/>.</param>
    /// <param name="ct">Cancels only the wait for a running edit; once started, the replay runs to the end so the weights stay consistent.</param>
    /// <exception cref="KeditException">No applied edit has that id.</exception>
    public void Rollback(string editId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(editId);
        _editGate.Wait(ct);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int i = _applied.FindIndex(a => a.Record.Id == editId);
            if (i < 0) throw new KeditException($"edit id '{editId}': no such edit (applied: {(_applied.Count == 0 ? "none" : string.Join(", ", _applied.Select(a => a.Record.Id)))})");
            var removed = _applied[i];
            _applied.RemoveAt(i);
            try
            {
                if (_session.D4s is { RestoreBetweenEdits: true })
                {
                    // Out of the running sums: no target is recomputed, whatever the history.
                    foreach (var step in removed.SessionSteps) _session.Remove(step);
                    _session.Materialise();
                }
                else Rebuild();
            }
            catch { _applied.Insert(i, removed); Rebuild(); throw; }
            Publish();
            _records = _applied.Select(a => a.Record).ToArray();
        }
        finally { _editGate.Release(); }
    }

    /// <summary>
    /// Writes the current (edited) model to <paramref name="outDir"/> like <c>kedit edit</c> does:
    /// model.safetensors, deltas.safetensors, original.safetensors and journal.json, moved into place when complete.
    /// </summary>
    public void Export(string outDir)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        string modelDir = _live.Directory ?? throw new KeditException("the model has no source directory to export from");
        _editGate.Wait();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            string staging = AtomicOutput.CreateStaging(outDir);
            try
            {
                using var source = TensorStore.OpenDirectory(modelDir);
                var layers = _session.Context.Layers;
                var replaced = layers.ToDictionary(l => l.Name, l => ModelDirectory.F32(l.StoredShape, l.Weight.Weight));
                ModelDirectory.WriteModel(modelDir, source, staging, replaced,
                    new Dictionary<string, string> { [EditJournal.EditMetadataKey] = _hparams.Method.ToString().ToLowerInvariant() });
                var extra = new JsonObject
                {
                    ["stats"] = _options.StatsPath == null ? null : Path.GetFullPath(_options.StatsPath),
                    ["lambda"] = _session.Context.Lambda,
                    ["template_seed"] = _hparams.ContextTemplates == null ? _options.TemplateSeed : null,
                    ["edit_ids"] = new JsonArray(_applied.Select(a => (JsonNode)a.Record.Id).ToArray()),
                };
                EditJournal.Write(staging, _session, modelDir, source, _applied.SelectMany(a => a.Record.Requests).ToList(), extra);
                AtomicOutput.CommitDirectory(staging, outDir, ModelDirectory.IsEditOutput, "a kedit edit output");
            }
            catch { AtomicOutput.Abandon(staging); throw; }
        }
        finally { _editGate.Release(); }
    }

    EditSession NewSession() => new(_work, _hparams, _stats, _templates, _options.Prune, nullSpaceBases: _nullSpaceBases);

    /// <summary>Work model back to W0, a fresh session (fresh D4S sums), then every applied edit replayed in order.</summary>
    void Rebuild()
    {
        _session.RestoreOriginal();
        _session = NewSession();
        foreach (var edit in _applied)
        {
            edit.SessionSteps.Clear();
            foreach (var step in edit.Steps) edit.SessionSteps.Add(_session.Apply(step));
        }
        _session.Materialise();
    }

    /// <summary>Copies the work model's edited weights into the live ones, atomically for readers.</summary>
    void Publish()
    {
        _weightsLock.EnterWriteLock();
        try
        {
            foreach (var l in _session.Context.Layers)
            {
                var live = _live.Weights.Layers[l.Layer].MlpOut;
                l.Weight.Weight.CopyTo(live.Weight, 0);
                live.MarkChanged();
            }
            // A new set over the live arrays for ONNX Runtime; no reader runs under the write lock, so the old set can go.
            _ort?.Publish(OrtWeightSet.DownProjections(_live, _hparams.Layers))?.Dispose();
        }
        finally { _weightsLock.ExitWriteLock(); }
    }

    /// <summary>Waits for a running edit, then releases the model.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _editGate.Wait();
        try
        {
            if (_disposed) return;
            _disposed = true;
            _live.Dispose();
            if (_ort != null) { _ort.Publish(null)?.Dispose(); _ort.Dispose(); DeleteOnnx(); }
        }
        finally { _editGate.Release(); }
    }
}
