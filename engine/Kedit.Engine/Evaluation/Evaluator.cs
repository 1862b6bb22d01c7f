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
    public static JsonObject Run(Transformer model, string modelDir, IReadOnlyList<EditRequest> requests, string? originalDir, string? corpus, int every, TextWriter log,
        string? snippetsDir = null)
    {
        var references = snippetsDir == null ? null : ReferenceScore.Load(snippetsDir);
        var report = new JsonObject { ["model"] = Path.GetFullPath(modelDir), ["records"] = requests.Count };
        var journal = File.Exists(Path.Combine(modelDir, EditJournal.FileName)) ? EditJournal.Read(modelDir) : null;
        var layers = journal?.Layers ?? Array.Empty<int>();
        foreach (int l in layers)
            if (l >= model.Config.Layers) throw new KeditException($"{journal!.Path}: field 'layers' names layer {l}; the model has {model.Config.Layers}");
        var docs = corpus == null ? null : TextCorpus.Documents(corpus, model.Tokenizer, model.Config.VocabSize).ToList();

        using var original = originalDir != null ? Transformer.Load(originalDir, model.Backend) : null;
        report["scores"] = Scores(model, requests, docs, original, references: references);
        report["matrices"] = MatrixReport(model, layers);
        if (journal?.Regime is { } regime)
        {
            report["regime"] = EditRegime.ToJson(regime);
            if (journal.Warning is string warning) report["warning"] = warning;
        }
        if (original != null)
            report["original"] = new JsonObject { ["scores"] = Scores(original, requests, docs, null, references: references), ["matrices"] = MatrixReport(original, layers) };
        if (every > 0)
        {
            if (journal == null) throw new KeditException($"{modelDir}: --every needs an edit output with a journal (kedit edit --sequential)");
            report["curve"] = Replay(model, modelDir, journal, requests, docs, every, log);
        }
        return report;
    }

    /// <summary>
    /// Both metric families: ROME/MEMIT's (counterfact or zsre, by the records' format) and EasyEdit's token-level one
    /// (locality against <paramref name="original"/>, when given).
    /// </summary>
    static JsonObject Scores(Transformer model, IReadOnlyList<EditRequest> requests, List<int[]>? docs, Transformer? original, bool allFamilies = true, ReferenceScore? references = null)
    {
        var o = new JsonObject();
        bool zsre = requests.All(r => r.Format == RequestFormat.ZsreMend);
        if (zsre)
        {
            var z = Metrics.Zsre(model, requests);
            o["zsre"] = new JsonObject { ["records"] = z.Records, ["efficacy"] = z.Efficacy, ["generalization"] = z.Generalization, ["specificity"] = z.Specificity };
        }
        else if (requests.Any(r => r.TargetTrue != null && r.TargetTrue != EditRequest.EndOfTextTarget))
        {
            var c = Metrics.CounterFact(model, requests);
            o["counterfact"] = new JsonObject
            {
                ["records"] = c.Records, ["efficacy"] = Num(c.Efficacy), ["efficacy_magnitude"] = Num(c.EfficacyMagnitude),
                ["efficacy_top1_accuracy"] = Num(c.EfficacyAccuracy),
                ["paraphrase"] = Num(c.Paraphrase), ["paraphrase_magnitude"] = Num(c.ParaphraseMagnitude),
                ["neighborhood"] = Num(c.Neighborhood), ["neighborhood_magnitude"] = Num(c.NeighborhoodMagnitude), ["score"] = Num(c.Score),
            };
            if (allFamilies && requests.Any(r => r.GenerationPrompts.Count > 0))
            {
                var (entropy, reference) = Metrics.Generation(model, requests, references);
                o["counterfact"]!["generation_entropy"] = Num(entropy);
                if (references != null) o["counterfact"]!["reference_score"] = Num(reference);
            }
        }
        if (allFamilies && requests.Count > 0)
        {
            var e = Metrics.EasyEdit(model, requests, original);
            o["easyedit"] = new JsonObject
            {
                ["records"] = e.Records, ["rewrite_acc"] = Num(e.RewriteAccuracy), ["rephrase_acc"] = Num(e.RephraseAccuracy),
                ["locality"] = Num(e.Locality), ["portability"] = Num(e.Portability),
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
            return (JsonNode)new JsonObject { ["layer"] = l, ["name"] = m.Name, ["l1_mean_abs"] = Num(m.L1MeanAbs), ["sigma_max"] = Num(m.SigmaMax), ["sigma_min"] = Num(m.SigmaMin), ["condition_number"] = Num(m.ConditionNumber) };
        }).ToArray());

    /// <summary>
    /// Rebuilds the edit sequence from W0 using the journal's per-step factors (MEMIT/ROME) or keys
    /// and residuals (D4S, which needs the run's statistics), applying PRUNE at every evaluation point.
    /// </summary>
    static JsonArray Replay(Transformer model, string dir, EditJournal.Info journal, IReadOnlyList<EditRequest> requests, List<int[]>? docs, int every, TextWriter log)
    {
        string method = journal.Method;
        var layers = journal.Layers.ToList();
        string origPath = Path.Combine(dir, "original.safetensors");
        using (var originals = SafetensorsFile.Open(origPath))
            foreach (int l in layers)
            {
                var w = model.Weights.Layers[l].MlpOut;
                string name = model.Config.DownProjName(l);
                long d = model.Config.Hidden, f = model.Config.Intermediate;
                EditJournal.CheckShape(origPath, originals.GetInfo(name), w.InputMajor ? new[] { f, d } : new[] { d, f });
                originals.ReadFloat32(name, w.Weight);
                if (!w.Weight.All(float.IsFinite)) throw new KeditException($"{origPath}: tensor \"{name}\" holds a non-finite value; it cannot be the original model's weight");
                w.MarkChanged();
            }
        Covariance? stats = null;
        if (method == "d4s")
        {
            string? statsPath = journal.Stats;
            if (statsPath == null || !File.Exists(statsPath)) throw new KeditException($"{dir}: replaying D4S needs the run's statistics ({statsPath ?? "not recorded"})");
            stats = Covariance.Load(statsPath, layers, model.Config.Intermediate);
        }
        var ctx = new EditContext(model, layers, stats, journal.Lambda, new ZSettings(1, 0, 0, 0, 0));
        var restraint = journal.Prune == null ? null : new PerturbationRestraint(ctx, Prune.ParseMode(journal.Prune));
        var d4s = method == "d4s" ? layers.ToDictionary(l => l, l => D4sState.Rebuilding(() => ctx.LambdaC(l), ctx.Layer(l).F, ctx.Layer(l).D)) : null;
        bool restore = journal.RestoreBetweenEdits;
        string stepsPath = Path.Combine(dir, "steps.safetensors");
        using var steps = SafetensorsFile.Open(stepsPath);
        var curve = new JsonArray();
        int edits = 0, nextPoint = every;
        var allKeys = layers.ToDictionary(l => l, _ => new List<MatrixD>());
        var allRes = layers.ToDictionary(l => l, _ => new List<MatrixD>());
        for (int t = 0; t < journal.Steps.Count; t++)
        {
            // PRUNE in the loop: the step was computed on, and added to, the restrained weights (EditSession.Apply).
            if (journal.PruneInLoop && t > 0) restraint!.Commit(restraint.Materialise());
            int L = layers.Count;
            for (int i = 0; i < L; i++)
            {
                int l = layers[i];
                string p = $"step{t}.L{l}";
                var layer = ctx.Layer(l);
                var x = Mat(steps, stepsPath, $"{p}.x", layer.D); var y = Mat(steps, stepsPath, $"{p}.y", layer.F, x.Cols);
                if (d4s != null)
                {
                    var keys = Mat(steps, stepsPath, $"{p}.keys", layer.F); var res = Mat(steps, stepsPath, $"{p}.residual", layer.D, keys.Cols);
                    allKeys[l].Add(keys); allRes[l].Add(res);
                    var r = res.Clone(); r.Scale(L - i);
                    d4s[l].Add(keys, r);
                    var delta = Finite(d4s[l].Delta(L - i), stepsPath, p);
                    if (restore) layer.SetDelta(delta); else layer.AddDelta(delta);
                    restraint?.SetFactors(l, MatrixD.ConcatColumns(allRes[l], layer.D), d4s[l].SolveM(MatrixD.ConcatColumns(allKeys[l], layer.F)));
                }
                else
                {
                    layer.AddDelta(Finite(MatrixD.Multiply(x, y, false, true), stepsPath, p));
                    restraint?.Add(l, x, y);
                }
            }
            edits += journal.Steps[t];
            if (edits >= nextPoint || t == journal.Steps.Count - 1)
            {
                var restrainedNow = restraint?.Materialise();
                var point = new JsonObject { ["edits"] = edits };
                var scores = Scores(model, requests.Take(edits).ToList(), docs, null, allFamilies: false); // the curve: the cheap metrics at every point
                foreach (var kv in scores) point[kv.Key] = kv.Value?.DeepClone();
                point["matrices"] = MatrixReport(model, layers);
                if (journal.SigmaRatios is { } ratios)
                    point["regime"] = EditRegime.ToJson(PrefixRegime(ctx, ratios, t + 1, restrainedNow));
                curve.Add(point);
                log.WriteLine($"eval: {edits} edits done");
                restraint?.Unmaterialise();
                while (nextPoint <= edits) nextPoint += every;
            }
        }
        return curve;
    }

    /// <summary>The regime after the first <paramref name="steps"/> steps: single-edit sizes from the journal, the accumulated σ₁ from the weights (or PRUNE's SVD).</summary>
    static List<LayerRegime> PrefixRegime(EditContext ctx, IReadOnlyList<double[]> ratios, int steps, IReadOnlyDictionary<int, PruneResult>? restrained)
    {
        MatrixD? scratch = null;
        return ctx.Layers.Select((layer, i) =>
        {
            int l = layer.Layer;
            double acc = restrained?[l] is { } p ? (p.SingularValues.Length > 0 ? p.SingularValues[0] : 0) : layer.CurrentDeltaNorm(ref scratch);
            return EditRegime.Of(l, ctx.SigmaMaxOriginal(l), ratios.Take(steps).Select(r => r[i]), acc, restrained?[l].RestrainedCount);
        }).ToList();
    }

    /// <summary>A step's change, refused when finite factors multiply out beyond what float32 weights hold (a corrupted steps file).</summary>
    static MatrixD Finite(MatrixD delta, string file, string step) =>
        delta.Data.All(v => Math.Abs(v) <= float.MaxValue) ? delta
            : throw new KeditException($"{file}: the tensors of {step} change the weights beyond float32's range; the file is not what the edit wrote");

    /// <summary>A step tensor of <paramref name="rows"/> rows (and <paramref name="cols"/> columns when given), checked before it is read, finite.</summary>
    static MatrixD Mat(SafetensorsFile f, string file, string name, int rows, int? cols = null)
    {
        if (!f.TryGetInfo(name, out var info)) throw new KeditException($"{file}: tensor \"{name}\" is missing (the journal lists this step)");
        if (info.Shape.Length != 2 || info.Shape[0] != rows || (cols is int c ? info.Shape[1] != c : info.Shape[1] < 1))
            throw new KeditException($"{file}: tensor \"{name}\" has shape [{string.Join(",", info.Shape)}]; expected [{rows},{(cols?.ToString() ?? "k")}]");
        var data = f.ReadFloat64(name);
        if (!data.All(double.IsFinite)) throw new KeditException($"{file}: tensor \"{name}\" holds a non-finite value");
        return new MatrixD(rows, (int)info.Shape[1], data);
    }

    public static string Summary(JsonObject report)
    {
        var lines = new List<string>();
        void Add(string label, JsonNode? scores)
        {
            if (scores?["counterfact"] is JsonObject c)
                lines.Add($"{label}: efficacy {F(c["efficacy"])}  paraphrase {F(c["paraphrase"])}  neighborhood {F(c["neighborhood"])}  score {F(c["score"])}" +
                          (c["generation_entropy"] is JsonNode ge ? $"  generation entropy {ge.GetValue<double>():F2}" : "") +
                          (c["reference_score"] is JsonNode rs ? $"  reference score {rs.GetValue<double>():F3}" : ""));
            if (scores?["zsre"] is JsonObject z)
                lines.Add($"{label}: zsRE efficacy {F(z["efficacy"])}  generalization {F(z["generalization"])}  specificity {F(z["specificity"])}");
            if (scores?["easyedit"] is JsonObject e)
                lines.Add($"{label}: EasyEdit rewrite_acc {F(e["rewrite_acc"])}  rephrase_acc {F(e["rephrase_acc"])}  locality {F(e["locality"])}  portability {F(e["portability"])}");
            if (scores?["perplexity"] is JsonNode p) lines.Add($"{label}: perplexity {p.GetValue<double>():F3}");
        }
        Add("edited  ", report["scores"]);
        Add("original", report["original"]?["scores"]);
        foreach (var m in report["matrices"]!.AsArray())
            lines.Add($"layer {m!["layer"]}: mean |w| {G(m["l1_mean_abs"])}, condition number {G(m["condition_number"])}");
        if (report["regime"] is JsonArray regime) lines.AddRange(EditRegime.FromJson(regime).Select(EditRegime.Describe));
        if (report["warning"] is JsonNode warning) lines.Add($"warning: {warning.GetValue<string>()}");
        return string.Join(Environment.NewLine, lines);
    }

    static string F(JsonNode? n) => n == null ? "n/a" : $"{n.GetValue<double>():F1}";
    static string G(JsonNode? n) => n == null ? "n/a" : $"{n.GetValue<double>():G4}";
}
