using System.Text.Encodings.Web;
using System.Text.Json;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Evaluation;

namespace Kedit.Cli;

/// <summary>The editing commands: stats, edit, rollback, eval.</summary>
internal static class Commands
{
    public static readonly JsonSerializerOptions JsonOut = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static int Stats(Args a, TextWriter o, TextWriter err)
    {
        if (a.Has("import")) return ImportStats(a, o);
        string dir = a.ModelDir(), corpus = a.Req("corpus"), outPath = a.Req("out");
        var layers = Args.ParseIds(a.Req("layers"), "layers");
        int? samples = a.Has("samples") ? a.Int("samples", 0) : null;
        var shard = a.Opt("shard") is string sh ? Shard.Parse(sh, "--shard") : (Shard?)null;
        string dtype = a.Opt("mom2-dtype") ?? "float32";
        if (dtype is not ("float32" or "float64")) throw new UsageException($"stats: --mom2-dtype is \"{dtype}\"; expected float32 or float64");
        Kedit.IO.AtomicOutput.CheckFileTarget(outPath);
        bool force = a.Flag("force");
        PlanCommand.Check(dir, PlannedWork.Stats, layers, dtype == "float64", a.Opt("device") ?? "cpu", "stats", force);
        using var model = Cli.LoadModel(a);
        a.EnsureAllUsed();
        foreach (int l in layers)
            if (l < 0 || l >= model.Config.Layers) throw new KeditException($"--layers: layer {l} is outside the model's {model.Config.Layers} layers");
        if (samples is <= 0) throw new UsageException("stats: --samples must be positive");
        var cov = shard is Shard s ? StatisticsShards.Compute(model, dir, layers.Distinct().Order().ToList(), corpus, samples, s, outPath, err, Covariance.ProductsFor(dtype))
            : KeyStatistics.ComputeOrLoad(model, dir, layers.Distinct().Order().ToList(), corpus, samples, err, outPath, Covariance.ProductsFor(dtype));
        o.WriteLine($"wrote {outPath}: layers {string.Join(",", cov.Layers.Order())}, {cov.Count(layers[0]):N0} tokens from {cov.Documents} documents{(shard is Shard t ? $" (shard {t})" : "")}");
        return 0;
    }

    /// <summary><c>stats --import FILE.npz [--layer L] [--model DIR] --out FILE</c>: ROME/MEMIT's cached statistics as a kedit file.</summary>
    static int ImportStats(Args a, TextWriter o)
    {
        string npz = a.Req("import"), outPath = a.Req("out");
        int? layer = a.Has("layer") ? a.Int("layer", 0) : UpstreamStatistics.LayerFromFileName(npz);
        Kedit.IO.AtomicOutput.CheckFileTarget(outPath);
        int? keyDim = null;
        if (a.Opt("model") is string m)
        {
            var config = Kedit.Models.ModelConfig.Load(Kedit.IO.ModelLocator.Resolve(m));
            keyDim = config.Intermediate;
            if (layer is int l && (l < 0 || l >= config.Layers)) throw new KeditException($"--layer: layer {l} is outside the model's {config.Layers} layers");
        }
        a.EnsureAllUsed();
        if (layer is not int layerIndex) throw new UsageException($"stats --import: cannot tell the layer from the file name {Path.GetFileName(npz)}; give --layer L");
        if (layerIndex < 0) throw new UsageException("stats --import: --layer must be 0 or more");
        var cov = UpstreamStatistics.Import(npz, layerIndex, keyDim, outPath);
        o.WriteLine($"wrote {outPath}: layer {layerIndex}, {cov.KeyDim}×{cov.KeyDim}, {cov.Count(layerIndex):N0} tokens (imported from {Path.GetFileName(npz)})");
        return 0;
    }

