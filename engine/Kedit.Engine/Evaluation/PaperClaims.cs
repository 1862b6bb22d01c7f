using Kedit.Editing;

namespace Kedit.Evaluation;

/// <summary>One claim of the D4S or PRUNE paper as this run tests it: whether the run supports it, and the figures why.</summary>
public sealed record ClaimResult(string Claim, bool Supported, string Detail);

/// <summary>
/// The claims the demo tests, judged on the four variants of <see cref="ExperimentVariant.PaperSet"/>:
/// D4S (NeurIPS 2024) keeps general ability, untouched facts and the edited layers' norm closer to the
/// original than plain sequential MEMIT; PRUNE (ICLR 2025) holds the condition number near the original's
/// while keeping most of the edits. "From edit k on" is the first checkpoint after which the claim holds at
/// every later checkpoint.
/// </summary>
public static class PaperClaims
{
    /// <summary>PRUNE keeps efficacy at least this share of its base method's.</summary>
    public const double PruneEfficacyShare = 0.8;
    /// <summary>PRUNE holds the max condition number within this factor of the original's.</summary>
    public const double PruneConditionFactor = 2.0;

    public static IReadOnlyList<ClaimResult> Evaluate(ExperimentPoint original, IReadOnlyDictionary<string, List<ExperimentPoint>> runs)
    {
        var claims = new List<ClaimResult>();
        if (!runs.TryGetValue(ExperimentVariant.Memit.Name, out var memit) || !runs.TryGetValue(ExperimentVariant.D4s.Name, out var d4s)) return claims;
        int n = Math.Min(memit.Count, d4s.Count);

        if (original.Perplexity is double ppl0)
            claims.Add(Closer("D4S keeps held-out perplexity closer to the original's than sequential MEMIT", memit, d4s, n,
                p => p.Perplexity!.Value, ppl0, "F2"));
        if (original.UntouchedFacts is double facts0)
            claims.Add(Closer("D4S keeps accuracy on facts never edited (collateral damage) closer to the original's than sequential MEMIT", memit, d4s, n,
                p => p.UntouchedFacts!.Value, facts0, "F1"));

        var perLayer = Enumerable.Range(0, original.L1MeanAbs.Length).Select(l =>
        {
            int? from = From(n, k => d4s[k].L1MeanAbs[l] < memit[k].L1MeanAbs[l], memit);
            return (Holds: from != null, Text: $"layer {memit[^1].Regime[l].Layer}: " + (from is int e ? $"yes from edit {e} on" : "no at the end") +
                $" ({d4s[n - 1].L1MeanAbs[l]:F4} vs {memit[n - 1].L1MeanAbs[l]:F4}, original {original.L1MeanAbs[l]:F4})");
        }).ToList();
        claims.Add(new ClaimResult("D4S keeps the mean |w| of every edited layer below sequential MEMIT's", perLayer.All(x => x.Holds), string.Join("; ", perLayer.Select(x => x.Text))));

        double kappa0 = original.ConditionNumber.Max();
        foreach (var (pruned, baseRun) in new[] { (ExperimentVariant.MemitPrune, memit), (ExperimentVariant.D4sPrune, d4s) })
        {
            if (!runs.TryGetValue(pruned.Name, out var p) || p.Count == 0) continue;
            var last = p[^1]; var baseLast = baseRun[^1];
            double share = baseLast.Efficacy > 0 ? last.Efficacy / baseLast.Efficacy : 0, kappa = last.ConditionNumber.Max();
            bool ok = share >= PruneEfficacyShare && kappa <= PruneConditionFactor * kappa0;
            // The efficacy share at every checkpoint: with single edits above σ_max(W0) it falls as MEMIT's ΔW piles up.
            string history = string.Join(", ", p.Zip(baseRun).Select(x => $"{x.First.Edits}: {(x.Second.Efficacy > 0 ? 100 * x.First.Efficacy / x.Second.Efficacy : 0):F0}%"));
            claims.Add(new ClaimResult($"{pruned.Name}: PRUNE keeps ≥ {100 * PruneEfficacyShare:F0}% of {baseRun[0].Variant}'s efficacy and holds the max condition number within {PruneConditionFactor:F0}× the original's", ok,
                $"efficacy {last.Efficacy:F1} vs {baseLast.Efficacy:F1} ({100 * share:F0}%; by checkpoint {history}); max condition number {kappa:F1} vs original {kappa0:F1} ({kappa / kappa0:F2}×), {baseRun[0].Variant} {baseLast.ConditionNumber.Max():F1}" +
                Caveat(last.Regime)));
        }
        return claims;
    }

    // Where PRUNE's premise fails, said per layer (the full warning is the report's).
    static string Caveat(IEnumerable<LayerRegime> regime)
    {
        var hit = regime.Where(l => l.Steps > 0 && l.FractionSingleAbove >= EditRegime.WarningShare).ToList();
        return hit.Count == 0 ? "; single edits stay below σ_max(W0) at every layer, as PRUNE assumes"
            : "; caveat: single edits already reach σ_max(W0) at " + string.Join(", ", hit.Select(l => $"layer {l.Layer} ({100 * l.FractionSingleAbove:F0}%)")) + ", so PRUNE shrinks those edits themselves";
    }

    static ClaimResult Closer(string claim, List<ExperimentPoint> memit, List<ExperimentPoint> d4s, int n, Func<ExperimentPoint, double> metric, double original, string format)
    {
        int? from = From(n, k => Math.Abs(metric(d4s[k]) - original) < Math.Abs(metric(memit[k]) - original), memit);
        return new ClaimResult(claim, from != null,
            (from is int e ? $"yes from edit {e} on" : "no at the end") +
            $": after {memit[n - 1].Edits} edits D4S {metric(d4s[n - 1]).ToString(format)}, MEMIT {metric(memit[n - 1]).ToString(format)}, original {original.ToString(format)}");
    }

    // The edit count from which the predicate holds at every later checkpoint, or null when it fails at the last.
    static int? From(int n, Func<int, bool> holds, List<ExperimentPoint> points)
    {
        int? from = null;
        for (int k = n - 1; k >= 0 && holds(k); k--) from = points[k].Edits;
        return from;
    }
}
