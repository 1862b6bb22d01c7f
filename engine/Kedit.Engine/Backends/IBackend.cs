using Kedit.Models;

namespace Kedit.Backends;

/// <summary>
/// A 2-D float32 activation buffer [Rows, Cols] owned by a backend (host memory for the CPU
/// backend, device memory for accelerators). Only its backend reads or writes its contents.
/// </summary>
public abstract class Tensor : IDisposable
{
    protected Tensor(int rows, int cols) { Rows = rows; Cols = cols; }
    public int Rows { get; }
    public int Cols { get; }
    public long Length => (long)Rows * Cols;
    public virtual void Dispose() { }
}

/// <summary>
/// Describes one attention call: <see cref="Batch"/> sequences, each contributing
/// <see cref="NewTokens"/> query rows (row index b·NewTokens + t) that sit at cache slot
/// <see cref="PastLength"/> + t. A key slot j is visible to the query at slot i when j ≤ i and
/// <see cref="KeyValid"/>[b·Capacity + j] is set (padding is never attended to).
/// </summary>
public sealed record AttentionBatch(int Batch, int NewTokens, int PastLength, int Capacity, bool[] KeyValid);

/// <summary>
/// The compute device abstraction (in the spirit of ggml's backend interface): buffers plus the
/// handful of ops a transformer forward pass needs. The managed CPU backend is the reference every
/// other backend is tested against.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }

    Tensor Allocate(int rows, int cols);
    void Upload(ReadOnlySpan<float> source, Tensor destination);
    void Download(Tensor source, Span<float> destination);
    void ReadRow(Tensor t, int row, Span<float> destination);
    /// <summary>t[row, :] += delta (the hook primitive the editing code needs).</summary>
    void AddToRow(Tensor t, int row, ReadOnlySpan<float> delta);
    void Copy(Tensor source, Tensor destination);

    /// <summary>x[r] = table[ids[r]] (+ positionTable[positions[r]] when given); a 16-bit table is widened row by row.</summary>
    void Embed(ReadOnlySpan<int> ids, WeightMatrix table, float[]? positionTable, ReadOnlySpan<int> positions, Tensor x);
    /// <summary>y = x·W (+ b), W in its stored layout.</summary>
    void Linear(Tensor x, Linear w, Tensor y);
    void LayerNorm(Tensor x, float[] gamma, float[]? beta, float eps, Tensor y);
    void RmsNorm(Tensor x, float[] gamma, float eps, Tensor y);
    /// <summary>In-place activation of x.</summary>
    void Activate(Tensor x, Activation act);
    /// <summary>y = act(gateUp[:, :f]) ⊙ gateUp[:, f:] with f = y.Cols (the gated MLP; SwiGLU for silu).</summary>
    void GatedActivation(Tensor gateUp, Activation act, Tensor y);
    /// <summary>acc += x.</summary>
    void Add(Tensor acc, Tensor x);
    /// <summary>
    /// Rotates the q and k parts of fused qkv rows [q heads | k heads | v heads] in place,
    /// row r at position positions[r]. cos/sin tables are [maxPos, rotaryDim/2].
    /// </summary>
    void Rope(Tensor qkv, int heads, int kvHeads, int headDim, int rotaryDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables);
    /// <summary>
    /// Writes this call's k/v rows into the layer cache, then computes causal masked attention of
    /// the q rows over the cache into output [rows, heads·headDim]. Scores q·k are multiplied by
    /// <paramref name="scale"/> (1/√headDim unless the config says otherwise); key slot j is visible to the
    /// query at slot i only when i − j &lt; <paramref name="window"/> (int.MaxValue: no sliding window);
    /// query head h uses kv head h / (heads / kvHeads).
    /// </summary>
    void Attention(Tensor qkv, int heads, int kvHeads, int headDim, float scale, int window, Tensor keyCache, Tensor valueCache, AttentionBatch batch, Tensor output);
}

/// <summary>Precomputed RoPE angles for positions 0..MaxPositions-1 (angles in float64, then rounded).</summary>
public sealed class RopeTables
{
    public RopeTables(int maxPositions, int rotaryDim, double theta, RopeScaling? scaling)
    {
        MaxPositions = maxPositions; Half = rotaryDim / 2;
        Cos = new float[maxPositions * Half]; Sin = new float[maxPositions * Half];
        for (int i = 0; i < Half; i++)
        {
            double invFreq = Math.Pow(theta, -2.0 * i / rotaryDim);
            if (scaling != null) invFreq = scaling.Scale(invFreq);
            for (int p = 0; p < maxPositions; p++)
            {
                double a = p * invFreq;
                Cos[p * Half + i] = (float)Math.Cos(a);
                Sin[p * Half + i] = (float)Math.Sin(a);
            }
        }
    }

    public int MaxPositions { get; }
    public int Half { get; }
    public float[] Cos { get; }
    public float[] Sin { get; }
}
