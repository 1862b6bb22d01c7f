using System.Text.Json.Nodes;
using Kedit.Backends;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>Everything an `edit` run needs (the CLI's options).</summary>
public sealed record EditJob
{
    public required string ModelDir { get; init; }
    public required EditMethod Method { get; init; }
    public required string HParamsPath { get; init; }
    public required string RequestsPath { get; init; }
    public required string OutDir { get; init; }
    public string? StatsPath { get; init; }
    public string? CorpusPath { get; init; }
    public int? Samples { get; init; }
    public bool Sequential { get; init; }
    public int BatchSize { get; init; } = 1;
    public PruneMode? Prune { get; init; }
    public int TemplateSeed { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>Records to skip from the start of the requests file (<c>--offset</c>).</summary>
    public int Offset { get; init; }
    /// <summary>Most records to edit after the offset (<c>--limit</c>), or null for all.</summary>
    public int? Limit { get; init; }
    /// <summary>Target vectors from `kedit targets` shards (MEMIT and AlphaEdit, one batch), used instead of compute_z.</summary>
    public IReadOnlyList<string>? TargetsPaths { get; init; }
}

/// <summary>
/// The `edit` job: load, statistics, templates, the edit sequence with progress, PRUNE's
/// restraint, then the edited model + journal written to a staging directory and moved into
/// place only when complete.
/// </summary>
public static class EditRunner
{
    public static EditSession Run(EditJob job, TextWriter log, CancellationToken ct = default)
    {
        AtomicOutput.CheckDirectoryTarget(job.OutDir, ModelDirectory.IsEditOutput, "a kedit edit output");
        using var model = Transformer.Load(job.ModelDir, Devices.Create(job.Device));
        var h = HParams.Load(job.HParamsPath, job.Method).Validate(model.Config);
        var requests = RequestLoader.LoadForCommand(job.RequestsPath, job.Offset, job.Limit, log);
        if (h.RuntimeKeys.Count > 0)
            log.WriteLine($"kedit: note: {job.HParamsPath}: runtime keys recorded in the journal, not used by the edit: {string.Join(", ", h.RuntimeKeys.Select(kv => $"{kv.Key}={kv.Value}"))}");
        if (requests.Count == 0) throw new KeditException($"{job.RequestsPath}: no requests");
        if (job.BatchSize < 1) throw new KeditException("--batch-size must be at least 1");

        bool needsStats = job.Method != EditMethod.Rome || h.Mom2Adjustment;
        Covariance? stats = null;
        string? statsSource = null;
        if (needsStats)
        {
            if (job.StatsPath != null) { stats = Covariance.Load(job.StatsPath, h.Layers, model.Config.Intermediate, float32: Covariance.HeldAsFloat32(h.Mom2Dtype)); statsSource = Path.GetFullPath(job.StatsPath); }
            else if (job.CorpusPath != null)
            {
                stats = KeyStatistics.ComputeOrLoad(model, job.ModelDir, h.Layers, job.CorpusPath, job.Samples ?? h.Mom2NSamples, log, out string cache,
                    products: Covariance.ProductsFor(h.Mom2Dtype), ct: ct);
                statsSource = cache;
            }
            else throw new KeditException($"{job.Method} needs key statistics: give --stats FILE (from kedit stats) or --corpus FILE");
            stats.HeldFor(h.Mom2Dtype);
        }

        var templates = Templates(model, h, job.Method, job.TemplateSeed, requests, job.RequestsPath);
        var session = new EditSession(model, h, stats, templates, job.Prune);
        if (job.TargetsPaths is { } targets)
        {
            if (job.Method is not (EditMethod.Memit or EditMethod.AlphaEdit)) throw new KeditException($"--targets: target shards are for memit and alphaedit, not {job.Method.ToString().ToLowerInvariant()}");
            if (job.Sequential) throw new KeditException("--targets with --sequential: later batches' targets depend on the earlier edits; target shards serve one batch edit");
            var identity = TargetShards.Identity(job.ModelDir, job.Method, job.HParamsPath, h, job.RequestsPath, job.Offset, job.Limit, job.TemplateSeed);
            session.Context.SuppliedTargets = TargetShards.Load(targets, identity, requests.Select(session.Prepare).ToList(), model.Config.Hidden);
        }

        // ROME is one request per step; MEMIT/D4S take all requests at once unless run sequentially.
        int per = job.Method == EditMethod.Rome ? 1 : job.Sequential ? job.BatchSize : requests.Count;
        // A single step never reuses a factor of λC: dropping each after its layer keeps one f×f workspace live, not one per layer.
        session.Context.RetainFactors = requests.Count > per;
        // The cost before the work: each request's target vector is an optimisation over its context prompts.
        int steps = (requests.Count + per - 1) / per, contexts = templates.All.Count();
        log.WriteLine($"kedit: {requests.Count} request(s) in {steps} step(s); each target vector takes up to {h.VNumGradSteps} optimisation steps over " +
                      $"{contexts} context prompt(s) ({(long)requests.Count * h.VNumGradSteps * contexts:N0} forward+backward passes at most), then one solve per edited layer per step ({h.Layers.Count} layer(s))");
        var bar = new ProgressBar(log, $"{job.Method.ToString().ToLowerInvariant()} edits", requests.Count);
        bar.Report(0, "computing targets");
        for (int i = 0; i < requests.Count; i += per)
        {
            ct.ThrowIfCancellationRequested();
            var batch = requests.Skip(i).Take(per).ToList();
            var step = session.Apply(batch, ct);
            double loss = step.ZRuns.Average(z => z.Trace[^1].Loss);
            bar.Report(Math.Min(i + per, requests.Count), $"z loss {loss:F3}");
        }
        bar.Done($"{requests.Count} requests in {session.Steps.Count} step(s)");
        var nullSpaces = session.AlphaEdit is { } alpha
            ? session.Context.Layers.Select(l => (Layer: l.Layer, Rank: alpha.Solver(l.Layer).Rank, KeyDim: l.F)).ToList() : null;
        if (nullSpaces != null) log.WriteLine($"AlphaEdit null spaces: {string.Join(", ", nullSpaces.Select(n => $"layer {n.Layer} {n.Rank} of {n.KeyDim} dims"))}");
        IReadOnlyDictionary<int, PruneResult>? restrained = session.Materialise();

        string staging = AtomicOutput.CreateStaging(job.OutDir);
        try
        {
            using var source = TensorStore.OpenDirectory(job.ModelDir);
            var replaced = session.Context.Layers.ToDictionary(l => l.Name, l => ModelDirectory.F32(l.StoredShape, l.Weight.Weight));
            ModelDirectory.WriteModel(job.ModelDir, source, staging, replaced, new Dictionary<string, string> { [EditJournal.EditMetadataKey] = job.Method.ToString().ToLowerInvariant() });
            var extra = new JsonObject
            {
                ["requests_file"] = Path.GetFullPath(job.RequestsPath),
                ["stats"] = statsSource,
                ["lambda"] = session.Context.Lambda,
                ["sequential"] = job.Sequential,
                ["batch_size"] = per,
                ["template_seed"] = h.ContextTemplates == null ? job.TemplateSeed : null,
                ["device"] = job.Device,
                ["null_spaces"] = nullSpaces == null ? null : new JsonArray(nullSpaces.Select(n => (JsonNode)new JsonObject
                {
                    ["layer"] = n.Layer, ["rank"] = n.Rank, ["key_dim"] = n.KeyDim,
                }).ToArray()),
                ["prune_results"] = restrained == null ? null : new JsonArray(restrained.Select(kv => (JsonNode)new JsonObject
                {
                    ["layer"] = kv.Key, ["rank"] = kv.Value.Rank, ["restrained"] = kv.Value.RestrainedCount, ["sigma_max_w0"] = kv.Value.SigmaMaxW0,
                    ["top_singular_values"] = new JsonArray(kv.Value.SingularValues.Take(5).Select(v => (JsonNode)v).ToArray()),
                }).ToArray()),
            };
            if (job.TargetsPaths != null) extra["targets"] = new JsonArray(job.TargetsPaths.Select(p => (JsonNode)Path.GetFullPath(p)).ToArray());
            EditJournal.Write(staging, session, job.ModelDir, source, requests, extra);
            AtomicOutput.CommitDirectory(staging, job.OutDir, ModelDirectory.IsEditOutput, "a kedit edit output");
        }
        catch { AtomicOutput.Abandon(staging); throw; }
        log.WriteLine($"wrote {job.OutDir} (model, deltas.safetensors, journal.json)");
        return session;
    }

    /// <summary>The context templates of a run (the hparams', else generated from the seed), the requests' lengths checked against them.</summary>
    public static ContextTemplates Templates(Transformer model, HParams h, EditMethod method, int seed, IReadOnlyList<EditRequest> requests, string requestsPath)
    {
        var templates = h.ContextTemplates ?? TemplateGenerator.Memit(model, seed);
        if (method == EditMethod.Rome && templates.Groups.Count > 1) templates = ContextTemplates.Flat(templates.All, "ROME context templates (flattened)");
        RequestLengths.Check(requests, model, requestsPath, templates.All.Max(t => model.RequireTokenizer().Encode(t.Replace("{}", "")).Length));
        return templates;
    }
}
