using Kedit.Autodiff;
using Kedit.Models;

namespace Kedit.Backends;

/// <summary>The backward ops on host tensors: each delegates to <see cref="CpuBackwardOps"/> (the reference).</summary>
public sealed partial class CpuBackend : IBackwardBackend
{
    public void LinearInputBackward(Tensor dy, Linear w, Tensor dx, bool accumulate)
    {
        BackwardShapes.LinearInput(dy, w, dx);
        CpuBackwardOps.LinearInput(D(dy), dy.Rows, w, D(dx), accumulate);
    }

    public void LinearWeightBackward(Tensor x, Tensor dy, Linear w, Tensor dWeight, Tensor? dBias)
    {
        BackwardShapes.LinearWeight(x, dy, w, dWeight, dBias);
        CpuBackwardOps.LinearWeight(D(x), D(dy), x.Rows, w, D(dWeight), dBias != null ? D(dBias) : Span<float>.Empty);
    }

    public void LayerNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma, Tensor? dBeta)
    {
        BackwardShapes.Norm("layernorm backward", x, dy, gamma, dx, dGamma, dBeta);
        int n = x.Cols;
        var xd = D(x); var dyd = D(dy); var dxd = D(dx);
        if (dGamma == null && dBeta == null)
        {
            // Without parameter gradients the rows are independent (compute_z's case): split them across cores.
            ForRows(x.Rows, n, r => CpuBackwardOps.LayerNorm(xd.AsSpan(r * n, n), dyd.AsSpan(r * n, n), 1, n, gamma, eps, dxd.AsSpan(r * n, n), default, default));
            return;
        }
        CpuBackwardOps.LayerNorm(xd, dyd, x.Rows, n, gamma, eps, dxd,
            dGamma != null ? D(dGamma) : Span<float>.Empty, dBeta != null ? D(dBeta) : Span<float>.Empty);
    }

    public void RmsNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma)
    {
        BackwardShapes.Norm("rmsnorm backward", x, dy, gamma, dx, dGamma, null);
        int n = x.Cols;
        var xd = D(x); var dyd = D(dy); var dxd = D(dx);
        if (dGamma == null)
        {
            ForRows(x.Rows, n, r => CpuBackwardOps.RmsNorm(xd.AsSpan(r * n, n), dyd.AsSpan(r * n, n), 1, n, gamma, eps, dxd.AsSpan(r * n, n), default));
            return;
        }
        CpuBackwardOps.RmsNorm(xd, dyd, x.Rows, n, gamma, eps, dxd, D(dGamma));
    }

    public void ActivationBackward(Tensor preActivation, Tensor grad, Activation act)
    {
        BackwardShapes.Shape("activation backward", "grad", grad, preActivation.Rows, preActivation.Cols);
        int n = grad.Cols;
        var u = D(preActivation); var g = D(grad);
        ForRows(grad.Rows, n, r => CpuBackwardOps.Activation(u.AsSpan(r * n, n), g.AsSpan(r * n, n), act));
    }

    public void GatedActivationBackward(Tensor gateUp, Activation act, Tensor dKey, Tensor dGateUp)
    {
        BackwardShapes.Shape("gated activation backward", "gateUp", gateUp, dKey.Rows, 2 * dKey.Cols);
        BackwardShapes.Shape("gated activation backward", "dGateUp", dGateUp, dKey.Rows, 2 * dKey.Cols);
        int f = dKey.Cols;
        var gu = D(gateUp); var dk = D(dKey); var dg = D(dGateUp);
        ForRows(dKey.Rows, 2 * f, r => CpuBackwardOps.GatedActivation(gu.AsSpan(r * 2 * f, 2 * f), dk.AsSpan(r * f, f), act, dg.AsSpan(r * 2 * f, 2 * f)));
    }

    public void RopeBackward(Tensor dQkv, int heads, int kvHeads, int headDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables)
    {
        if (layout == RopeLayout.None || tables.Half == 0) return;
        BackwardShapes.Rope(dQkv, heads, kvHeads, headDim, positions, tables);
        CpuBackwardOps.Rope(D(dQkv), dQkv.Rows, dQkv.Cols, heads, kvHeads, headDim, layout, positions, tables);
    }

    public void AttentionBackward(Tensor qkv, Tensor dOut, int batch, int tokens, bool[] keyValid, int heads, int kvHeads, int headDim, float scale, int window, Tensor dQkv)
    {
        BackwardShapes.Attention(qkv, dOut, batch, tokens, keyValid, heads, kvHeads, headDim, dQkv);
        CpuBackwardOps.Attention(D(qkv), D(dOut), batch, tokens, keyValid, heads, kvHeads, headDim, scale, window, D(dQkv));
    }

    public void LogSoftmax(Tensor logits, Tensor logProbs)
    {
        BackwardShapes.Shape("log-softmax", "logProbs", logProbs, logits.Rows, logits.Cols);
        CpuBackwardOps.LogSoftmax(D(logits), logits.Rows, logits.Cols, D(logProbs));
    }

    public void SoftmaxCrossEntropyBackward(Tensor logits, int firstRow, ReadOnlySpan<int> targets, float scale, Tensor dLogits, Span<float> rowLoss)
    {
        BackwardShapes.LossRows("cross-entropy backward", logits, firstRow, targets.Length, dLogits, rowLoss.Length);
        BackwardShapes.Targets(targets, logits.Cols);
        int v = logits.Cols;
        CpuBackwardOps.SoftmaxCrossEntropy(D(logits).AsSpan(firstRow * v), v, targets, scale, D(dLogits).AsSpan(firstRow * v), rowLoss);
    }

    public void KlDivergenceBackward(Tensor logits, int firstRow, Tensor refLogProbs, float scale, Tensor dLogits, Span<float> rowKl)
    {
        BackwardShapes.LossRows("KL backward", logits, firstRow, refLogProbs.Rows, dLogits, rowKl.Length);
        BackwardShapes.Shape("KL backward", "refLogProbs", refLogProbs, refLogProbs.Rows, logits.Cols);
        int v = logits.Cols;
        CpuBackwardOps.KlDivergence(D(logits).AsSpan(firstRow * v), D(refLogProbs), v, scale, D(dLogits).AsSpan(firstRow * v), rowKl[..refLogProbs.Rows]);
    }

    public void EmbeddingBackward(Tensor dx, ReadOnlySpan<int> ids, Tensor dTable)
    {
        BackwardShapes.Embedding(dx, ids, dTable);
        CpuBackwardOps.Embedding(D(dx), ids, dx.Cols, D(dTable));
    }
}
