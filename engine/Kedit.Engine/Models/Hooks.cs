using Kedit.Backends;

namespace Kedit.Models;

/// <summary>Where in a block a hook reads or patches the activations.</summary>
public enum HookPoint
{
    /// <summary>Input of block 0 (token + position embeddings); reported for layer 0 only.</summary>
    Embedding,
    /// <summary>Output of the attention sub-layer (after its output projection), before the residual add.</summary>
    AttentionOutput,
    /// <summary>The MLP key: input of the down projection (c_proj / fc_out / down_proj), width d_ff.</summary>
    MlpKey,
    /// <summary>The MLP value: output of the down projection including its bias (= the MLP output), width d.</summary>
    MlpValue,
    /// <summary>The residual stream after the block.</summary>
    BlockOutput,
}

/// <summary>
/// Read and patch access to one hook point's activations during a forward call. Rows are
/// sequence-major: row = sequence · <see cref="NewTokens"/> + t, where t indexes this call's tokens.
/// </summary>
public sealed class HookAccess
{
    internal HookAccess(IBackend backend, Tensor tensor, int layer, HookPoint point, int newTokens)
    { Backend = backend; Tensor = tensor; Layer = layer; Point = point; NewTokens = newTokens; }

    public IBackend Backend { get; }
    public Tensor Tensor { get; }
    public int Layer { get; }
    public HookPoint Point { get; }
    public int NewTokens { get; }
    public int Width => Tensor.Cols;
    public int RowOf(int sequence, int token) => sequence * NewTokens + token;

    public float[] ReadRow(int sequence, int token)
    {
        var r = new float[Width];
        Backend.ReadRow(Tensor, RowOf(sequence, token), r);
        return r;
    }

    public float[] ReadAll()
    {
        var r = new float[Tensor.Length];
        Backend.Download(Tensor, r);
        return r;
    }

    /// <summary>Adds delta to the activation at (sequence, token); later layers see the change.</summary>
    public void AddToRow(int sequence, int token, ReadOnlySpan<float> delta)
    {
        if (delta.Length != Width) throw new ArgumentException($"delta has {delta.Length} values; layer {Layer} {Point} is {Width} wide");
        Backend.AddToRow(Tensor, RowOf(sequence, token), delta);
    }
}

/// <summary>
/// Hooks for one forward call: whole-tensor captures, additive patches at chosen positions and
/// arbitrary callbacks. Patches are applied before captures and callbacks at the same point.
/// </summary>
public sealed class ForwardHooks
{
    readonly HashSet<(int, HookPoint)> _capture = new();
    readonly List<(int Layer, HookPoint Point, int Sequence, int Token, float[] Delta)> _patches = new();
    readonly List<Action<HookAccess>> _callbacks = new();
    readonly Dictionary<(int, HookPoint), float[]> _captured = new();

    /// <summary>Stop after this block (no final norm, no logits): key and residual passes need no more.</summary>
    public int? StopAfterLayer { get; set; }

    public ForwardHooks Capture(int layer, HookPoint point) { _capture.Add((layer, point)); return this; }

    public ForwardHooks CaptureAll(int layers, params HookPoint[] points)
    {
        foreach (var p in points)
            for (int l = 0; l < layers; l++)
                if (p != HookPoint.Embedding || l == 0) _capture.Add((l, p));
        return this;
    }

    public ForwardHooks Add(int layer, HookPoint point, int sequence, int token, float[] delta)
    { _patches.Add((layer, point, sequence, token, delta)); return this; }

    public ForwardHooks OnActivation(Action<HookAccess> callback) { _callbacks.Add(callback); return this; }

    /// <summary>A captured activation [rows, width] of the last forward call.</summary>
    public float[] Captured(int layer, HookPoint point) =>
        _captured.TryGetValue((layer, point), out var v) ? v : throw new InvalidOperationException($"layer {layer} {point} was not captured");

    internal bool Wants(int layer, HookPoint point) =>
        _callbacks.Count > 0 || _capture.Contains((layer, point)) || _patches.Exists(p => p.Layer == layer && p.Point == point);

    internal void Run(HookAccess a)
    {
        foreach (var p in _patches)
            if (p.Layer == a.Layer && p.Point == a.Point) a.AddToRow(p.Sequence, p.Token, p.Delta);
        if (_capture.Contains((a.Layer, a.Point))) _captured[(a.Layer, a.Point)] = a.ReadAll();
        foreach (var c in _callbacks) c(a);
    }
}
