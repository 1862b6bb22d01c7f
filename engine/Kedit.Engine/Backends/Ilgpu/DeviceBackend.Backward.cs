using Kedit.Models;

namespace Kedit.Backends;

/// <summary>
/// The backward ops on the device: the backward kernels of Kedit.Kernels' Ilgpu folder, the linear maps'
/// gradients as the forward GEMM kernels with transposes. Reductions over rows (parameter and bias
/// gradients, embedding scatter) run a work-item per column in row order, so results are deterministic.
/// </summary>
public abstract partial class DeviceBackend : IBackwardBackend
{
    public void LinearInputBackward(Tensor dy, Linear w, Tensor dx, bool accumulate)
    {
        BackwardShapes.LinearInput(dy, w, dx);
        // Linear [out, in]: dx = dy·W (no transpose); Conv1D [in, out]: dx = dy·Wᵀ.
        var (weight, suffix) = LinearWeight(w);
        GemmCore(false, w.InputMajor, dy.Rows, w.In, w.Out, Dev(dy).Buffer, w.Out, weight, w.InputMajor ? w.Out : w.In,
            Dev(dx).Buffer, w.In, null, 1f, accumulate ? 1f : 0f, suffix);
    }

    public void LinearWeightBackward(Tensor x, Tensor dy, Linear w, Tensor dWeight, Tensor? dBias)
    {
        BackwardShapes.LinearWeight(x, dy, w, dWeight, dBias);
        int rows = x.Rows;
        if (rows == 0) return;
        if (w.InputMajor) // W [in, out]: dW += xᵀ·dy
            GemmCore(true, false, w.In, w.Out, rows, Dev(x).Buffer, w.In, Dev(dy).Buffer, w.Out, Dev(dWeight).Buffer, w.Out, null, 1f, 1f);
        else              // W [out, in]: dW += dyᵀ·x
            GemmCore(true, false, w.Out, w.In, rows, Dev(dy).Buffer, w.Out, Dev(x).Buffer, w.In, Dev(dWeight).Buffer, w.In, null, 1f, 1f);
        if (dBias != null)
            Runtime.Launch("col_sum_acc", Groups(w.Out, ElementwiseGroup), 1, ElementwiseGroup, 1, rows, w.Out, Dev(dy).Buffer, Dev(dBias).Buffer);
    }

