using Kedit.Backends;
using Kedit.Models;

namespace Kedit.Autodiff;

/// <summary>Gradients of parameters, keyed by the parameter array they belong to (weight grads are optional).</summary>
public sealed class ParameterGrads
{
    readonly Dictionary<float[], float[]> _grads = new(ReferenceEqualityComparer.Instance);
    public float[] For(float[] parameter) =>
        _grads.TryGetValue(parameter, out var g) ? g : _grads[parameter] = new float[parameter.Length];
    public bool TryGet(float[] parameter, out float[] grad) => _grads.TryGetValue(parameter, out grad!);
    public IEnumerable<KeyValuePair<float[], float[]>> All => _grads;
    public void Clear() { foreach (var g in _grads.Values) Array.Clear(g); }
}

/// <summary>
/// A CPU forward pass from the residual stream entering block <see cref="StartLayer"/> to the logits
/// at selected rows, keeping what the backward pass needs; then its backward to that residual
/// (and optionally to every parameter above it). compute_z runs blocks ℓ*+1…N−1 only: the blocks
/// below the edited layer do not depend on δ. Runs on the CPU over the host weights.
/// </summary>
public sealed class TransformerTape
{
    sealed class LayerSaved
    {
        public required float[] X, H1, Qkv, Att, MlpIn;
        public float[]? A, H2, Key; // A/H2: post-attention residual and its norm (not GPT-J); Key: Llama's SwiGLU output
    }

    readonly Transformer _model;
    readonly CpuBackend _be = CpuBackend.Instance;
    readonly List<LayerSaved> _saved = new();
    readonly int[] _positions;
    readonly bool[] _keyValid;
    readonly RopeTables? _rope;
    float[]? _finalIn;      // residual rows selected for logits
    float[]? _finalNormed;
    int[]? _logitRows;

    public TransformerTape(Transformer model, TokenBatch batch, int startLayer)
    {
        // The tape always runs on the CPU backend over the host weights, whatever device serves the
        // model's forward passes (the device kernels have no backward yet).
        _model = model; Batch = batch; StartLayer = startLayer;
        var c = model.Config;
        _positions = new int[batch.Size * batch.Length];
        for (int b = 0; b < batch.Size; b++)
            for (int t = 0, seen = 0; t < batch.Length; t++)
                _positions[b * batch.Length + t] = batch.Mask[b * batch.Length + t] ? seen++ : 0;
        _keyValid = batch.Mask;
        _rope = model.Rope;
    }

    public TokenBatch Batch { get; }
    public int StartLayer { get; }
    public int Rows => Batch.Size * Batch.Length;

    static CpuTensor Wrap(float[] data, int rows, int cols)
    {
        var t = new CpuTensor(rows, cols);
        data.AsSpan(0, rows * cols).CopyTo(t.Data);
        return t;
    }

    /// <summary>
    /// Runs blocks StartLayer…N−1 on x (the residual entering StartLayer, [rows, d]) and returns the
    /// logits [logitRows.Length, V] at the given rows.
    /// </summary>
    public float[] Forward(float[] x, int[] logitRows)
    {
        var c = _model.Config; var W = _model.Weights;
        int rows = Rows, d = c.Hidden, kvd = c.KvHeads * c.HeadDim;
        _saved.Clear();
        var cur = Wrap(x, rows, d);
        var batchInfo = new AttentionBatch(Batch.Size, Batch.Length, 0, Batch.Length, _keyValid);
        // The block is the model's own (Transformer.RunBlock); the tape keeps copies of what the backward needs.
        using var buffers = new BlockBuffers(_be, c, rows);
        var keyCache = new CpuTensor(rows, kvd); var valueCache = new CpuTensor(rows, kvd);
        for (int l = StartLayer; l < c.Layers; l++)
        {
            var st = new Dictionary<BlockStage, float[]>();
            _model.RunBlock(_be, l, cur, buffers, _positions, keyCache, valueCache, batchInfo, null, Batch.Length,
                (stage, t) => st[stage] = (float[])((CpuTensor)t).Data.Clone());
            _saved.Add(new LayerSaved
            {
                X = st[BlockStage.Input], H1 = st[BlockStage.Norm1], Qkv = st[BlockStage.Qkv], Att = st[BlockStage.Attention],
                MlpIn = st[BlockStage.MlpPreActivation], A = st.GetValueOrDefault(BlockStage.PostAttention),
                H2 = st.GetValueOrDefault(BlockStage.Norm2), Key = st.GetValueOrDefault(BlockStage.Key),
            });
        }
        _logitRows = logitRows;
        int n = logitRows.Length;
        _finalIn = new float[n * d];
        for (int i = 0; i < n; i++) cur.Data.AsSpan(logitRows[i] * d, d).CopyTo(_finalIn.AsSpan(i * d, d));
        var finalIn = Wrap(_finalIn, n, d);
        var normed = new CpuTensor(n, d);
        _model.Norm(_be, finalIn, W.FinalNormGamma, W.FinalNormBeta, normed);
        _finalNormed = normed.Data;
        var logits = new CpuTensor(n, c.VocabSize);
        _be.Linear(normed, W.LmHead, logits);
        return logits.Data;
    }

