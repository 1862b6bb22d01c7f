using System.Text.Json.Nodes;
using Kedit.Editing.LinearAlgebra;

namespace Kedit.Editing;

/// <summary>
/// Where one edited layer stands against PRUNE's premise (single edits below σ_max(W0), only their
/// accumulation above it). Ratios are σ₁ / σ_max(W0) of the layer's original weight.
/// </summary>
/// <param name="Accumulated">σ₁ of the accumulated, unrestrained ΔW.</param>
/// <param name="MedianSingle">Median over edit steps of σ₁ of what the step changed in ΔW.</param>
/// <param name="FractionSingleAbove">Share of edit steps whose change alone reaches σ_max(W0) (0–1).</param>
/// <param name="Restrained">Singular values of the accumulated ΔW that PRUNE restrained (null without PRUNE).</param>
public sealed record LayerRegime(int Layer, double SigmaMaxW0, int Steps, double Accumulated, double MedianSingle, double FractionSingleAbove, int? Restrained);

/// <summary>
/// The size of every edit step per layer, as σ₁ of its change to ΔW over σ_max(W0): for MEMIT, ROME and
/// AlphaEdit the step's own update X·Yᵀ, for D4S the change of its batch total (<see cref="D4sState.Add"/>).
/// PRUNE shrinks singular values of the accumulated ΔW at or above σ_max(W0); when single edits already reach
/// it, PRUNE shrinks the edits themselves, not just their pile-up (see <see cref="PruneWarning"/>).
/// </summary>
public sealed class EditRegime
{
    /// <summary>A PRUNE warning is given when at least this share of single edits reaches σ_max(W0) at some layer.</summary>
    public const double WarningShare = 0.1;

    readonly EditContext _ctx;
    readonly List<double[]> _steps = new();   // per step, per edited layer (context order): σ₁(change) / σ_max(W0)

    public EditRegime(EditContext ctx) => _ctx = ctx;

    public int StepCount => _steps.Count;

    public void Record(EditStep step)
    {
        var ratios = new double[_ctx.Layers.Count];
        for (int i = 0; i < ratios.Length; i++)
        {
            var (x, y) = step.Layers[i].Change;
            ratios[i] = SpectralNorm.OfProduct(x, y) / _ctx.SigmaMaxOriginal(_ctx.Layers[i].Layer);
        }
        _steps.Add(ratios);
    }

    /// <summary>σ₁ of a step's change over σ_max(W0), per edited layer (context order).</summary>
    public IReadOnlyList<double> StepRatios(int index) => _steps[index];

    /// <summary>Forgets a step taken out of the session (D4S removal), by its index.</summary>
    public void RemoveAt(int index) => _steps.RemoveAt(index);

    /// <summary>Per layer: the single-edit figures, with σ₁ of the accumulated ΔW and PRUNE's restrained count (null without PRUNE) from the caller.</summary>
    public IReadOnlyList<LayerRegime> Summarise(Func<int, (double AccumulatedSigma, int? Restrained)> accumulated) =>
        _ctx.Layers.Select((l, i) =>
        {
            var (sigma, restrained) = accumulated(l.Layer);
            return Of(l.Layer, _ctx.SigmaMaxOriginal(l.Layer), _steps.Select(s => s[i]), sigma, restrained);
        }).ToList();

    /// <summary>A layer's regime from its single-edit ratios and the accumulated ΔW's σ₁ (absolute).</summary>
    public static LayerRegime Of(int layer, double sigmaMaxW0, IEnumerable<double> singleRatios, double accumulatedSigma, int? restrained)
    {
        var single = singleRatios.Order().ToArray();
        int n = single.Length;
        double median = n == 0 ? 0 : n % 2 == 1 ? single[n / 2] : 0.5 * (single[n / 2 - 1] + single[n / 2]);
        double above = n == 0 ? 0 : single.Count(r => r >= 1) / (double)n;
        return new LayerRegime(layer, sigmaMaxW0, n, accumulatedSigma / sigmaMaxW0, median, above, restrained);
    }

    /// <summary>
    /// The one-line warning when PRUNE is asked to act where single edits already reach σ_max(W0), or where its
    /// restraint function is not a contraction (spec §13.2: a log restraint needs σ_max(W0)·ln α ≥ 1, else it
    /// enlarges singular values just above σ_max(W0)); null when neither holds.
    /// </summary>
    public static string? PruneWarning(IEnumerable<LayerRegime> layers, PruneMode? mode = null)
    {
        var all = layers.ToList();
        var parts = new List<string>();
        var hit = all.Where(l => l.Steps > 0 && l.FractionSingleAbove >= WarningShare).ToList();
        if (hit.Count > 0)
            parts.Add("PRUNE will remove the edits themselves: single edits reach σ_max(W0) at " +
                      string.Join(", ", hit.Select(l => $"layer {l.Layer} ({100 * l.FractionSingleAbove:F0}% of edits, median {l.MedianSingle:F2}×)")) +
                      "; PRUNE assumes single edits below σ_max(W0) and restrains only their accumulation");
        if (mode is PruneMode m)
        {
            var expanding = all.Where(l => !Prune.IsContraction(l.SigmaMaxW0, m)).ToList();
            if (expanding.Count > 0)
                parts.Add($"PRUNE {Prune.ModeName(m)} enlarges singular values just above σ_max(W0) at " +
                          string.Join(", ", expanding.Select(l => $"layer {l.Layer} (σ_max(W0) {l.SigmaMaxW0:G3})")) +
                          $": its log restraint shrinks only where σ_max(W0) ≥ 1/ln α = {1 / Math.Log(Prune.LogBase(m)):G3}");
        }
        return parts.Count == 0 ? null : string.Join("; and ", parts);
    }

    /// <summary>The regime per layer as JSON (journal, eval and demo reports).</summary>
    public static JsonArray ToJson(IEnumerable<LayerRegime> regime) => new(regime.Select(r => (JsonNode)new JsonObject
    {
        ["layer"] = r.Layer, ["sigma_max_w0"] = r.SigmaMaxW0, ["steps"] = r.Steps, ["accumulated_sigma_ratio"] = r.Accumulated,
        ["single_median_sigma_ratio"] = r.MedianSingle, ["single_fraction_at_or_above"] = r.FractionSingleAbove, ["prune_restrained"] = r.Restrained,
    }).ToArray());

    /// <summary>Reads <see cref="ToJson"/>'s form back.</summary>
    public static List<LayerRegime> FromJson(JsonArray regime) => regime.Select(n => new LayerRegime(
        n!["layer"]!.GetValue<int>(), n["sigma_max_w0"]!.GetValue<double>(), n["steps"]!.GetValue<int>(), n["accumulated_sigma_ratio"]!.GetValue<double>(),
        n["single_median_sigma_ratio"]!.GetValue<double>(), n["single_fraction_at_or_above"]!.GetValue<double>(), n["prune_restrained"]?.GetValue<int>())).ToList();

    /// <summary>One line per layer for logs and CLI output.</summary>
    public static string Describe(LayerRegime l) =>
        $"layer {l.Layer}: σ₁(ΔW accumulated) {l.Accumulated:F2}× σ_max(W0) = {l.SigmaMaxW0:G4}; single edits median {l.MedianSingle:F2}×, " +
        $"{100 * l.FractionSingleAbove:F0}% of {l.Steps} at or above" + (l.Restrained is int r ? $"; PRUNE restrained {r} singular value{(r == 1 ? "" : "s")}" : "");
}
