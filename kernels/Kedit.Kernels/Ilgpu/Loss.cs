using ILGPU;
using ILGPU.Algorithms;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Loss heads over logit rows of width V (references: <c>CpuBackwardOps</c>' log-softmax, cross-entropy and KL):
/// an item per row of a grid-stride range (<see cref="Lanes"/>), its log-sum-exp max-shifted and summed in float64 as the reference does.
/// </summary>
public static class LossKernels
{
    static float RowLse(ArrayView<float> z, long o, int V)
    {
        float mx = float.NegativeInfinity;
        for (int c = 0; c < V; c++) mx = XMath.Max(mx, z[o + c]);
        double s = 0;   // float64 like the reference: vocabularies have ~10⁵ terms
        for (int c = 0; c < V; c++) s += XMath.Exp(z[o + c] - mx);
        return mx + (float)XMath.Log(s);
    }

    /// <summary>out[r, :] = logits[r, :] − logsumexp(logits[r, :]).</summary>
    public static void LogSoftmax(Index1D lane, Lanes lanes, int V, ArrayView<float> logits, ArrayView<float> output)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            long o = (long)r * V;
            float lse = RowLse(logits, o, V);
            for (int c = 0; c < V; c++) output[o + c] = logits[o + c] - lse;
        }
    }

    /// <summary>Row firstRow + k: dLogits = scale·(softmax − onehot(target)), loss[k] = −log softmax[target].</summary>
    public static void CrossEntropyBackward(Index1D lane, Lanes lanes, int V, int firstRow, ArrayView<float> logits, ArrayView<int> targets, float scale,
        ArrayView<float> dLogits, ArrayView<float> loss)
    {
        for (int k = lane; k < lanes.Total; k += lanes.Stride)
        {
            int target = targets[k];
            long o = (long)(firstRow + k) * V;
            float lse = RowLse(logits, o, V);
            for (int c = 0; c < V; c++)
            {
                float g = scale * XMath.Exp(logits[o + c] - lse);
                if (c == target) g -= scale;
                dLogits[o + c] = g;
            }
            loss[k] = lse - logits[o + target];
        }
    }

    /// <summary>KL(p ‖ p0) of row firstRow + k: kl[k] = f = Σ p·(lp − lp0), dLogits = scale·p·((lp − lp0) − f).</summary>
    public static void KlBackward(Index1D lane, Lanes lanes, int V, int firstRow, ArrayView<float> logits, ArrayView<float> refLogProbs, float scale,
        ArrayView<float> dLogits, ArrayView<float> kl)
    {
        for (int k = lane; k < lanes.Total; k += lanes.Stride)
        {
            long o = (long)(firstRow + k) * V, o0 = (long)k * V;
            float lse = RowLse(logits, o, V);
            double sum = 0;
            for (int c = 0; c < V; c++) { float lp = logits[o + c] - lse; sum += XMath.Exp(lp) * (lp - refLogProbs[o0 + c]); }
            float f = (float)sum;
            for (int c = 0; c < V; c++) { float lp = logits[o + c] - lse; dLogits[o + c] = scale * XMath.Exp(lp) * ((lp - refLogProbs[o0 + c]) - f); }
            kl[k] = f;
        }
    }
}