    void NormBackward(float[] x, float[] dy, int rows, float[] gamma, float[]? beta, float[] dx, ParameterGrads? grads)
    {
        var c = _model.Config;
        if (c.Architecture == Architecture.Llama)
            CpuBackwardOps.RmsNorm(x, dy, rows, c.Hidden, gamma, c.NormEps, dx, grads?.For(gamma) ?? Span<float>.Empty);
        else
            CpuBackwardOps.LayerNorm(x, dy, rows, c.Hidden, gamma, c.NormEps, dx, grads?.For(gamma) ?? Span<float>.Empty,
                beta != null && grads != null ? grads.For(beta) : Span<float>.Empty);
    }

    void LinearBackward(Linear w, float[] input, float[] dy, int rows, float[] dx, bool accumulate, ParameterGrads? grads)
    {
        CpuBackwardOps.LinearInput(dy, rows, w, dx, accumulate);
        if (grads != null) CpuBackwardOps.LinearWeight(input, dy, rows, w, grads.For(w.Weight), w.Bias != null ? grads.For(w.Bias) : Span<float>.Empty);
    }

    /// <summary>
    /// Backward from dLogits [logitRows, V] of the last <see cref="Forward"/> to the residual entering
    /// StartLayer [rows, d]; accumulates parameter gradients into <paramref name="grads"/> when given.
    /// </summary>
    public float[] Backward(float[] dLogits, ParameterGrads? grads = null)
    {
        if (_logitRows == null) throw new InvalidOperationException("Backward needs a Forward first");
        var c = _model.Config; var W = _model.Weights;
        int rows = Rows, d = c.Hidden, f = c.Intermediate, qd = c.Heads * c.HeadDim, kvd = c.KvHeads * c.HeadDim, n = _logitRows.Length;

        var dNormed = new float[n * d];
        LinearBackward(W.LmHead, _finalNormed!, dLogits, n, dNormed, false, grads);
        var dFinalIn = new float[n * d];
        NormBackward(_finalIn!, dNormed, n, W.FinalNormGamma, W.FinalNormBeta, dFinalIn, grads);
        var dx = new float[rows * d];
        for (int i = 0; i < n; i++)
        {
            var dst = dx.AsSpan(_logitRows[i] * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(dst, dFinalIn.AsSpan(i * d, d), dst);
        }

        for (int l = c.Layers - 1; l >= StartLayer; l--)
        {
            var w = W.Layers[l]; var s = _saved[l - StartLayer];
            // dx is the gradient of the block output y = x (+ ao) + v.
            var key = s.Key ?? Activated(s.MlpIn, c.Activation);
            var dKey = new float[rows * f];
            LinearBackward(w.MlpOut, key, dx, rows, dKey, false, grads);
            var dMlpIn = new float[rows * w.MlpIn.Out];
            if (c.Architecture == Architecture.Llama) CpuBackwardOps.SwiGlu(s.MlpIn, dKey, rows, f, dMlpIn);
            else { dKey.CopyTo(dMlpIn, 0); CpuBackwardOps.Activation(s.MlpIn, dMlpIn, c.Activation); }
            var dMlpInput = new float[rows * d];
            LinearBackward(w.MlpIn, s.H2 ?? s.H1, dMlpIn, rows, dMlpInput, false, grads);

            float[] dA; // gradient reaching the attention output projection's output
            var dH1 = new float[rows * d];
            if (c.Architecture == Architecture.GptJ)
            {
                dA = dx;                                  // y = x + ao + v
                dMlpInput.CopyTo(dH1, 0);                 // the MLP reads ln_1(x) too
            }
            else
            {
                dA = (float[])dx.Clone();                 // y = a + v, a = x + ao
                NormBackward(s.A!, dMlpInput, rows, w.Norm2Gamma!, w.Norm2Beta, dA, grads);
            }
            var dAtt = new float[rows * qd];
            LinearBackward(w.AttnOut, s.Att, dA, rows, dAtt, false, grads);
            var dQkv = new float[rows * (qd + 2 * kvd)];
            CpuBackwardOps.Attention(s.Qkv, dAtt, Batch.Size, Batch.Length, _keyValid, c.Heads, c.KvHeads, c.HeadDim, dQkv);
            if (_rope != null) CpuBackwardOps.Rope(dQkv, rows, qd + 2 * kvd, c.Heads, c.KvHeads, c.HeadDim, c.Rope, _positions, _rope);
            LinearBackward(w.Qkv, s.H1, dQkv, rows, dH1, c.Architecture == Architecture.GptJ, grads);
            var dxIn = (float[])dA.Clone();               // residual path
            NormBackward(s.X, dH1, rows, w.Norm1Gamma, w.Norm1Beta, dxIn, grads);
            dx = dxIn;
        }
        return dx;
    }

    static float[] Activated(float[] u, Activation act)
    {
        var k = (float[])u.Clone();
        CpuMath.Activate(k, act);
        return k;
    }
}