    public void LayerNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma, Tensor? dBeta)
    {
        BackwardShapes.Norm("layernorm backward", x, dy, gamma, dx, dGamma, dBeta);
        if (x.Rows == 0) return;
        using var stats = Runtime.Allocate((long)x.Rows * 2 * sizeof(float));
        Runtime.Launch("layernorm_bwd", x.Rows, 1, Runtime.ReduceWorkGroup, 1, x.Cols, Dev(x).Buffer, Dev(dy).Buffer, Array(gamma), eps, Dev(dx).Buffer, stats);
        if (dGamma != null || dBeta != null)
            Runtime.Launch("layernorm_bwd_params", Groups(x.Cols, ElementwiseGroup), 1, ElementwiseGroup, 1, x.Rows, x.Cols, Dev(x).Buffer, Dev(dy).Buffer, stats,
                dGamma != null ? Dev(dGamma).Buffer : Dummy, dGamma != null, dBeta != null ? Dev(dBeta).Buffer : Dummy, dBeta != null);
    }

    public void RmsNormBackward(Tensor x, Tensor dy, float[] gamma, float eps, Tensor dx, Tensor? dGamma)
    {
        BackwardShapes.Norm("rmsnorm backward", x, dy, gamma, dx, dGamma, null);
        if (x.Rows == 0) return;
        using var stats = Runtime.Allocate((long)x.Rows * sizeof(float));
        Runtime.Launch("rmsnorm_bwd", x.Rows, 1, Runtime.ReduceWorkGroup, 1, x.Cols, Dev(x).Buffer, Dev(dy).Buffer, Array(gamma), eps, Dev(dx).Buffer, stats);
        if (dGamma != null)
            Runtime.Launch("rmsnorm_bwd_params", Groups(x.Cols, ElementwiseGroup), 1, ElementwiseGroup, 1, x.Rows, x.Cols, Dev(x).Buffer, Dev(dy).Buffer, stats, Dev(dGamma).Buffer);
    }

    public void ActivationBackward(Tensor preActivation, Tensor grad, Activation act)
    {
        BackwardShapes.Shape("activation backward", "grad", grad, preActivation.Rows, preActivation.Cols);
        Runtime.Launch("activate_bwd", Groups(grad.Length, ElementwiseGroup), 1, ElementwiseGroup, 1, grad.Length, ActivationCode(act), Dev(preActivation).Buffer, Dev(grad).Buffer);
    }

    public void GatedActivationBackward(Tensor gateUp, Activation act, Tensor dKey, Tensor dGateUp)
    {
        BackwardShapes.Shape("gated activation backward", "gateUp", gateUp, dKey.Rows, 2 * dKey.Cols);
        BackwardShapes.Shape("gated activation backward", "dGateUp", dGateUp, dKey.Rows, 2 * dKey.Cols);
        var (gx, gy, lx, ly) = Grid2D(dKey.Cols, dKey.Rows);
        Runtime.Launch("gated_act_bwd", gx, gy, lx, ly, dKey.Rows, dKey.Cols, ActivationCode(act), Dev(gateUp).Buffer, Dev(dKey).Buffer, Dev(dGateUp).Buffer);
    }

    public void RopeBackward(Tensor dQkv, int heads, int kvHeads, int headDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables)
    {
        if (layout == RopeLayout.None || tables.Half == 0) return;
        BackwardShapes.Rope(dQkv, heads, kvHeads, headDim, positions, tables);
        int rows = dQkv.Rows, nHeads = heads + kvHeads;
        if (rows == 0) return;
        using var posBuf = UploadInts(positions[..rows]);
        var (gx, gy, lx, ly) = Grid2D(tables.Half, rows * nHeads);
        Runtime.Launch("rope_bwd", gx, gy, lx, ly, rows, dQkv.Cols, nHeads, headDim, tables.Half, layout == RopeLayout.Interleaved ? 1 : 2,
            posBuf, Array(tables.Cos), Array(tables.Sin), Dev(dQkv).Buffer);
    }

    public void AttentionBackward(Tensor qkv, Tensor dOut, int batch, int tokens, bool[] keyValid, int heads, int kvHeads, int headDim, float scale, int window, Tensor dQkv)
    {
        BackwardShapes.Attention(qkv, dOut, batch, tokens, keyValid, heads, kvHeads, headDim, dQkv);
        if (headDim > Runtime.ReduceWorkGroup) throw new KeditException($"{Name}: head dimension {headDim} exceeds the attention kernel's limit of {Runtime.ReduceWorkGroup}");
        int rows = batch * tokens;
        if (rows == 0) return;
        var valid = new int[rows];
        for (int i = 0; i < rows; i++) valid[i] = keyValid[i] ? 1 : 0;
        using var validBuf = UploadInts(valid);
        using var lse = Runtime.Allocate((long)rows * heads * sizeof(float));
        using var dsum = Runtime.Allocate((long)rows * heads * sizeof(float));
        int g = Runtime.ReduceWorkGroup;
        var q = Dev(qkv).Buffer; var dO = Dev(dOut).Buffer; var dq = Dev(dQkv).Buffer;
        Runtime.Launch("attention_bwd_stats", rows * heads, 1, g, 1, heads, kvHeads, headDim, tokens, q, dO, validBuf, scale, window, lse, dsum);
        Runtime.Launch("attention_bwd_dq", rows * heads, 1, g, 1, heads, kvHeads, headDim, tokens, q, dO, validBuf, scale, window, lse, dsum, dq);
        Runtime.Launch("attention_bwd_dkv", rows * kvHeads, 1, g, 1, heads, kvHeads, headDim, tokens, q, dO, validBuf, scale, window, lse, dsum, dq);
    }

    public void LogSoftmax(Tensor logits, Tensor logProbs)
    {
        BackwardShapes.Shape("log-softmax", "logProbs", logProbs, logits.Rows, logits.Cols);
        Runtime.Launch("log_softmax", logits.Rows, 1, Runtime.ReduceWorkGroup, 1, logits.Cols, Dev(logits).Buffer, Dev(logProbs).Buffer);
    }

    public unsafe void SoftmaxCrossEntropyBackward(Tensor logits, int firstRow, ReadOnlySpan<int> targets, float scale, Tensor dLogits, Span<float> rowLoss)
    {
        BackwardShapes.LossRows("cross-entropy backward", logits, firstRow, targets.Length, dLogits, rowLoss.Length);
        BackwardShapes.Targets(targets, logits.Cols);
        int n = targets.Length;
        if (n == 0) return;
        using var targetBuf = UploadInts(targets);
        using var lossBuf = Runtime.Allocate((long)n * sizeof(float));
        Runtime.Launch("xent_grad", n, 1, Runtime.ReduceWorkGroup, 1, logits.Cols, firstRow, Dev(logits).Buffer, targetBuf, scale, Dev(dLogits).Buffer, lossBuf);
        fixed (float* p = rowLoss) Runtime.Read(lossBuf, 0, p, (long)n * sizeof(float));
    }

    public unsafe void KlDivergenceBackward(Tensor logits, int firstRow, Tensor refLogProbs, float scale, Tensor dLogits, Span<float> rowKl)
    {
        BackwardShapes.LossRows("KL backward", logits, firstRow, refLogProbs.Rows, dLogits, rowKl.Length);
        BackwardShapes.Shape("KL backward", "refLogProbs", refLogProbs, refLogProbs.Rows, logits.Cols);
        int n = refLogProbs.Rows;
        if (n == 0) return;
        using var klBuf = Runtime.Allocate((long)n * sizeof(float));
        Runtime.Launch("kl_grad", n, 1, Runtime.ReduceWorkGroup, 1, logits.Cols, firstRow, Dev(logits).Buffer, Dev(refLogProbs).Buffer, scale, Dev(dLogits).Buffer, klBuf);
        fixed (float* p = rowKl) Runtime.Read(klBuf, 0, p, (long)n * sizeof(float));
    }

    public void EmbeddingBackward(Tensor dx, ReadOnlySpan<int> ids, Tensor dTable)
    {
        BackwardShapes.Embedding(dx, ids, dTable);
        if (ids.Length == 0) return;
        using var idBuf = UploadInts(ids);
        Runtime.Launch("embed_bwd", Groups(dx.Cols, ElementwiseGroup), 1, ElementwiseGroup, 1, ids.Length, dx.Cols, idBuf, Dev(dx).Buffer, Dev(dTable).Buffer);
    }
}
