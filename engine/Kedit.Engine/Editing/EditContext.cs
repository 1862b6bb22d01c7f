using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// What every method needs for a run: the model, its edited layers (with W0 kept), the key
/// statistics and the one-time factorisations derived from them (cached per layer: λC's Cholesky
/// factor, C's factor for ROME, σ_max(W0) for PRUNE). Where those run, host or the model's device, is
/// <see cref="Placement"/>'s decision (by default the model's backend, large matrices only).
/// </summary>
public sealed class EditContext
{
    readonly Dictionary<int, MemitSolver> _memitSolvers = new();
    readonly Dictionary<int, ISpdFactor> _covFactors = new();
    readonly Dictionary<int, double> _sigmaMax = new();
    readonly Dictionary<int, MatrixD> _mom2 = new();

    public EditContext(Transformer model, IEnumerable<int> layers, Covariance? stats, double lambda, ZSettings z)
    {
        Model = model; Stats = stats; Lambda = lambda; Z = z;
        Layers = layers.Order().Select(l => new EditedLayer(model, l)).ToList();
        if (Layers.Count == 0) throw new KeditException("no layers to edit");
        _placement = LinearAlgebraPlacement.Default(model.Backend);
    }

    LinearAlgebraPlacement _placement;

    /// <summary>
    /// Where the factorisations and σ_max run (<see cref="LinearAlgebraPlacement.For"/> of the model's backend unless
    /// set). Setting it drops the cached factors and σ_max, which are recomputed where the new placement says.
    /// </summary>
    public LinearAlgebraPlacement Placement
    {
        get => _placement;
        set
        {
            _placement = value ?? throw new ArgumentNullException(nameof(value));
            _memitSolvers.Clear(); _covFactors.Clear(); _sigmaMax.Clear();
        }
    }

    public Transformer Model { get; }
    /// <summary>Edited layers, ascending.</summary>
    public IReadOnlyList<EditedLayer> Layers { get; }
    public Covariance? Stats { get; }
    public double Lambda { get; }
    public ZSettings Z { get; }
    public int ZLayer => Layers[^1].Layer;

    /// <summary>
    /// Target vectors computed beforehand (`kedit targets` shards), one per request of the single batch they were made
    /// for; MEMIT's and AlphaEdit's step takes them instead of running compute_z.
    /// </summary>
    public IReadOnlyList<ZResult>? SuppliedTargets { get; set; }

    public EditedLayer Layer(int layer) => Layers.FirstOrDefault(l => l.Layer == layer) ?? throw new ArgumentException($"layer {layer} is not edited");

    public MatrixD Mom2(int layer)
    {
        if (_mom2.TryGetValue(layer, out var m)) return m;
        if (Stats == null) throw new KeditException("this method needs covariance statistics of the keys (kedit stats, or --stats FILE)");
        return _mom2[layer] = Stats.Mom2(layer);
    }

    /// <summary>MEMIT/D4S: λ·C (a new matrix; straight from the sums unless C itself is held already).</summary>
    public MatrixD LambdaC(int layer)
    {
        if (!_mom2.TryGetValue(layer, out var c))
            return (Stats ?? throw new KeditException("this method needs covariance statistics of the keys (kedit stats, or --stats FILE)")).Mom2(layer, Lambda);
        var m = c.Clone();
        m.Scale(Lambda);
        return m;
    }

    /// <summary>
    /// Keep each layer's factor of λC for later steps (default). A run of one step sets it false: each layer's f×f
    /// factor is then garbage once that layer is solved, so only one layer's float64 workspace is live at a time.
    /// </summary>
    public bool RetainFactors { get; set; } = true;

    /// <summary>The Woodbury solver with λC factorised once per layer (on the device when <see cref="Placement"/> says so).</summary>
    public MemitSolver MemitSolver(int layer)
    {
        if (_memitSolvers.TryGetValue(layer, out var s)) return s;
        s = new MemitSolver(LambdaC(layer), $"λ·C of layer {layer}", Placement.TryFactor);
        if (RetainFactors) _memitSolvers[layer] = s;
        return s;
    }

    /// <summary>
    /// Called when a layer's solve is done. Without retained factors its f×f float64 matrices (λC, the factor) are
    /// garbage now; a full collection returns them before the next layer allocates its own, so the peak holds one layer's
    /// workspace, not every layer's garbage (a few ms against the layer's O(f³) factorisation).
    /// </summary>
    public void LayerSolved()
    {
        if (!RetainFactors) CollectWorkspace();
    }

    /// <summary>
    /// Returns a layer's f×f float64 garbage (λC rebuilt, a factorisation's workspace) before the next layer allocates
    /// its own: a full blocking collection, milliseconds beside the O(f³) or O(f²) work that made the garbage. Without it
    /// the collector lets several layers' worth pile up (D4S's first step: 1.9 GB peak against 1.2 GB live on GPT-2 small).
    /// </summary>
    public static void CollectWorkspace() => GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);

    /// <summary>ROME: the factor of C itself (no λ), on the device when <see cref="Placement"/> says so.</summary>
    public ISpdFactor CovarianceFactor(int layer) =>
        _covFactors.TryGetValue(layer, out var f) ? f : _covFactors[layer] = Placement.Factor(Mom2(layer), Stats?.Source is string src ? $"{src}: covariance of layer {layer}" : $"covariance of layer {layer}");

    /// <summary>
    /// D4S's starting state of a layer: λC's factor made where <see cref="Placement"/> says, as a host factor the state
    /// takes over (it gets the rank-1 updates of later edits, which stay on the host). When λC is not positive definite
    /// the state goes to LU. The state rebuilds λC from the statistics when it needs it rather than holding it.
    /// </summary>
    public D4sState FreshD4sState(int layer)
    {
        var lambdaC = LambdaC(layer);
        var factor = Placement.TryFactorToHost(lambdaC, out var f, out _, out _) ? f : null;
        return D4sState.Rebuilding(() => LambdaC(layer), lambdaC.Rows, Layer(layer).D, factor, $"λ·C + S_KK of layer {layer}");
    }

    /// <summary>σ_max(W0) of a layer, computed once (Golub–Kahan–Lanczos on the original weights, on the device when <see cref="Placement"/> says so).</summary>
    public double SigmaMaxOriginal(int layer)
    {
        if (_sigmaMax.TryGetValue(layer, out var s)) return s;
        var l = Layer(layer);
        return _sigmaMax[layer] = Placement.SpectralNorm(l.Original, l.D, l.F, l.Weight.InputMajor).Value;
    }
}
