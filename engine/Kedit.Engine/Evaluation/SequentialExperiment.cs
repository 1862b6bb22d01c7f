using System.Diagnostics;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Evaluation;

/// <summary>
/// One evaluation point of a sequential run. <paramref name="UntouchedFacts"/>: % of facts never edited the model
/// still gets right (null without a probe); <paramref name="Regime"/>: per edited layer, edit sizes against σ_max(W0).
/// </summary>
public sealed record ExperimentPoint(string Variant, int Edits, double Efficacy, double Paraphrase, double Neighborhood,
    double? Perplexity, double? UntouchedFacts, double[] L1MeanAbs, double[] ConditionNumber, IReadOnlyList<LayerRegime> Regime, double EditSeconds, PruneMode? Prune = null);

/// <summary>A sequential-editing variant: method plus optional PRUNE restraint.</summary>
public sealed record ExperimentVariant(string Name, EditMethod Method, PruneMode? Prune)
{
    public static readonly ExperimentVariant Memit = new("memit", EditMethod.Memit, null);
    public static readonly ExperimentVariant D4s = new("d4s", EditMethod.D4S, null);
    public static readonly ExperimentVariant MemitPrune = new("memit+prune", EditMethod.Memit, PruneMode.Log);
    public static readonly ExperimentVariant D4sPrune = new("d4s+prune", EditMethod.D4S, PruneMode.Log);
    public static readonly ExperimentVariant[] PaperSet = { Memit, D4s, MemitPrune, D4sPrune };

    /// <summary>The paper set with PRUNE's restraint function from the hparams' <c>prune.mode</c> (log, base e, when absent).</summary>
    public static ExperimentVariant[] PaperSetFor(HParams h) =>
        PaperSet.Select(v => v.Prune == null ? v : v with { Prune = h.Prune?.Mode ?? PruneMode.Log }).ToArray();
}

/// <summary>
/// The D4S / PRUNE experiment: edits applied one at a time, and every k edits the metrics on the
/// edits made so far (efficacy, paraphrase, neighbourhood), held-out perplexity, accuracy on facts never
/// edited, the L1 norm and condition number of each edited matrix — the curves the two papers plot — and the
/// regime (edit sizes against σ_max(W0)). The model is returned to W0 at the end of each variant.
/// </summary>
public static class SequentialExperiment
{
    public static List<ExperimentPoint> Run(Transformer model, string hparamsJson, Covariance stats, ContextTemplates templates,
        IReadOnlyList<EditRequest> requests, ExperimentVariant variant, int every, IReadOnlyList<int[]>? perplexityDocs, IReadOnlyList<EditRequest>? untouched,
        Action<ExperimentPoint>? onPoint = null, Action<EditSession>? beforeRestore = null, CancellationToken ct = default)
    {
        var h = HParams.Parse(hparamsJson, variant.Method, $"hparams ({variant.Name})");
        var session = new EditSession(model, h, stats, templates, variant.Prune);
        var points = new List<ExperimentPoint>();
        var prepared = requests.Select(session.Prepare).ToList();
        double editSeconds = 0;
        try
        {
            for (int i = 0; i < prepared.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                var sw = Stopwatch.StartNew();
                session.Apply(new[] { prepared[i] }, ct);
                editSeconds += sw.Elapsed.TotalSeconds;
                int edits = i + 1;
                if (edits % every != 0 && edits != prepared.Count) continue;
                session.Materialise();
                var cf = Metrics.CounterFact(model, requests.Take(edits).ToList());
                double? ppl = perplexityDocs == null ? null : Metrics.Perplexity(model, perplexityDocs);
                double? facts = untouched == null ? null : Metrics.FactAccuracy(model, untouched);
                var mats = session.Context.Layers.Select(Metrics.Matrix).ToList();
                var p = new ExperimentPoint(variant.Name, edits, cf.Efficacy, cf.Paraphrase, cf.Neighborhood, ppl, facts,
                    mats.Select(m => m.L1MeanAbs).ToArray(), mats.Select(m => m.ConditionNumber).ToArray(), session.RegimeNow(), editSeconds / edits, variant.Prune);
                points.Add(p);
                onPoint?.Invoke(p);
                session.Unmaterialise();
            }
            if (beforeRestore != null) { session.Materialise(); beforeRestore(session); }
        }
        finally { session.RestoreOriginal(); }
        return points;
    }

    /// <summary>The unedited model's point (edits = 0) for reference lines.</summary>
    public static ExperimentPoint Baseline(Transformer model, IEnumerable<int> layers, IReadOnlyList<EditRequest> requests, IReadOnlyList<int[]>? perplexityDocs,
        IReadOnlyList<EditRequest>? untouched)
    {
        var cf = Metrics.CounterFact(model, requests);
        var mats = layers.Select(l => Metrics.Matrix(new EditedLayer(model, l))).ToList();
        return new ExperimentPoint("original", 0, cf.Efficacy, cf.Paraphrase, cf.Neighborhood,
            perplexityDocs == null ? null : Metrics.Perplexity(model, perplexityDocs), untouched == null ? null : Metrics.FactAccuracy(model, untouched),
            mats.Select(m => m.L1MeanAbs).ToArray(), mats.Select(m => m.ConditionNumber).ToArray(), Array.Empty<LayerRegime>(), 0);
    }
}
