using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
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
    const string ReportWhat = "a demo report folder";
    static bool IsReport(string dir) => File.Exists(Path.Combine(dir, "report.json"));

    public static JsonObject Run(DemoOptions o, TextWriter stdout, TextWriter log)
    {
        var total = Stopwatch.StartNew();
        AtomicOutput.CheckDirectoryTarget(o.OutDir, IsReport, ReportWhat);
        string F(string rel) => Path.Combine(o.ModelDir, rel);
        foreach (var need in new[] { "hparams.json", "data/counterfact.json", "data/train.txt", "data/heldout.txt" })
            if (!File.Exists(F(need))) throw new KeditException($"{o.ModelDir}: the demo needs {need} in the model directory");
        using var model = Transformer.Load(o.ModelDir);
        string hjson = File.ReadAllText(F("hparams.json"));
        var h = HParams.Parse(hjson, EditMethod.Memit, F("hparams.json")).Validate(model.Config);
        var all = RequestLoader.Load(F("data/counterfact.json"));
        // The collateral probe: the last records' facts, never edited (the edits come from the front).
        int probe = Math.Min(o.Quick ? 100 : 200, all.Count / 2);
        var untouched = all.Skip(all.Count - probe).ToList();
        var requests = all.Take(Math.Min(o.Edits, all.Count - probe)).ToList();
        if (requests.Count < o.Edits) log.WriteLine($"demo: only {requests.Count} requests available beside the {probe} facts kept for the collateral probe");
        // Statistics quality matters more than their cost on this model (600 lines instead of 3,000 made
        // the edits ~2× larger in norm and tripled the perplexity damage), so --quick uses the same.
        int samples = h.Mom2NSamples ?? 3000;
        var stats = KeyStatistics.ComputeOrLoad(model, o.ModelDir, h.Layers, F("data/train.txt"), samples, log, products: Covariance.ProductsFor(h.Mom2Dtype));
        var heldout = TextCorpus.Documents(F("data/heldout.txt"), model.Tokenizer).Take(o.Quick ? 40 : 100).ToList();
        var templates = h.ContextTemplates ?? TemplateGenerator.Memit(model, 0);
        int every = Math.Max(1, requests.Count / (o.Quick ? 3 : 5));
        string name = Path.GetFileName(Path.GetFullPath(o.ModelDir));
        // prune.in_loop (non-reference, spec §13.4) changes MEMIT+PRUNE's run; D4S computes every target on W0, so its run is the same either way.
        string pruneMode = Prune.ModeName(h.Prune?.Mode ?? PruneMode.Log) + (h.Prune?.InLoop == true ? " in the loop" : "");

        stdout.WriteLine($"kedit demo: {requests.Count} sequential counterfactual edits on {name} ({model.Config.Layers} layers, {model.Config.Hidden} wide), " +
                         $"layers {string.Join(",", h.Layers)}, fact_token {HParams.FactTokenName(h.FactToken)}, PRUNE {pruneMode}, evaluated every {every} edits; {untouched.Count} facts never edited as the collateral probe");
        var baseline = SequentialExperiment.Baseline(model, h.Layers, requests, heldout, untouched);
        var tok = model.RequireTokenizer();
        string Gen(string prompt) => tok.Decode(tok.Encode(prompt).Concat(Generator.Generate(model, tok.Encode(prompt), new GenerationOptions { MaxNewTokens = 8 })).ToArray(), skipSpecialTokens: true);
        var showcase = requests.Take(2).ToList();
        var generations = new List<(string, string)>();
        foreach (var r in showcase) generations.Add(($"before: \"{r.Sentence}\" (target_true {r.TargetTrue}, target_new {r.TargetNew})", Gen(r.Sentence)));

        var results = new Dictionary<string, List<ExperimentPoint>>();
        foreach (var v in ExperimentVariant.PaperSetFor(h))
        {
            var bar = new ProgressBar(log, $"demo {v.Name}", requests.Count);
            Action<EditSession>? atEnd = v == ExperimentVariant.D4s
                ? _ => { foreach (var r in showcase) generations.Add(($"after {requests.Count} D4S edits: \"{r.Sentence}\"", Gen(r.Sentence))); }
                : null;
            results[v.Name] = SequentialExperiment.Run(model, hjson, stats, templates, requests, v, every, heldout, untouched,
                p => bar.Report(p.Edits, $"efficacy {p.Efficacy:F0} ppl {p.Perplexity:F2}"), atEnd);
            bar.Done($"{requests.Count} edits, {results[v.Name][^1].EditSeconds * 1000:F0} ms/edit");
        }
        var claims = PaperClaims.Evaluate(baseline, results);
        var warnings = PruneWarnings(results);
        var (header, rows) = ComparisonTable(baseline, results);
        var (regimeHeader, regimeRows) = RegimeTable(results);
        WriteComparison(stdout, baseline, results);
        foreach (var (label, text) in generations) stdout.WriteLine($"{label}\n    → {text}");

        IReadOnlyList<HtmlReport.Series> S(Func<ExperimentPoint, double> y) =>
            results.Select(kv => new HtmlReport.Series(kv.Key, new[] { baseline }.Concat(kv.Value).Select(p => ((double)p.Edits, y(p))).ToList())).ToList();
        var charts = new List<HtmlReport.Chart>
        {
            new("Efficacy (rewrite prompts)", "efficacy %", S(p => p.Efficacy), HtmlReport.Axis.Percent),
            new("Paraphrase generalisation", "paraphrase %", S(p => p.Paraphrase), HtmlReport.Axis.Percent),
            new("Neighbourhood specificity", "neighbourhood %", S(p => p.Neighborhood), HtmlReport.Axis.Percent),
            new("Facts never edited: accuracy (collateral damage)", "accuracy %", S(p => p.UntouchedFacts ?? double.NaN), HtmlReport.Axis.Percent),
            new("Held-out perplexity", "perplexity", S(p => p.Perplexity ?? double.NaN), HtmlReport.Axis.Log),
            new("Edited matrices: mean |w| (average over layers)", "mean |w|", S(p => p.L1MeanAbs.Average())),
            new("Edited matrices: condition number (max over layers)", "σmax/σmin", S(p => p.ConditionNumber.Max()), HtmlReport.Axis.Log),
            new("Accumulated ΔW before PRUNE: σ₁ / σ_max(W0) (max over layers; a PRUNE variant lies on its base method)", "σ₁(ΔW)/σmax(W0)", results.Select(kv => new HtmlReport.Series(kv.Key,
                kv.Value.Select(p => ((double)p.Edits, p.Regime.Max(r => r.Accumulated))).ToList())).ToList(), HtmlReport.Axis.Log),
        };
        string intro = $"{requests.Count} counterfactual edits applied one at a time to the model {name} (edited layers {string.Join(",", h.Layers)}, fact_token {HParams.FactTokenName(h.FactToken)}, PRUNE restraint {pruneMode}); " +
                       $"metrics on the requests edited so far, every {every} edits. Efficacy, paraphrase and neighbourhood are CounterFact scores (probability comparisons, %); " +
                       $"'facts never edited' is the top-1 accuracy on {untouched.Count} facts outside the edit set; the norm and condition number are those of the edited MLP down projections.";
        string html = HtmlReport.Render("kedit demo: sequential knowledge editing", intro, claims, warnings, charts,
            new[] { new HtmlReport.Table("Comparison", header, rows), new HtmlReport.Table("Regime per edited layer (σ₁ over σ_max(W0))", regimeHeader, regimeRows) }, generations);

        var report = new JsonObject
        {
            ["model"] = name, ["edits"] = requests.Count, ["every"] = every, ["layers"] = new JsonArray(h.Layers.Select(l => (JsonNode)l).ToArray()),
            ["fact_token"] = HParams.FactTokenName(h.FactToken), ["prune_mode"] = pruneMode, ["untouched_facts"] = untouched.Count,
            ["baseline"] = PointJson(baseline),
            ["variants"] = new JsonObject(results.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)new JsonArray(kv.Value.Select(p => (JsonNode)PointJson(p)).ToArray())))),
            ["claims"] = new JsonArray(claims.Select(c => (JsonNode)new JsonObject { ["claim"] = c.Claim, ["supported"] = c.Supported, ["detail"] = c.Detail }).ToArray()),
            ["warnings"] = new JsonArray(warnings.Select(w => (JsonNode)w).ToArray()),
            ["generations"] = new JsonArray(generations.Select(s => (JsonNode)new JsonObject { ["label"] = s.Item1, ["text"] = s.Item2 }).ToArray()),
            ["seconds"] = total.Elapsed.TotalSeconds,
        };
        string staging = AtomicOutput.CreateStaging(o.OutDir);
        try
        {
            File.WriteAllText(Path.Combine(staging, "report.html"), html);
            File.WriteAllText(Path.Combine(staging, "report.json"), report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            AtomicOutput.CommitDirectory(staging, o.OutDir, IsReport, ReportWhat);
        }
        catch { AtomicOutput.Abandon(staging); throw; }
        stdout.WriteLine($"\nreport: {Path.Combine(o.OutDir, "report.html")} (and report.json), {total.Elapsed.TotalSeconds:F0}s in all");
        return report;
    }

    /// <summary>
    /// The comparison as text: the table, the regime per edited layer, PRUNE warnings and the claims tested
    /// (the demo's and the stories260k control's output).
    /// </summary>
    public static void WriteComparison(TextWriter w, ExperimentPoint baseline, IReadOnlyDictionary<string, List<ExperimentPoint>> results)
    {
        var (header, rows) = ComparisonTable(baseline, results);
        var (regimeHeader, regimeRows) = RegimeTable(results);
        w.WriteLine();
        WriteTable(w, header, rows);
        w.WriteLine();
        w.WriteLine("regime per edited layer (σ₁ over σ_max(W0) of the original weight; PRUNE acts on singular values at or above 1):");
        WriteTable(w, regimeHeader, regimeRows);
        foreach (var warning in PruneWarnings(results)) w.WriteLine($"warning: {warning}");
        w.WriteLine();
        w.WriteLine("claims tested:");
        foreach (var c in PaperClaims.Evaluate(baseline, results)) w.WriteLine($"  [{(c.Supported ? "yes" : "no")}] {c.Claim}: {c.Detail}");
        w.WriteLine();
    }

    /// <summary>"variant: PRUNE will remove the edits themselves: …" for each PRUNE variant whose single edits reach σ_max(W0).</summary>
    public static List<string> PruneWarnings(IReadOnlyDictionary<string, List<ExperimentPoint>> results) =>
        results.Where(kv => kv.Key.EndsWith("+prune", StringComparison.Ordinal))
            .Select(kv => EditRegime.PruneWarning(kv.Value[^1].Regime, kv.Value[^1].Prune) is string w ? $"{kv.Key}: {w}" : null).OfType<string>().ToList();

    /// <summary>The comparison table: the original model and each variant's last point.</summary>
    public static (string[] Header, List<IReadOnlyList<string>> Rows) ComparisonTable(ExperimentPoint baseline, IReadOnlyDictionary<string, List<ExperimentPoint>> results)
    {
        var header = new[] { "variant", "edits", "efficacy", "paraphrase", "neighbourhood", "facts never edited", "perplexity", "mean |w|", "max condition number", "ms/edit" };
        IReadOnlyList<string> Row(ExperimentPoint p) => new[]
        {
            p.Variant, p.Edits.ToString(), p.Efficacy.ToString("F1"), p.Paraphrase.ToString("F1"), p.Neighborhood.ToString("F1"), p.UntouchedFacts?.ToString("F1") ?? "-",
            p.Perplexity?.ToString("F2") ?? "-", p.L1MeanAbs.Average().ToString("F5"), p.ConditionNumber.Max().ToString("F1"), (p.EditSeconds * 1000).ToString("F0"),
        };
        var rows = new List<IReadOnlyList<string>> { Row(baseline) };
        rows.AddRange(results.Values.Select(p => Row(p[^1])));
        return (header, rows);
    }

    /// <summary>Per variant and edited layer at the last point: norm, conditioning and the regime (see <see cref="LayerRegime"/>).</summary>
    public static (string[] Header, List<IReadOnlyList<string>> Rows) RegimeTable(IReadOnlyDictionary<string, List<ExperimentPoint>> results)
    {
        var header = new[] { "variant", "layer", "mean |w|", "condition number", "σ₁(ΔW accumulated)", "single edits: median σ₁", "single edits ≥ σmax(W0)", "PRUNE restrained" };
        var rows = new List<IReadOnlyList<string>>();
        foreach (var (variant, points) in results)
        {
            var p = points[^1];
            for (int i = 0; i < p.Regime.Count; i++)
            {
                var r = p.Regime[i];
                rows.Add(new[] { variant, r.Layer.ToString(), p.L1MeanAbs[i].ToString("F5"), p.ConditionNumber[i].ToString("F1"), $"{r.Accumulated:F2}×", $"{r.MedianSingle:F2}×",
                    $"{100 * r.FractionSingleAbove:F0}%", r.Restrained?.ToString() ?? "-" });
            }
        }
        return (header, rows);
    }

    static void WriteTable(TextWriter w, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        w.WriteLine(string.Join(" | ", header.Select((x, i) => i == 0 ? x.PadRight(12) : x)));
        foreach (var r in rows) w.WriteLine(string.Join(" | ", r.Select((x, i) => i == 0 ? x.PadRight(12) : x.PadLeft(header[i].Length))));
    }

    static JsonObject PointJson(ExperimentPoint p) => new()
    {
        ["edits"] = p.Edits, ["efficacy"] = p.Efficacy, ["paraphrase"] = Num(p.Paraphrase), ["neighborhood"] = Num(p.Neighborhood), ["perplexity"] = p.Perplexity,
        ["untouched_facts"] = p.UntouchedFacts,
        ["l1_mean_abs"] = new JsonArray(p.L1MeanAbs.Select(v => (JsonNode)v).ToArray()), ["condition_number"] = new JsonArray(p.ConditionNumber.Select(v => (JsonNode)v).ToArray()),
        ["regime"] = EditRegime.ToJson(p.Regime),
        ["seconds_per_edit"] = p.EditSeconds,
    };

    static JsonNode? Num(double v) => double.IsFinite(v) ? v : null;
}
