using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Evaluation;

/// <summary>
/// The `eval` job: scores of a model on requests, statistics of its edited matrices, held-out
/// perplexity, the same for the original model when given, and — for an edit output with a
/// journal — the whole curve after every k edits, replayed from the journal's step factors.
/// </summary>
public static class Evaluator
{
    public static JsonObject Run(Transformer model, string modelDir, IReadOnlyList<EditRequest> requests, string? originalDir, string? corpus, int every, TextWriter log)
    {
        var report = new JsonObject { ["model"] = Path.GetFullPath(modelDir), ["records"] = requests.Count };
        JsonObject? journal = File.Exists(Path.Combine(modelDir, EditJournal.FileName)) ? EditJournal.Read(modelDir) : null;
        var layers = journal?["layers"]?.AsArray().Select(n => n!.GetValue<int>()).ToList() ?? new List<int>();
        var docs = corpus == null ? null : TextCorpus.Documents(corpus, model.Tokenizer).ToList();

        report["scores"] = Scores(model, requests, docs);
        report["matrices"] = MatrixReport(model, layers);
        if (journal?["regime"] is JsonArray regime)
        {
            report["regime"] = regime.DeepClone();
            if (journal["warning"] is JsonNode warning) report["warning"] = warning.DeepClone();
        }
        if (originalDir != null)
        {
            using var original = Transformer.Load(originalDir, model.Backend);
            report["original"] = new JsonObject { ["scores"] = Scores(original, requests, docs), ["matrices"] = MatrixReport(original, layers) };
        }
        if (every > 0)
        {
            if (journal == null) throw new KeditException($"{modelDir}: --every needs an edit output with a journal (kedit edit --sequential)");
            report["curve"] = Replay(model, modelDir, journal, requests, docs, every, log);
        }
        return report;
    }

    static JsonObject Scores(Transformer model, IReadOnlyList<EditRequest> requests, List<int[]>? docs)
    {
        var o = new JsonObject();
        bool zsre = requests.All(r => r.Format == RequestFormat.ZsreMend);
        if (zsre)
        {
            var z = Metrics.Zsre(model, requests);
            o["zsre"] = new JsonObject { ["records"] = z.Records, ["efficacy"] = z.Efficacy, ["generalization"] = z.Generalization, ["specificity"] = z.Specificity };
        }
        else if (requests.Count > 0)
        {
            var c = Metrics.CounterFact(model, requests);
            o["counterfact"] = new JsonObject
            {
                ["records"] = c.Records, ["efficacy"] = Num(c.Efficacy), ["efficacy_magnitude"] = Num(c.EfficacyMagnitude),
                ["efficacy_top1_accuracy"] = Num(c.EfficacyAccuracy),
                ["paraphrase"] = Num(c.Paraphrase), ["paraphrase_magnitude"] = Num(c.ParaphraseMagnitude),
                ["neighborhood"] = Num(c.Neighborhood), ["neighborhood_magnitude"] = Num(c.NeighborhoodMagnitude), ["score"] = Num(c.Score),
            };
        }
        if (docs != null) o["perplexity"] = Metrics.Perplexity(model, docs);
        return o;
    }

    static JsonNode? Num(double v) => double.IsFinite(v) ? v : null;

    static JsonArray MatrixReport(Transformer model, IReadOnlyList<int> layers) =>
        new(layers.Select(l =>
        {
            var m = Metrics.Matrix(new EditedLayer(model, l));
            return (JsonNode)new JsonObject { ["layer"] = l, ["name"] = m.Name, ["l1_mean_abs"] = m.L1MeanAbs, ["sigma_max"] = m.SigmaMax, ["sigma_min"] = m.SigmaMin, ["condition_number"] = m.ConditionNumber };
        }).ToArray());

