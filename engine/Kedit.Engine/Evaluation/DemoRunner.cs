using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Evaluation;

public sealed record DemoOptions(string ModelDir, int Edits, bool Quick, string OutDir);

/// <summary>
/// The main job: counterfactual edits in sequence on a model with plain sequential MEMIT, D4S,
/// MEMIT+PRUNE and D4S+PRUNE, evaluated every k edits, ending in a comparison table, before/after
/// generations and a self-contained report (report.html with one SVG chart per metric, report.json).
/// The model directory supplies hparams.json, data/counterfact.json, data/train.txt (statistics)
/// and data/heldout.txt (perplexity).
/// </summary>
public static class DemoRunner
{
    public static JsonObject Run(DemoOptions o, TextWriter stdout, TextWriter log)
    {
        var total = Stopwatch.StartNew();
        string F(string rel) => Path.Combine(o.ModelDir, rel);
        foreach (var need in new[] { "hparams.json", "data/counterfact.json", "data/train.txt", "data/heldout.txt" })
            if (!File.Exists(F(need))) throw new KeditException($"{o.ModelDir}: the demo needs {need} in the model directory");
        using var model = Transformer.Load(o.ModelDir);
        string hjson = File.ReadAllText(F("hparams.json"));
        var h = HParams.Parse(hjson, EditMethod.Memit, F("hparams.json")).Validate(model.Config.Layers);
        var requests = RequestLoader.Load(F("data/counterfact.json")).Take(o.Edits).ToList();
        if (requests.Count < o.Edits) log.WriteLine($"demo: only {requests.Count} requests available");
        // Statistics quality matters more than their cost on this model (600 lines instead of 3,000 made
        // the edits ~2× larger in norm and tripled the perplexity damage), so --quick uses the same.
        int samples = h.Mom2NSamples ?? 3000;
        var stats = KeyStatistics.ComputeOrLoad(model, o.ModelDir, h.Layers, F("data/train.txt"), samples, log);
        var heldout = TextCorpus.Documents(F("data/heldout.txt"), model.Tokenizer).Take(o.Quick ? 40 : 100).ToList();
        var templates = h.ContextTemplates ?? TemplateGenerator.Memit(model, 0);
        int every = Math.Max(1, requests.Count / (o.Quick ? 3 : 5));

        stdout.WriteLine($"kedit demo: {requests.Count} sequential counterfactual edits on {Path.GetFileName(Path.GetFullPath(o.ModelDir))} " +
                         $"({model.Config.Layers} layers, {model.Config.Hidden} wide), layers {string.Join(",", h.Layers)}, evaluated every {every} edits");
        var baseline = SequentialExperiment.Baseline(model, h.Layers, requests, heldout);
        var tok = model.RequireTokenizer();
        string Gen(string prompt) => tok.Decode(tok.Encode(prompt).Concat(Generator.Generate(model, tok.Encode(prompt), new GenerationOptions { MaxNewTokens = 8 })).ToArray(), skipSpecialTokens: true);
        var showcase = requests.Take(2).ToList();
        var samples_ = new List<(string, string)>();
        foreach (var r in showcase) samples_.Add(($"before: \"{r.Sentence}\" (target_true {r.TargetTrue}, target_new {r.TargetNew})", Gen(r.Sentence)));

        var results = new Dictionary<string, List<ExperimentPoint>>();
        foreach (var v in ExperimentVariant.PaperSet)
        {
            var bar = new ProgressBar(log, $"demo {v.Name}", requests.Count);
            Action<EditSession>? atEnd = v == ExperimentVariant.D4s
                ? _ => { foreach (var r in showcase) samples_.Add(($"after {requests.Count} D4S edits: \"{r.Sentence}\"", Gen(r.Sentence))); }
                : null;
            results[v.Name] = SequentialExperiment.Run(model, hjson, stats, templates, requests, v, every, heldout,
                p => bar.Report(p.Edits, $"efficacy {p.Efficacy:F0} ppl {p.Perplexity:F2}"), atEnd);
            bar.Done($"{requests.Count} edits, {results[v.Name][^1].EditSeconds * 1000:F0} ms/edit");
        }

        var header = new[] { "variant", "edits", "efficacy", "paraphrase", "neighbourhood", "perplexity", "mean |w| (L1)", "max condition number", "ms/edit" };
        var rows = new List<IReadOnlyList<string>> { Row(baseline) };
        rows.AddRange(results.Values.Select(p => Row(p[^1])));
        stdout.WriteLine();
        stdout.WriteLine(string.Join(" | ", header.Select((x, i) => i == 0 ? x.PadRight(12) : x)));
        foreach (var r in rows) stdout.WriteLine(string.Join(" | ", r.Select((x, i) => i == 0 ? x.PadRight(12) : x.PadLeft(header[i].Length))));
        stdout.WriteLine();
        foreach (var (label, text) in samples_) stdout.WriteLine($"{label}\n    → {text}");

        IReadOnlyList<HtmlReport.Series> S(Func<ExperimentPoint, double> y) =>
            results.Select(kv => new HtmlReport.Series(kv.Key, new[] { baseline }.Concat(kv.Value).Select(p => ((double)p.Edits, y(p))).ToList())).ToList();
        var charts = new List<HtmlReport.Chart>
        {
            new("Efficacy (rewrite prompts)", "efficacy %", S(p => p.Efficacy)),
            new("Paraphrase generalisation", "paraphrase %", S(p => p.Paraphrase)),
            new("Neighbourhood specificity", "neighbourhood %", S(p => p.Neighborhood)),
            new("Held-out perplexity", "perplexity", S(p => p.Perplexity ?? double.NaN), LogY: true),
            new("Edited matrices: mean |w| (L1 norm)", "mean |w|", S(p => p.L1MeanAbs.Average())),
            new("Edited matrices: condition number (max over layers)", "σmax/σmin", S(p => p.ConditionNumber.Max()), LogY: true),
        };
        string intro = $"{requests.Count} counterfactual edits applied one at a time to {o.ModelDir} (layers {string.Join(",", h.Layers)}); metrics on the requests edited so far, every {every} edits. " +
                       "Efficacy, paraphrase and neighbourhood are CounterFact scores (probability comparisons, %); the norm and condition number are those of the edited MLP down projections.";
        string html = HtmlReport.Render("kedit demo: sequential knowledge editing", intro, charts, header, rows, samples_);

        var report = new JsonObject
        {
            ["model"] = Path.GetFullPath(o.ModelDir), ["edits"] = requests.Count, ["every"] = every, ["layers"] = new JsonArray(h.Layers.Select(l => (JsonNode)l).ToArray()),
            ["baseline"] = PointJson(baseline),
            ["variants"] = new JsonObject(results.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonArray(kv.Value.Select(p => (JsonNode)PointJson(p)).ToArray())))),
            ["generations"] = new JsonArray(samples_.Select(s => (JsonNode)new JsonObject { ["label"] = s.Item1, ["text"] = s.Item2 }).ToArray()),
            ["seconds"] = total.Elapsed.TotalSeconds,
        };
        string staging = AtomicOutput.CreateStaging(o.OutDir);
        try
        {
            File.WriteAllText(Path.Combine(staging, "report.html"), html);
            File.WriteAllText(Path.Combine(staging, "report.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            AtomicOutput.CommitDirectory(staging, o.OutDir, d => File.Exists(Path.Combine(d, "report.json")), "a demo report folder");
        }
        catch { AtomicOutput.Abandon(staging); throw; }
        stdout.WriteLine($"\nreport: {Path.Combine(o.OutDir, "report.html")} (and report.json), {total.Elapsed.TotalSeconds:F0}s in all");
        return report;
    }

    static IReadOnlyList<string> Row(ExperimentPoint p) => new[]
    {
        p.Variant, p.Edits.ToString(), p.Efficacy.ToString("F1"), p.Paraphrase.ToString("F1"), p.Neighborhood.ToString("F1"),
        p.Perplexity?.ToString("F2") ?? "-", p.L1MeanAbs.Average().ToString("F5"), p.ConditionNumber.Max().ToString("F1"), (p.EditSeconds * 1000).ToString("F0"),
    };

    static JsonObject PointJson(ExperimentPoint p) => new()
    {
        ["edits"] = p.Edits, ["efficacy"] = p.Efficacy, ["paraphrase"] = Num(p.Paraphrase), ["neighborhood"] = Num(p.Neighborhood), ["perplexity"] = p.Perplexity,
        ["l1_mean_abs"] = new JsonArray(p.L1MeanAbs.Select(v => (JsonNode)v).ToArray()), ["condition_number"] = new JsonArray(p.ConditionNumber.Select(v => (JsonNode)v).ToArray()),
        ["seconds_per_edit"] = p.EditSeconds,
    };

    static JsonNode? Num(double v) => double.IsFinite(v) ? v : null;
}
