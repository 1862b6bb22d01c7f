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
    // Null when editing is unavailable (EditingUnavailable says why): generation and scoring only.
    readonly Transformer? _work;
    readonly HParams? _hparams;
    readonly Covariance? _stats;
    readonly ContextTemplates? _templates;
    readonly EditorOptions _options;
    readonly EditorState? _state;
    readonly ReaderWriterLockSlim _weightsLock = new(LockRecursionPolicy.NoRecursion);
    readonly SemaphoreSlim _editGate = new(1, 1);
    readonly List<AppliedEdit> _applied = new();
    // AlphaEdit's projectors (an O(f³) eigendecomposition per layer) survive the fresh sessions of rollbacks.
    readonly Dictionary<int, MatrixD> _nullSpaceBases = new();
    EditSession? _session;
    // With ServeWithOnnxRuntime: the session over the exported graph and its file (deleted on Dispose).
    readonly OrtDecoder? _ort;
    // Snapshot of the applied edits, replaced (never mutated) under the gate, so listing never waits for an edit.
    volatile IReadOnlyList<EditRecord> _records = Array.Empty<EditRecord>();
    int _nextId = 1;
    bool _disposed;

    /// <summary>An applied edit: its requests per step and the session's record of each step (replaced by a rebuild).</summary>
    sealed record AppliedEdit(EditRecord Record, IReadOnlyList<IReadOnlyList<PreparedRequest>> Steps)
    {
        public List<EditStep> SessionSteps { get; } = new();
    }

    KnowledgeEditor(Transformer live, EditorOptions options, EditingSetup setup)
    {
        _live = live; _options = options; _hparams = setup.HParams; _stats = setup.Stats;
        HParamsSource = setup.HParamsSource; StatsSource = setup.StatsSource; EditingUnavailable = setup.Unavailable;
        var editedLayers = _hparams?.Layers ?? [];
        if (_hparams != null)
        {
            _work = live.WithPrivateDownProjections(_hparams.Layers);
            // Generated templates depend on the model: draw them once, from W0, so replays are identical.
            var templates = _hparams.ContextTemplates ?? TemplateGenerator.Memit(_work, options.TemplateSeed);
            if (_hparams.Method == EditMethod.Rome && templates.Groups.Count > 1) templates = ContextTemplates.Flat(templates.All, "ROME context templates (flattened)");
            _templates = templates;
            _session = NewSession();
            if (options.StateDirectory != null) _state = new EditorState(options.StateDirectory, _hparams, StateFingerprint());
        }
        else if (options.StateDirectory != null)
            throw new KeditException($"--state {options.StateDirectory}: edits cannot be kept while editing is unavailable ({setup.Unavailable})");
        if (options.ServeWithOnnxRuntime)
        {
            // The edited layers are graph inputs bound from the live weights, so the graph of the model's files serves every edit.
            string onnx = OnnxExportCache.GetOrExport(live, new OnnxExportOptions { EditedLayers = editedLayers.ToList() }, out _);
            _ort = new OrtDecoder(onnx, live.Config, OrtWeightSet.DownProjections(live, editedLayers), options.OnnxRuntimeCuda);
        }
    }

    /// <summary>Why edits are refused (null when editing is available): the hparams or statistics that are missing.</summary>
    public string? EditingUnavailable { get; }
    /// <summary>Where the hparams came from (a path, "JSON text", or null when there are none).</summary>
    public string? HParamsSource { get; }
    /// <summary>The statistics file (null when none are used).</summary>
    public string? StatsSource { get; }

    /// <summary>The hparams, statistics and origin an editor edits with, or why it cannot edit.</summary>
    sealed record EditingSetup(HParams? HParams, Covariance? Stats, string? HParamsSource, string? StatsSource, string? Unavailable);

    /// <summary>
    /// Resolves what editing needs. Explicit options that are wrong fail the load; with
    /// <see cref="EditorOptions.UseModelDefaults"/>, what is absent (or a model default that does not fit) disables editing instead.
    /// </summary>
    static EditingSetup ResolveEditing(string modelDir, Transformer model, EditorOptions options)
    {
        string method = options.Method.ToString().ToLowerInvariant();
        string? hpath = options.HParamsPath;
        bool defaultHParams = false;
        if (hpath == null && options.HParamsJson == null && options.UseModelDefaults)
        {
            string d = Path.Combine(modelDir, "hparams.json");
            if (!File.Exists(d)) return new(null, null, null, null, $"{method} needs hparams: none given (--hparams FILE) and the model directory has no hparams.json");
            hpath = d; defaultHParams = true;
        }
        HParams h;
        try
        {
            h = hpath != null ? HParams.Load(hpath, options.Method)
                : options.HParamsJson != null ? HParams.Parse(options.HParamsJson, options.Method)
                : throw new KeditException("hparams: give a hparams file or hparams JSON");
            h.Validate(model.Config);
        }
        catch (KeditException e) when (defaultHParams) { return new(null, null, null, null, $"the model's hparams.json does not fit {method}: {e.Message}"); }
        string hsource = hpath != null ? Path.GetFullPath(hpath) : "JSON text";
        if (options.Method == EditMethod.Rome && !h.Mom2Adjustment) return new(h, null, hsource, null, null);
        string? statsPath = options.StatsPath;
        if (statsPath == null && options.UseModelDefaults)
            statsPath = KeyStatistics.FindCached(modelDir, h.Layers, Covariance.ProductsFor(h.Mom2Dtype), h.Mom2NSamples);
        if (statsPath == null)
        {
            string layers = string.Join(",", h.Layers);
            if (!options.UseModelDefaults) throw new KeditException($"stats: {options.Method} needs key statistics (a file from kedit stats)");
            return new(null, null, hsource, null, $"{method} needs key statistics of layers {layers}: none given (--stats FILE) and none cached for this model " +
                $"in {KeyStatistics.CacheDirectory()}; compute them with: kedit stats --model {modelDir} --layers {layers} --corpus FILE --out stats.safetensors");
        }
        var stats = Covariance.Load(statsPath, h.Layers, model.Config.Intermediate, float32: Covariance.HeldAsFloat32(h.Mom2Dtype));
        return new(h, stats, hsource, Path.GetFullPath(statsPath), null);
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
        if (options.HParamsPath == null && options.HParamsJson == null && !options.UseModelDefaults)
            throw new KeditException("hparams: give a hparams file or hparams JSON");
        var model = Transformer.Load(modelDir);
        KnowledgeEditor? editor = null;
        try
        {
            model.RequireTokenizer();
            editor = new KnowledgeEditor(model, options, ResolveEditing(modelDir, model, options));
            editor.ReplayState();
            return editor;
        }
        catch
        {
            if (editor != null) editor.Dispose(); else model.Dispose();
            throw;
        }
    }

    /// <summary>The served model (its weights change only when an edit is published).</summary>
    public Transformer Model => _live;

    /// <summary>The editing method.</summary>
    public EditMethod Method => _options.Method;

    /// <summary>Greedy continuation of <paramref name="prompt"/> (the new text only, without the prompt).</summary>
    /// <exception cref="KeditException">Empty prompt, negative length, or a prompt longer than the model's context.</exception>
    public string Generate(string prompt, int maxNewTokens) => Generate(prompt, maxNewTokens, CancellationToken.None);

    /// <summary>Greedy continuation, stopped between tokens when <paramref name="ct"/> fires.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> fired before the continuation was complete.</exception>
    public string Generate(string prompt, int maxNewTokens, CancellationToken ct) =>
        Generate(prompt, new GenerationOptions { MaxNewTokens = maxNewTokens }, ct);

    /// <summary>
    /// Continuation of <paramref name="prompt"/> with <paramref name="options"/>: greedy at temperature 0, else sampled
    /// (top-k when set) from <see cref="GenerationOptions.Seed"/>, so the same seed gives the same text on the same weights.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> fired before the continuation was complete.</exception>
    public string Generate(string prompt, GenerationOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        var tok = _live.RequireTokenizer();
        var ids = tok.Encode(prompt);
        ct.ThrowIfCancellationRequested();
        _weightsLock.EnterReadLock();
        try
        {
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
        Generate(prompt, new GenerationOptions { MaxNewTokens = maxNewTokens }, timeBudget, ct);

    /// <summary>Continuation with <paramref name="options"/> within a time budget.</summary>
    /// <exception cref="TimeoutException">The budget ran out before the continuation was complete.</exception>
    public string Generate(string prompt, GenerationOptions options, TimeSpan timeBudget, CancellationToken ct = default) =>
        WithinBudget(timeBudget, ct, "generation", "no text was returned", token => Generate(prompt, options, token));

    /// <summary><see cref="Generate(string, GenerationOptions, CancellationToken)"/> on the thread pool.</summary>
    public Task<string> GenerateAsync(string prompt, GenerationOptions options, CancellationToken ct = default) =>
        Task.Run(() => Generate(prompt, options, ct), ct);

    /// <summary>Greedy continuation on the thread pool.</summary>
    public Task<string> GenerateAsync(string prompt, int maxNewTokens, CancellationToken ct = default) =>
        GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = maxNewTokens }, ct);

    /// <summary><see cref="Score"/> on the thread pool.</summary>
    public Task<double> ScoreAsync(string prompt, string candidate, CancellationToken ct = default) =>
        Task.Run(() => Score(prompt, candidate), ct);

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
        IReadOnlyList<EditedLayer> layers = _session?.Context.Layers ?? (IReadOnlyList<EditedLayer>)Array.Empty<EditedLayer>();
        long copies = layers.Sum(l => 2L * l.D * l.F * sizeof(float));
        if (_session?.Restraint?.IsMaterialised == true) copies += layers.Sum(l => (long)l.D * l.F * sizeof(float));
        long stats = _stats == null ? 0 : _stats.Layers.Count * (long)_stats.KeyDim * _stats.KeyDim * sizeof(double);
        // λC and its factor per layer (AlphaEdit: its null-space basis and factor, at most as much); D4S: what its states hold.
        long state = _session?.D4s is { } d4s ? d4s.HeldBytes : layers.Sum(l => 2L * l.F * l.F * sizeof(double));
        if (Method == EditMethod.Rome && _stats == null) state = 0;
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
    /// <exception cref="EditingUnavailableException">The editor was loaded without what editing needs.</exception>
    public EditRecord ApplyEdits(IReadOnlyList<EditRequest> requests, CancellationToken ct = default)
    {
        CheckEditable(requests);
        _editGate.Wait(ct);
        try { return ApplyLocked(requests, null, ct); }
        finally { _editGate.Release(); }
    }

    /// <summary>
    /// <see cref="ApplyEdits(IReadOnlyList{EditRequest}, CancellationToken)"/> without blocking the caller: the wait for a
    /// running edit is asynchronous and the computation runs on the thread pool.
    /// </summary>
    public async Task<EditRecord> ApplyEditsAsync(IReadOnlyList<EditRequest> requests, CancellationToken ct = default)
    {
        CheckEditable(requests);
        await _editGate.WaitAsync(ct).ConfigureAwait(false);
        try { return await Task.Run(() => ApplyLocked(requests, null, ct), ct).ConfigureAwait(false); }
        finally { _editGate.Release(); }
    }

    void CheckEditable(IReadOnlyList<EditRequest> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (EditingUnavailable != null) throw new EditingUnavailableException(EditingUnavailable);
        if (requests.Count == 0) throw new KeditException("requests: an edit needs at least one request");
    }

    /// <summary>One edit under the gate; <paramref name="replayed"/> is the kept record when a state is replayed.</summary>
    EditRecord ApplyLocked(IReadOnlyList<EditRequest> requests, EditRecord? replayed, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var session = _session!;
        // Tokenise and validate everything before any weight moves.
        var prepared = requests.Select(session.Prepare).ToList();
        IReadOnlyList<IReadOnlyList<PreparedRequest>> steps = Method == EditMethod.Rome
            ? prepared.Select(p => (IReadOnlyList<PreparedRequest>)new[] { p }).ToList()
            : new[] { (IReadOnlyList<PreparedRequest>)prepared };
        var sw = Stopwatch.StartNew();
        var sessionSteps = new List<EditStep>();
        try
        {
            foreach (var step in steps) sessionSteps.Add(session.Apply(step, ct));
            session.Materialise();
        }
        catch (OperationCanceledException) when (session.D4s is { RestoreBetweenEdits: true } && sessionSteps.Count == 0)
        {
            // A cancelled D4S step takes out what it had added and serves the sums it found: nothing to replay.
            session.Materialise();
            throw;
        }
        catch
        {
            Rebuild();
            throw;
        }
        var record = replayed != null
            ? new EditRecord(replayed.Id, requests.ToList(), replayed.AppliedAt, replayed.Seconds)
            : new EditRecord($"e{_nextId}", requests.ToList(), DateTimeOffset.UtcNow, sw.Elapsed.TotalSeconds);
        var applied = new AppliedEdit(record, steps);
        applied.SessionSteps.AddRange(sessionSteps);
        _applied.Add(applied);
        if (replayed == null)
        {
            // Kept before it is served: a restart never loses an edit a client saw applied.
            try { _state?.Save(_applied.Select(a => a.Record).ToList(), _nextId + 1, WeightsDigest(), StatsSource); }
            catch { _applied.RemoveAt(_applied.Count - 1); Rebuild(); throw; }
            _nextId++;
        }
        Publish();
        _records = _applied.Select(a => a.Record).ToArray();
        return record;
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
        try { RollbackLocked(editId); }
        finally { _editGate.Release(); }
    }

    /// <summary><see cref="Rollback"/> with an asynchronous wait for a running edit, the work on the thread pool.</summary>
    public async Task RollbackAsync(string editId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(editId);
        await _editGate.WaitAsync(ct).ConfigureAwait(false);
        // Once started the rollback runs to the end (see Rollback), so the work itself takes no token.
        try { await Task.Run(() => RollbackLocked(editId), CancellationToken.None).ConfigureAwait(false); }
        finally { _editGate.Release(); }
    }

    void RollbackLocked(string editId)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int i = _applied.FindIndex(a => a.Record.Id == editId);
        if (i < 0) throw new KeditException($"edit id '{editId}': no such edit (applied: {(_applied.Count == 0 ? "none" : string.Join(", ", _applied.Select(a => a.Record.Id)))})");
        var session = _session!;
        var removed = _applied[i];
        _applied.RemoveAt(i);
        try
        {
            if (session.D4s is { RestoreBetweenEdits: true })
            {
                // Out of the running sums: no target is recomputed, whatever the history.
                foreach (var step in removed.SessionSteps) session.Remove(step);
                session.Materialise();
            }
            else Rebuild();
            _state?.Save(_applied.Select(a => a.Record).ToList(), _nextId, WeightsDigest(), StatsSource);
        }
        catch { _applied.Insert(i, removed); Rebuild(); throw; }
        Publish();
        _records = _applied.Select(a => a.Record).ToArray();
    }

    /// <summary>
    /// Writes the current (edited) model to <paramref name="outDir"/> like <c>kedit edit</c> does:
    /// model.safetensors, deltas.safetensors, original.safetensors and journal.json, moved into place when complete.
    /// </summary>
    public void Export(string outDir)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        string modelDir = _live.Directory ?? throw new KeditException("the model has no source directory to export from");
        if (EditingUnavailable != null) throw new EditingUnavailableException(EditingUnavailable);
        _editGate.Wait();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var session = _session!;
            string staging = AtomicOutput.CreateStaging(outDir);
            try
            {
                using var source = TensorStore.OpenDirectory(modelDir);
                var layers = session.Context.Layers;
                var replaced = layers.ToDictionary(l => l.Name, l => ModelDirectory.F32(l.StoredShape, l.Weight.Weight));
                ModelDirectory.WriteModel(modelDir, source, staging, replaced,
                    new Dictionary<string, string> { [EditJournal.EditMetadataKey] = Method.ToString().ToLowerInvariant() });
                var extra = new JsonObject
                {
                    ["stats"] = StatsSource,
                    ["lambda"] = session.Context.Lambda,
                    ["template_seed"] = _hparams!.ContextTemplates == null ? _options.TemplateSeed : null,
                    ["edit_ids"] = new JsonArray(_applied.Select(a => (JsonNode)a.Record.Id).ToArray()),
                };
                EditJournal.Write(staging, session, modelDir, source, _applied.SelectMany(a => a.Record.Requests).ToList(), extra);
                AtomicOutput.CommitDirectory(staging, outDir, ModelDirectory.IsEditOutput, "a kedit edit output");
            }
            catch { AtomicOutput.Abandon(staging); throw; }
        }
        finally { _editGate.Release(); }
    }

    EditSession NewSession() => new(_work!, _hparams!, _stats, _templates!, _options.Prune, nullSpaceBases: _nullSpaceBases);

    /// <summary>Work model back to W0, a fresh session (fresh D4S sums), then every applied edit replayed in order.</summary>
    void Rebuild()
    {
        _session!.RestoreOriginal();
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
            foreach (var l in _session!.Context.Layers)
            {
                var live = _live.Weights.Layers[l.Layer].MlpOut;
                l.Weight.Weight.CopyTo(live.Weight, 0);
                live.MarkChanged();
            }
            // A new set over the live arrays for ONNX Runtime; no reader runs under the write lock, so the old set can go.
            _ort?.Publish(OrtWeightSet.DownProjections(_live, _hparams!.Layers))?.Dispose();
        }
        finally { _weightsLock.ExitWriteLock(); }
    }

    /// <summary>SHA-256 of the work model's edited weights (what a kept state's replay must reproduce).</summary>
    string WeightsDigest()
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var l in _session!.Context.Layers) sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(l.Weight.Weight.AsSpan()));
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>What a kept state must match: the method, the hparams and W0 of the edited layers.</summary>
    string StateFingerprint()
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var l in _hparams!.Layers) sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_live.Weights.Layers[l].MlpOut.Weight.AsSpan()));
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>Re-applies the edits a kept state lists, in order, with their ids (each checked against the weights it recorded).</summary>
    void ReplayState()
    {
        if (_state == null) return;
        var kept = _state.Load();
        _editGate.Wait();
        try
        {
            foreach (var e in kept.Edits) ApplyLocked(e.Requests, e, CancellationToken.None);
            _nextId = Math.Max(_nextId, kept.NextId);
            // Bit-identical unless the statistics changed, or a D4S rollback took terms out of the sums (equal to rounding).
            if (kept.WeightsSha256 != null && kept.WeightsSha256 != WeightsDigest())
                ReplayWarning = $"the {kept.Edits.Count} kept edit(s) replayed to weights that differ from the served ones they were saved with " +
                                "(other statistics, or a D4S rollback's rounding)";
        }
        finally { _editGate.Release(); }
    }

    /// <summary>Set when replaying a kept state did not reproduce the saved weights bit for bit (see <see cref="EditorOptions.StateDirectory"/>).</summary>
    public string? ReplayWarning { get; private set; }

    /// <summary>The state folder this editor keeps its edits in (null when it keeps none).</summary>
    public string? StateDirectory => _state?.Directory;

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
            if (_ort != null) { _ort.Publish(null)?.Dispose(); _ort.Dispose(); }
        }
        finally { _editGate.Release(); }
    }
}

/// <summary>An edit was asked of an editor loaded without what editing needs (the message says what is missing).</summary>
public sealed class EditingUnavailableException(string message) : KeditException(message);
