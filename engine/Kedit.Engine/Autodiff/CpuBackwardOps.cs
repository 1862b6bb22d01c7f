using System.Numerics.Tensors;
using Kedit.Backends;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Autodiff;

/// <summary>
/// Backward of each forward op of <see cref="CpuBackend"/>, one function per op (llm.c style).
/// Every function takes the forward's saved inputs and the gradient of its output, and returns
/// (or accumulates) the gradient of its input. Checked against finite differences in the tests.
/// </summary>
public static unsafe class CpuBackwardOps
{
    /// <summary>dx (+)= dy · op(W)ᵀ for y = x·W: the input gradient of a linear map.</summary>
    public static void LinearInput(ReadOnlySpan<float> dy, int rows, Linear w, Span<float> dx, bool accumulate)
    {
        // Linear [out,in]: dx = dy·W → B stored [k=out, n=in], no transpose. Conv1D [in,out]: dx = dy·Wᵀ.
        fixed (float* pdy = dy) fixed (float* pdx = dx)
            CpuBackend.Product(w.Matrix, false, w.InputMajor, rows, w.In, w.Out, pdy, w.Out, w.InputMajor ? w.Out : w.In, accumulate ? 1f : 0f, pdx, w.In);
    }

    /// <summary>dW += grad of the stored weight (stored layout) and db += Σ dy, for y = x·W + b.</summary>
    public static void LinearWeight(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, int rows, Linear w, Span<float> dW, Span<float> dB)
    {
        fixed (float* px = x) fixed (float* pdy = dy) fixed (float* pdw = dW)
        {
            if (w.InputMajor) // W [in,out]: dW = xᵀ·dy
                Gemm.Sgemm(true, false, w.In, w.Out, rows, 1f, px, w.In, pdy, w.Out, 1f, pdw, w.Out);
            else              // W [out,in]: dW = dyᵀ·x
                Gemm.Sgemm(true, false, w.Out, w.In, rows, 1f, pdy, w.Out, px, w.In, 1f, pdw, w.In);
        }
        if (!dB.IsEmpty)
            for (int r = 0; r < rows; r++) TensorPrimitives.Add(dB, dy.Slice(r * w.Out, w.Out), dB);
    }