    /// <summary>
    /// Rebuilds the edit sequence from W0 using the journal's per-step factors (MEMIT/ROME) or keys
    /// and residuals (D4S, which needs the run's statistics), applying PRUNE at every evaluation point.
    /// </summary>
    static JsonArray Replay(Transformer model, string dir, JsonObject journal, IReadOnlyList<EditRequest> requests, List<int[]>? docs, int every, TextWriter log)
    {
        string method = journal["method"]!.GetValue<string>();
        var layers = journal["layers"]!.AsArray().Select(n => n!.GetValue<int>()).ToList();
        string? pruneName = journal["prune"]?.GetValue<string>();
        using (var originals = SafetensorsFile.Open(Path.Combine(dir, "original.safetensors")))
            foreach (int l in layers)
            {
                var w = model.Weights.Layers[l].MlpOut;
                originals.ReadFloat32(model.Config.DownProjName(l), w.Weight);
                w.MarkChanged();
            }
        Covariance? stats = null;
        double lambda = journal["lambda"]?.GetValue<double>() ?? 0;
        if (method == "d4s")
        {
            string? statsPath = journal["stats"]?.GetValue<string>();
            if (statsPath == null || !File.Exists(statsPath)) throw new KeditException($"{dir}: replaying D4S needs the run's statistics ({statsPath ?? "not recorded"})");
            stats = Covariance.Load(statsPath, layers);
        }
        var ctx = new EditContext(model, layers, stats, lambda, new ZSettings(1, 0, 0, 0, 0));
        var restraint = pruneName == null ? null : new PerturbationRestraint(ctx, Prune.ParseMode(pruneName));
        var d4s = method == "d4s" ? layers.ToDictionary(l => l, l => new D4sState(ctx.LambdaC(l), ctx.Layer(l).D)) : null;
        bool restore = journal["hparams"]?["restore_between_edits"]?.GetValue<bool>() ?? true;
        var stepsJson = journal["steps"]!.AsArray();
        using var steps = SafetensorsFile.Open(Path.Combine(dir, "steps.safetensors"));
        var curve = new JsonArray();
        int edits = 0, nextPoint = every;
        var allKeys = layers.ToDictionary(l => l, _ => new List<MatrixD>());
        var allRes = layers.ToDictionary(l => l, _ => new List<MatrixD>());
        for (int t = 0; t < stepsJson.Count; t++)
        {
            int L = layers.Count;
            for (int i = 0; i < L; i++)
            {
                int l = layers[i];
                string p = $"step{t}.L{l}";
                var x = Mat(steps, $"{p}.x"); var y = Mat(steps, $"{p}.y");
                var layer = ctx.Layer(l);
                if (d4s != null)
                {
                    var keys = Mat(steps, $"{p}.keys"); var res = Mat(steps, $"{p}.residual");
                    allKeys[l].Add(keys); allRes[l].Add(res);
                    var r = res.Clone(); r.Scale(L - i);
                    d4s[l].Add(keys, r);
                    var delta = d4s[l].Delta(L - i);
                    if (restore) layer.SetDelta(delta); else layer.AddDelta(delta);
                    restraint?.SetFactors(l, MatrixD.ConcatColumns(allRes[l], layer.D), d4s[l].SolveM(MatrixD.ConcatColumns(allKeys[l], layer.F)));
                }
                else
                {
                    layer.AddDelta(MatrixD.Multiply(x, y, false, true));
                    restraint?.Add(l, x, y);
                }
            }
            edits += stepsJson[t]!["requests"]!.AsArray().Count;
            if (edits >= nextPoint || t == stepsJson.Count - 1)
            {
                var restrainedNow = restraint?.Materialise();
                var point = new JsonObject { ["edits"] = edits };
                var scores = Scores(model, requests.Take(edits).ToList(), docs);
                foreach (var kv in scores) point[kv.Key] = kv.Value?.DeepClone();
                point["matrices"] = MatrixReport(model, layers);
                if (stepsJson[0]!["sigma_ratio"] is JsonArray)
                    point["regime"] = EditRegime.ToJson(PrefixRegime(ctx, stepsJson, t + 1, restrainedNow));
                curve.Add(point);
                log.WriteLine($"eval: {edits} edits done");
                restraint?.Unmaterialise();
                while (nextPoint <= edits) nextPoint += every;
            }
        }
        return curve;
    }

    /// <summary>The regime after the first <paramref name="steps"/> steps: single-edit sizes from the journal, the accumulated σ₁ from the weights (or PRUNE's SVD).</summary>
    static List<LayerRegime> PrefixRegime(EditContext ctx, JsonArray stepsJson, int steps, IReadOnlyDictionary<int, PruneResult>? restrained) =>
        ctx.Layers.Select((layer, i) =>
        {
            int l = layer.Layer;
            double acc = restrained?[l] is { } p ? (p.SingularValues.Length > 0 ? p.SingularValues[0] : 0) : SpectralNorm.Largest(layer.CurrentDelta()).Value;
            return EditRegime.Of(l, ctx.SigmaMaxOriginal(l), stepsJson.Take(steps).Select(s => s!["sigma_ratio"]![i]!.GetValue<double>()), acc, restrained?[l].RestrainedCount);
        }).ToList();

    static MatrixD Mat(SafetensorsFile f, string name)
    {
        var info = f.GetInfo(name);
        return new MatrixD((int)info.Shape[0], (int)info.Shape[1], f.ReadFloat64(name));
    }

    public static string Summary(JsonObject report)
    {
        var lines = new List<string>();
        void Add(string label, JsonNode? scores)
        {
            if (scores?["counterfact"] is JsonObject c)
                lines.Add($"{label}: efficacy {F(c["efficacy"])}  paraphrase {F(c["paraphrase"])}  neighborhood {F(c["neighborhood"])}  score {F(c["score"])}");
            if (scores?["zsre"] is JsonObject z)
                lines.Add($"{label}: zsRE efficacy {F(z["efficacy"])}  generalization {F(z["generalization"])}  specificity {F(z["specificity"])}");
            if (scores?["perplexity"] is JsonNode p) lines.Add($"{label}: perplexity {p.GetValue<double>():F3}");
        }
        Add("edited  ", report["scores"]);
        Add("original", report["original"]?["scores"]);
        foreach (var m in report["matrices"]!.AsArray())
            lines.Add($"layer {m!["layer"]}: mean |w| {m["l1_mean_abs"]!.GetValue<double>():G4}, condition number {m["condition_number"]!.GetValue<double>():G4}");
        if (report["regime"] is JsonArray regime) lines.AddRange(EditRegime.FromJson(regime).Select(EditRegime.Describe));
        if (report["warning"] is JsonNode warning) lines.Add($"warning: {warning.GetValue<string>()}");
        return string.Join(Environment.NewLine, lines);
    }

    static string F(JsonNode? n) => n == null ? "n/a" : $"{n.GetValue<double>():F1}";
}
