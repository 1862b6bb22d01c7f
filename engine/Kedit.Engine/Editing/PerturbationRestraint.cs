using Kedit.Editing.LinearAlgebra;

namespace Kedit.Editing;

/// <summary>
/// PRUNE on top of a sequential method (spec §13, §17.1): the state is the unrestrained
/// accumulated ΔW of each layer as low-rank factors X·Yᵀ; edits are computed on unrestrained
/// weights; the restraint is applied only when weights are materialised (an edit run's output,
/// an evaluation point). Singular values of ΔW at or above σ_max(W0) are mapped through F.
/// </summary>
public sealed class PerturbationRestraint
{
    readonly EditContext _ctx;
    readonly Dictionary<int, List<(MatrixD X, MatrixD Y)>> _factors = new();
    readonly Dictionary<int, float[]> _unrestrained = new();

    public PerturbationRestraint(EditContext ctx, PruneMode mode, double rankEpsilon = Prune.Float32Epsilon)
    {
        _ctx = ctx; Mode = mode; RankEpsilon = rankEpsilon;
        foreach (var l in ctx.Layers) _factors[l.Layer] = new();
    }

    public PruneMode Mode { get; }
    public double RankEpsilon { get; }
    public bool IsMaterialised => _unrestrained.Count > 0;

    /// <summary>Adds a step's low-rank updates (MEMIT / ROME steps carry exact factors).</summary>
    public void Record(EditStep step)
    {
        foreach (var u in step.Layers) Add(u.Layer, u.X, u.Y);
    }

    /// <summary>Adds one layer's update ΔW = X·Yᵀ to its accumulated perturbation.</summary>
    public void Add(int layer, MatrixD x, MatrixD y) => _factors[layer].Add((x, y));

    /// <summary>Replaces a layer's factors (D4S: its total ΔW has a new factorisation every step).</summary>
    public void SetFactors(int layer, MatrixD x, MatrixD y)
    {
        _factors[layer].Clear();
        _factors[layer].Add((x, y));
    }

    /// <summary>The accumulated unrestrained ΔW of a layer as one pair of factors (d×m, f×m).</summary>
    public (MatrixD X, MatrixD Y) Factors(int layer)
    {
        var parts = _factors[layer];
        var l = _ctx.Layer(layer);
        int m = parts.Sum(p => p.X.Cols);
        var X = new MatrixD(l.D, m); var Y = new MatrixD(l.F, m);
        int c = 0;
        foreach (var (x, y) in parts)
        {
            for (int j = 0; j < x.Cols; j++, c++)
            {
                for (int i = 0; i < l.D; i++) X[i, c] = x[i, j];
                for (int i = 0; i < l.F; i++) Y[i, c] = y[i, j];
            }
        }
        return (X, Y);
    }

    public PruneResult Restrain(int layer)
    {
        var (X, Y) = Factors(layer);
        return Prune.RestrainFactored(X, Y, _ctx.SigmaMaxOriginal(layer), Mode, RankEpsilon);
    }

    /// <summary>Serves W0 + Δ' in every edited layer, keeping the unrestrained weights to return to.</summary>
    public IReadOnlyDictionary<int, PruneResult> Materialise()
    {
        if (IsMaterialised) throw new InvalidOperationException("the restraint is already applied");
        var results = new Dictionary<int, PruneResult>();
        foreach (var l in _ctx.Layers)
        {
            var r = Restrain(l.Layer);
            _unrestrained[l.Layer] = (float[])l.Weight.Weight.Clone();
            l.SetDelta(r.DeltaPrime());
            results[l.Layer] = r;
        }
        return results;
    }

    /// <summary>
    /// PRUNE in the loop (non-reference, spec §13.4): the served W0 + Δ' becomes the state the next edit is
    /// computed on and added to, so the accumulated perturbation is Δ' from here on.
    /// </summary>
    public void Commit(IReadOnlyDictionary<int, PruneResult> served)
    {
        foreach (var l in _ctx.Layers)
        {
            _unrestrained.Remove(l.Layer);
            SetFactors(l.Layer, served[l.Layer].UPrime, served[l.Layer].VPrime);
        }
    }

    /// <summary>Returns to the unrestrained weights (the next edit is computed on them).</summary>
    public void Unmaterialise()
    {
        foreach (var l in _ctx.Layers)
            if (_unrestrained.Remove(l.Layer, out var w))
            {
                w.CopyTo(l.Weight.Weight, 0);
                l.Weight.MarkChanged();
            }
    }
}