    public static int Edit(Args a, TextWriter o, TextWriter err)
    {
        EditMethod method;
        try { method = Kedit.Api.EditorOptions.ParseMethod(a.Req("method")); }
        catch (KeditException e) { throw new UsageException($"edit: --method: {e.Message}"); }
        bool sequential = a.Flag("sequential");
        if (a.Has("batch-size") && !sequential) throw new UsageException("edit: --batch-size needs --sequential");
        string? prune = a.Opt("prune");
        var job = new EditJob
        {
            ModelDir = a.ModelDir(), Method = method, HParamsPath = a.Req("hparams"), RequestsPath = a.Req("requests"), OutDir = a.Req("out"),
            StatsPath = a.Opt("stats"), CorpusPath = a.Opt("corpus"), Samples = a.Has("samples") ? a.Int("samples", 0) : null,
            Sequential = sequential, BatchSize = a.Int("batch-size", 1),
            Prune = prune == null ? null : Prune.ParseMode(prune),
            TemplateSeed = a.Int("template-seed", 0), Device = a.Opt("device") ?? "cpu",
            Offset = a.Int("offset", 0), Limit = a.Has("limit") ? a.Int("limit", 0) : null,
            TargetsPaths = a.Opt("targets")?.Split(',', StringSplitOptions.RemoveEmptyEntries),
        };
        bool force = a.Flag("force");
        a.EnsureAllUsed();
        PlanCommand.CheckEdit(job, force);
        if (job.Prune != null && !sequential && method != EditMethod.Rome) err.WriteLine("kedit: note: --prune restrains the accumulated perturbation; with a single batch it acts on that batch's update");
        var session = EditRunner.Run(job, err);
        o.WriteLine($"edited {session.EditCount} request(s) with {method.ToString().ToLowerInvariant()}{(job.Prune != null ? "+prune" : "")} in {session.Steps.Count} step(s), {session.Steps.Sum(s => s.Timings.Total):F2}s; output {job.OutDir}");
        // The regime as the journal records it: edit sizes against σ_max(W0), per edited layer.
        var journal = EditJournal.Read(job.OutDir);
        foreach (var l in journal.Regime ?? []) o.WriteLine(EditRegime.Describe(l));
        if (journal.Warning is string warning) o.WriteLine($"warning: {warning}");
        return 0;
    }

    public static int Rollback(Args a, TextWriter o)
    {
        string journal = a.Req("journal"), outDir = a.Req("out");
        a.EnsureAllUsed();
        Kedit.IO.AtomicOutput.CheckDirectoryTarget(outDir, Kedit.IO.ModelDirectory.IsEditOutput, "a kedit edit output");
        EditJournal.Rollback(journal, outDir);
        o.WriteLine($"restored the original model into {outDir}");
        return 0;
    }

    public static int Demo(Args a, TextWriter o, TextWriter err)
    {
        bool quick = a.Flag("quick");
        string model = a.Opt("model") ?? DefaultModel();
        int edits = a.Int("edits", quick ? 60 : 200);
        string outDir = a.Opt("out") ?? "kedit-demo";
        a.EnsureAllUsed();
        if (edits < 1) throw new UsageException("demo: --edits must be at least 1");
        DemoRunner.Run(new DemoOptions(model, edits, quick, outDir), o, err);
        return 0;
    }

    /// <summary>The shipped default model: models/factworld of the checkout this kedit was built from.</summary>
    static string DefaultModel()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                string m = Path.Combine(d.FullName, "models", "factworld");
                if (File.Exists(Path.Combine(m, "config.json"))) return m;
            }
        throw new KeditException("the default model models/factworld was not found; give --model DIR");
    }

    public static int Eval(Args a, TextWriter o, TextWriter err)
    {
        string reqPath = a.Req("requests"), outPath = a.Req("out"), modelDir = a.ModelDir();
        string? original = a.Opt("original"), corpus = a.Opt("corpus");
        int every = a.Int("every", 0);
        int offset = a.Int("offset", 0);
        int? limit = a.Has("limit") ? a.Int("limit", 0) : null;
        string? snippets = a.Opt("snippets");
        bool ort = a.Opt("device") is "ort" or "ort-cuda";
        Kedit.IO.AtomicOutput.CheckFileTarget(outPath);
        using var model = ort ? Kedit.Models.Transformer.Load(modelDir) : Cli.LoadModel(a);
        a.EnsureAllUsed();
        var requests = RequestLoader.LoadForCommand(reqPath, offset, limit, err);
        RequestLengths.Check(requests, model, reqPath);
        // An edit output's edited layers are bound graph inputs, so a replayed curve (--every) is scored on the replayed weights.
        var bound = File.Exists(Path.Combine(modelDir, EditJournal.FileName)) ? EditJournal.Read(modelDir).Layers : [];
        using var onOrt = ort ? Kedit.Backends.Ort.OrtForward.Attach(model, bound, cuda: a.Opt("device") == "ort-cuda") : null;
        var report = Evaluator.Run(model, modelDir, requests, original, corpus, every, err, snippets);
        if (ort) report["device"] = a.Opt("device");
        Kedit.IO.AtomicOutput.WriteAllText(outPath, report.ToJsonString(JsonOut));
        o.WriteLine(Evaluator.Summary(report));
        o.WriteLine($"wrote {outPath}");
        return 0;
    }
}
