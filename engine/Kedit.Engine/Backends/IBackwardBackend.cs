using Kedit.Models;

namespace Kedit.Backends;

/// <summary>
/// The backward of every op the backward tape (compute_z, training) uses, over a backend's own tensors.
/// Semantics are those of <see cref="Autodiff.CpuBackwardOps"/>, which <see cref="CpuBackend"/> delegates
/// to and every other implementation is tested against. "Accumulates" means the result is added to
/// the destination's contents; otherwise the destination is overwritten.
/// </summary>
public interface IBackwardBackend : IBackend
{
    /// <summary>dx = dy·op(W)ᵀ for y = x·W (+ b): dy [rows, w.Out], dx [rows, w.In]; accumulates when <paramref name="accumulate"/>.</summary>
    void LinearInputBackward(Tensor dy, Linear w, Tensor dx, bool accumulate);

    /// <summary>
    /// Accumulates the weight gradient in the stored layout (<paramref name="dWeight"/> [In, Out] when
    /// w.InputMajor, else [Out, In]) and, when given, the bias gradient Σ_rows dy into <paramref name="dBias"/> [1, Out].
    /// </summary>
    void LinearWeightBackward(Tensor x, Tensor dy, Linear w, Tensor dWeight, Tensor? dBias);

    /// <summary>LayerNorm backward for rows of x [rows, n]: accumulates dx, and dγ, dβ [1, n] when given.</summary>
    void LayerNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma, Tensor? dBeta);

    /// <summary>RMSNorm backward for rows of x [rows, n]: accumulates dx, and dγ [1, n] when given.</summary>
    void RmsNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma);

    /// <summary>grad ← grad ⊙ act'(preActivation), in place (same shapes).</summary>
    void ActivationBackward(Tensor preActivation, Tensor grad, Activation act);

    /// <summary>For key = act(gate) ⊙ up over gateUp [rows, 2f]: writes dGateUp [rows, 2f] from dKey [rows, f].</summary>
    void GatedActivationBackward(Tensor gateUp, Activation act, Tensor dKey, Tensor dGateUp);

    /// <summary>
    /// Rotates the q and k head gradients of fused dQkv rows back by each row's angle, in place
    /// (row r at positions[r]); a no-op for <see cref="RopeLayout.None"/>.
    /// </summary>
    void RopeBackward(Tensor dQkv, int heads, int kvHeads, int headDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables);

    /// <summary>
    /// Causal masked attention backward with no cache: <paramref name="batch"/> sequences of
    /// <paramref name="tokens"/> fused qkv rows each, key j of sequence b visible to query i when
    /// j ≤ i, i − j &lt; <paramref name="window"/> and keyValid[b·tokens + j], scores scaled by <paramref name="scale"/>
    /// (as in <see cref="IBackend.Attention"/>). Writes dq, dk, dv into <paramref name="dQkv"/> (overwrites)
    /// from dOut [rows, heads·headDim].
    /// </summary>
    void AttentionBackward(Tensor qkv, Tensor dOut, int batch, int tokens, bool[] keyValid, int heads, int kvHeads, int headDim, float scale, int window, Tensor dQkv);

    /// <summary>logProbs = logits − logsumexp per row (same shapes).</summary>
    void LogSoftmax(Tensor logits, Tensor logProbs);

    /// <summary>
    /// Softmax cross-entropy of logit rows firstRow … firstRow + targets.Length − 1: writes those rows
    /// of dLogits as scale·(softmax − onehot(target)) and rowLoss[k] = −log softmax[targets[k]].
    /// </summary>
    void SoftmaxCrossEntropyBackward(Tensor logits, int firstRow, ReadOnlySpan<int> targets, float scale, Tensor dLogits, Span<float> rowLoss);

    /// <summary>
    /// KL(p ‖ p0) of logit rows firstRow … firstRow + refLogProbs.Rows − 1 against reference
    /// log-probabilities: writes those rows of dLogits as scale·p·((lp − lp0) − f) and rowKl[k] = f = Σ p·(lp − lp0).
    /// </summary>
    void KlDivergenceBackward(Tensor logits, int firstRow, Tensor refLogProbs, float scale, Tensor dLogits, Span<float> rowKl);

    /// <summary>Embedding backward: accumulates dx[r] into dTable[ids[r]] for every ids[r] ≥ 0 (negative ids mark padding rows).</summary>
    void EmbeddingBackward(Tensor dx, ReadOnlySpan<int> ids, Tensor dTable);
}