    /// <summary>LayerNorm backward: dx += ∂/∂x, optional dγ, dβ accumulation.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, int rows, int n, float[] gamma, float eps,
        Span<float> dx, Span<float> dGamma, Span<float> dBeta)
    {
        Span<float> xhat = n <= 4096 ? stackalloc float[n] : new float[n], g = n <= 4096 ? stackalloc float[n] : new float[n];
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * n, n); var dyr = dy.Slice(r * n, n); var dxr = dx.Slice(r * n, n);
            float mean = TensorPrimitives.Sum(xr) / n;
            TensorPrimitives.Subtract(xr, mean, xhat);
            float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xhat) / n + eps);
            TensorPrimitives.Multiply(xhat, inv, xhat);
            TensorPrimitives.Multiply(dyr, gamma, g);
            float meanG = TensorPrimitives.Sum(g) / n, meanGX = TensorPrimitives.Dot(g, xhat) / n;
            for (int i = 0; i < n; i++) dxr[i] += inv * (g[i] - meanG - xhat[i] * meanGX);
            if (!dGamma.IsEmpty) for (int i = 0; i < n; i++) dGamma[i] += dyr[i] * xhat[i];
            if (!dBeta.IsEmpty) TensorPrimitives.Add(dBeta, dyr, dBeta);
        }
    }

    /// <summary>RMSNorm backward (y = x·r·γ, r = 1/√(mean x² + ε)): dx += ∂/∂x, optional dγ.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, int rows, int n, float[] gamma, float eps,
        Span<float> dx, Span<float> dGamma)
    {
        Span<float> g = n <= 4096 ? stackalloc float[n] : new float[n];
        for (int r = 0; r < rows; r++)
        {
            var xr = x.Slice(r * n, n); var dyr = dy.Slice(r * n, n); var dxr = dx.Slice(r * n, n);
            float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / n + eps);
            TensorPrimitives.Multiply(dyr, gamma, g);
            float c = TensorPrimitives.Dot(g, xr) * inv * inv * inv / n;
            for (int i = 0; i < n; i++) dxr[i] += inv * g[i] - c * xr[i];
            if (!dGamma.IsEmpty) for (int i = 0; i < n; i++) dGamma[i] += dyr[i] * xr[i] * inv;
        }
    }

    /// <summary>Activation backward in place: d ← d · act'(u), u = the pre-activation.</summary>
    public static void Activation(ReadOnlySpan<float> u, Span<float> d, Activation act)
    {
        switch (act)
        {
            case Models.Activation.GeluNew:
            {
                // tanh is the cost: it runs vectorised, except where |t| > 0.6. There 1 + t or 1 − t² cancels and
                // amplifies a one-ulp difference from MathF.Tanh (the rounding the device kernels are held to) past
                // float rounding, so those elements take MathF.Tanh; below, the amplification is under 1.6×.
                const float c = 0.7978845608028654f;
                const int block = 512;
                Span<float> y = stackalloc float[block], tv = stackalloc float[block];
                for (int start = 0; start < u.Length; start += block)
                {
                    int len = Math.Min(block, u.Length - start);
                    var xs = u.Slice(start, len); var ds = d.Slice(start, len);
                    for (int i = 0; i < len; i++) { float x = xs[i]; y[i] = c * (x + 0.044715f * x * x * x); }
                    TensorPrimitives.Tanh(y[..len], tv[..len]);
                    for (int i = 0; i < len; i++)
                    {
                        float x = xs[i], t = tv[i];
                        if (!(MathF.Abs(t) <= 0.6f)) t = MathF.Tanh(y[i]);
                        ds[i] *= 0.5f * (1 + t) + 0.5f * x * (1 - t * t) * c * (1 + 3 * 0.044715f * x * x);
                    }
                }
                break;
            }
            case Models.Activation.GeluExact:
                for (int i = 0; i < u.Length; i++)
                {
                    float x = u[i];
                    d[i] *= (float)(0.5 * (1 + CpuMath.Erf(x / Math.Sqrt(2))) + x * Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI));
                }
                break;
            default:
                for (int i = 0; i < u.Length; i++)
                {
                    float x = u[i];
                    float s = 1f / (1f + MathF.Exp(-x));
                    d[i] *= s * (1 + x * (1 - s));
                }
                break;
        }
    }

    /// <summary>
    /// Gated-MLP backward for one row: key = act(g) ⊙ u over gateUp = [g | u] (width 2f); writes
    /// dGateUp = [dkey ⊙ u ⊙ act'(g) | dkey ⊙ act(g)] from dkey (width f).
    /// </summary>
    public static void GatedActivation(ReadOnlySpan<float> gateUp, ReadOnlySpan<float> dKey, Activation act, Span<float> dGateUp)
    {
        int f = dKey.Length;
        ReadOnlySpan<float> gate = gateUp[..f], up = gateUp[f..];
        Span<float> dGate = dGateUp[..f], dUp = dGateUp[f..];
        gate.CopyTo(dUp);
        CpuMath.Activate(dUp, act);
        TensorPrimitives.Multiply(dUp, dKey, dUp);
        TensorPrimitives.Multiply(dKey, up, dGate);
        Activation(gate, dGate, act);
    }

    /// <summary>RoPE backward: the rotation is orthogonal, so the gradient rotates back by −angle.</summary>
    public static void Rope(Span<float> dQkv, int rows, int cols, int heads, int kvHeads, int headDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables)
    {
        int half = tables.Half;
        for (int r = 0; r < rows; r++)
        {
            int p = positions[r];
            var cos = tables.Cos.AsSpan(p * half, half); var sin = tables.Sin.AsSpan(p * half, half);
            for (int h = 0; h < heads + kvHeads; h++)
                CpuMath.RotateHead(dQkv.Slice(r * cols + h * headDim, headDim), cos, sin, layout, -1f);
        }
    }

    /// <summary>
    /// Causal masked attention backward over fused qkv rows (no cache: every sequence's keys are
    /// this call's rows). Recomputes the probabilities; writes dq, dk, dv into dQkv (overwrites).
    /// </summary>
    public static void Attention(ReadOnlySpan<float> qkvSpan, ReadOnlySpan<float> dOutSpan, int batch, int T, bool[] keyValid,
        int heads, int kvHeads, int headDim, float scale, int window, Span<float> dQkvSpan)
    {
        int qd = heads * headDim, kvd = kvHeads * headDim, cols = qd + 2 * kvd, group = heads / kvHeads;
        dQkvSpan.Clear();
        int qkvLength = qkvSpan.Length, dOutLength = dOutSpan.Length, dQkvLength = dQkvSpan.Length;
        fixed (float* pQkv = qkvSpan, pDOut = dOutSpan, pDQkv = dQkvSpan)
        {
            // The buffers are read and written in place (pinned for the call): copying them costs more than this op's arithmetic.
            nint qkvAt = (nint)pQkv, dOutAt = (nint)pDOut, dQkvAt = (nint)pDQkv;
            // Each (sequence, kv head) owns disjoint dk/dv slices, so it is the unit of parallel work.
            Parallel.For(0, batch * kvHeads, bk =>
            {
                var qkv = new ReadOnlySpan<float>((float*)qkvAt, qkvLength);
                var dOut = new ReadOnlySpan<float>((float*)dOutAt, dOutLength);
                var dQkv = new Span<float>((float*)dQkvAt, dQkvLength);
                int b = bk / kvHeads, kvh = bk % kvHeads;
                var p = new float[T]; var dp = new float[T];
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int i = 0; i < T; i++)
                    {
                        int qi = (b * T + i) * cols + h * headDim, first = CpuBackend.FirstVisible(i, window);
                        var q = qkv.Slice(qi, headDim);
                        float max = float.NegativeInfinity;
                        for (int j = first; j <= i; j++)
                        {
                            if (!keyValid[b * T + j]) { p[j] = float.NegativeInfinity; continue; }
                            p[j] = TensorPrimitives.Dot(q, qkv.Slice((b * T + j) * cols + qd + kvh * headDim, headDim)) * scale;
                            max = MathF.Max(max, p[j]);
                        }
                        if (float.IsNegativeInfinity(max)) continue;
                        float sum = 0;
                        for (int j = first; j <= i; j++) { p[j] = float.IsNegativeInfinity(p[j]) ? 0 : MathF.Exp(p[j] - max); sum += p[j]; }
                        for (int j = first; j <= i; j++) p[j] /= sum;
                        var dO = dOut.Slice((b * T + i) * qd + h * headDim, headDim);
                        float dot = 0;
                        for (int j = first; j <= i; j++)
                        {
                            if (p[j] == 0) { dp[j] = 0; continue; }
                            dp[j] = TensorPrimitives.Dot(dO, qkv.Slice((b * T + j) * cols + qd + kvd + kvh * headDim, headDim));
                            dot += p[j] * dp[j];
                            // dv_j += p_ij · dO_i
                            var dv = dQkv.Slice((b * T + j) * cols + qd + kvd + kvh * headDim, headDim);
                            TensorPrimitives.MultiplyAdd(dO, p[j], dv, dv);
                        }
                        var dq = dQkv.Slice(qi, headDim);
                        for (int j = first; j <= i; j++)
                        {
                            if (p[j] == 0) continue;
                            float ds = p[j] * (dp[j] - dot) * scale;
                            int kj = (b * T + j) * cols + qd + kvh * headDim;
                            TensorPrimitives.MultiplyAdd(qkv.Slice(kj, headDim), ds, dq, dq);
                            var dk = dQkv.Slice(kj, headDim);
                            TensorPrimitives.MultiplyAdd(q, ds, dk, dk);
                        }
                    }
            });
        }
    }

    /// <summary>logProbs[r, :] = logits[r, :] − logsumexp(logits[r, :]) for <paramref name="rows"/> rows of width <paramref name="vocab"/>.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> logits, int rows, int vocab, Span<float> logProbs)
    {
        for (int r = 0; r < rows; r++)
        {
            var z = logits.Slice(r * vocab, vocab);
            TensorPrimitives.Subtract(z, LogSumExp(z), logProbs.Slice(r * vocab, vocab));
        }
    }

    /// <summary>
    /// Softmax cross-entropy rows: for row k (targets.Length rows), dLogits[k] = scale·(softmax(z_k) − onehot(targets[k]))
    /// and rowLoss[k] = −log softmax(z_k)[targets[k]].
    /// </summary>
    public static void SoftmaxCrossEntropy(ReadOnlySpan<float> logits, int vocab, ReadOnlySpan<int> targets, float scale, Span<float> dLogits, Span<float> rowLoss)
    {
        for (int k = 0; k < targets.Length; k++)
        {
            var z = logits.Slice(k * vocab, vocab); var g = dLogits.Slice(k * vocab, vocab);
            float lse = LogSumExp(z);
            for (int c = 0; c < vocab; c++) g[c] = scale * MathF.Exp(z[c] - lse);
            g[targets[k]] -= scale;
            rowLoss[k] = lse - z[targets[k]];
        }
    }

    /// <summary>
    /// KL(p ‖ p0) rows against reference log-probabilities lp0: rowKl[k] = f = Σ p·(lp − lp0) and
    /// dLogits[k] = scale·p·((lp − lp0) − f), for rowKl.Length rows.
    /// </summary>
    public static void KlDivergence(ReadOnlySpan<float> logits, ReadOnlySpan<float> refLogProbs, int vocab, float scale, Span<float> dLogits, Span<float> rowKl)
    {
        for (int k = 0; k < rowKl.Length; k++)
        {
            var z = logits.Slice(k * vocab, vocab); var lp0 = refLogProbs.Slice(k * vocab, vocab); var g = dLogits.Slice(k * vocab, vocab);
            float lse = LogSumExp(z);
            double sum = 0;
            for (int c = 0; c < vocab; c++) { float lp = z[c] - lse; sum += MathF.Exp(lp) * (lp - lp0[c]); }
            float f = (float)sum;
            for (int c = 0; c < vocab; c++) { float lp = z[c] - lse; g[c] = scale * MathF.Exp(lp) * ((lp - lp0[c]) - f); }
            rowKl[k] = f;
        }
    }

    /// <summary>Embedding backward: dTable[ids[r]] += dx[r] for each row with ids[r] ≥ 0 (negative ids mark padding).</summary>
    public static void Embedding(ReadOnlySpan<float> dx, ReadOnlySpan<int> ids, int d, Span<float> dTable)
    {
        int vocab = dTable.Length / d;
        foreach (int id in ids)
            if (id >= vocab) throw new KeditException($"embedding backward: token id {id} is outside the table of {vocab} rows");
        for (int r = 0; r < ids.Length; r++)
        {
            int id = ids[r];
            if (id < 0) continue;
            var dst = dTable.Slice(id * d, d);
            TensorPrimitives.Add(dst, dx.Slice(r * d, d), dst);
        }
    }

    /// <summary>Max-shifted log-sum-exp of one row (the sum in float64: vocabularies have ~10⁵ terms).</summary>
    static float LogSumExp(ReadOnlySpan<float> z)
    {
        float max = TensorPrimitives.Max(z);
        double sum = 0;
        foreach (var v in z) sum += MathF.Exp(v - max);
        return max + (float)Math.Log(sum);
    }
}
