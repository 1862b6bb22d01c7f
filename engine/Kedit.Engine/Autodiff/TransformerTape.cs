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
/// A forward pass from the residual stream entering block <see cref="StartLayer"/> to the logits
/// at selected rows, keeping what the backward pass needs; then its backward to that residual
/// (and optionally to every parameter above it). compute_z runs blocks ℓ*+1…N−1 only: the blocks
/// below the edited layer do not depend on δ. Runs on the model's backend when it implements
/// <see cref="IBackwardBackend"/> (the CPU and device backends do), so intermediates stay in that
/// backend's memory; inputs, logits and gradients cross as host arrays.
/// </summary>
public sealed class TransformerTape : IDisposable
{
    sealed class LayerSaved : IDisposable
    {
        public required Tensor X, H1, Qkv, Att, MlpIn;
        public Tensor? A, H2, Key; // A/H2: post-attention residual and its norm (not GPT-J); Key: Llama's SwiGLU output
        public void Dispose() { X.Dispose(); H1.Dispose(); Qkv.Dispose(); Att.Dispose(); MlpIn.Dispose(); A?.Dispose(); H2?.Dispose(); Key?.Dispose(); }
    }

    readonly Transformer _model;
    readonly IBackwardBackend _be;
    readonly List<LayerSaved> _saved = new();
    readonly int[] _positions;
    readonly bool[] _keyValid;
    readonly RopeTables? _rope;
    Tensor? _finalIn;      // residual rows selected for logits
    Tensor? _finalNormed;
    int[]? _logitRows;

    public TransformerTape(Transformer model, TokenBatch batch, int startLayer)
    {
        _model = model; Batch = batch; StartLayer = startLayer;
        _be = model.Backend as IBackwardBackend ?? CpuBackend.Instance;
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
    /// <summary>The backend the tape runs on.</summary>
    public IBackend Backend => _be;

    Tensor FromHost(ReadOnlySpan<float> data, int rows, int cols)
    {
        var t = _be.Allocate(rows, cols);
        _be.Upload(data[..(rows * cols)], t);
        return t;
    }

    Tensor Zeros(int rows, int cols) => FromHost(new float[rows * cols], rows, cols);

    Tensor Clone(Tensor t)
    {
        var c = _be.Allocate(t.Rows, t.Cols);
        _be.Copy(t, c);
        return c;
    }

    float[] ToHost(Tensor t)
    {
        var a = new float[t.Length];
        _be.Download(t, a);
        return a;
    }

    /// <summary>
    /// Runs blocks StartLayer…N−1 on x (the residual entering StartLayer, [rows, d]) and returns the
    /// logits [logitRows.Length, V] at the given rows.
    /// </summary>
    public float[] Forward(float[] x, int[] logitRows)
    {
        var c = _model.Config; var W = _model.Weights;
        int rows = Rows, d = c.Hidden, kvd = c.KvHeads * c.HeadDim;
        ReleaseSaved();
        using var cur = FromHost(x, rows, d);
        var batchInfo = new AttentionBatch(Batch.Size, Batch.Length, 0, Batch.Length, _keyValid);
        // The block is the model's own (Transformer.RunBlock); the tape keeps copies of what the backward needs.
        using var buffers = new BlockBuffers(_be, c, rows);
        using var keyCache = _be.Allocate(rows, kvd);
        using var valueCache = _be.Allocate(rows, kvd);
        for (int l = StartLayer; l < c.Layers; l++)
        {
            var st = new Dictionary<BlockStage, Tensor>();
            _model.RunBlock(_be, l, cur, buffers, _positions, keyCache, valueCache, batchInfo, null, Batch.Length,
                (stage, t) => st[stage] = Clone(t));
            _saved.Add(new LayerSaved
            {
                X = st[BlockStage.Input], H1 = st[BlockStage.Norm1], Qkv = st[BlockStage.Qkv], Att = st[BlockStage.Attention],
                MlpIn = st[BlockStage.MlpPreActivation], A = st.GetValueOrDefault(BlockStage.PostAttention),
                H2 = st.GetValueOrDefault(BlockStage.Norm2), Key = st.GetValueOrDefault(BlockStage.Key),
            });
        }
        _logitRows = logitRows;
        int n = logitRows.Length;
        var selected = new float[n * d];
        for (int i = 0; i < n; i++) _be.ReadRow(cur, logitRows[i], selected.AsSpan(i * d, d));
        _finalIn = FromHost(selected, n, d);
        _finalNormed = _be.Allocate(n, d);
        _model.Norm(_be, _finalIn, W.FinalNormGamma, W.FinalNormBeta, _finalNormed);
        using var logits = _be.Allocate(n, c.VocabSize);
        _be.Linear(_finalNormed, W.LmHead, logits);
        return ToHost(logits);
    }

    /// <summary>Parameter gradients of one Backward in the backend's memory, added into the caller's ParameterGrads at the end.</summary>
    sealed class GradTensors : IDisposable
    {
        readonly TransformerTape _tape;
        readonly ParameterGrads _target;
        readonly Dictionary<float[], Tensor> _byParameter = new(ReferenceEqualityComparer.Instance);

        public GradTensors(TransformerTape tape, ParameterGrads target) { _tape = tape; _target = target; }

        /// <summary>The gradient tensor of a parameter (shared by every use of the same array, e.g. a tied head).</summary>
        public Tensor For(float[] parameter, int rows, int cols)
        {
            if (_byParameter.TryGetValue(parameter, out var t)) return t;
            // On the CPU the tensor is the caller's gradient array itself; elsewhere it starts at zero and is added back in Flush.
            t = _tape._be is CpuBackend ? new CpuTensor(rows, cols, _target.For(parameter)) : _tape.Zeros(rows, cols);
            _byParameter[parameter] = t;
            return t;
        }

        public void Flush()
        {
            if (_tape._be is CpuBackend) return;
            foreach (var (p, t) in _byParameter)
            {
                var g = _target.For(p);
                var add = _tape.ToHost(t);
                System.Numerics.Tensors.TensorPrimitives.Add(g, add.AsSpan(0, g.Length), g);
            }
        }

        public void Dispose() { foreach (var t in _byParameter.Values) t.Dispose(); }
    }

    void NormBackward(Tensor x, Tensor dy, float[] gamma, float[]? beta, Tensor dx, GradTensors? grads)
    {
        var c = _model.Config;
        int n = c.Hidden;
        if (c.Architecture == Architecture.Llama)
            _be.RmsNormBackward(x, dy, gamma, c.NormEps, dx, grads?.For(gamma, 1, n));
        else
            _be.LayerNormBackward(x, dy, gamma, c.NormEps, dx, grads?.For(gamma, 1, n), beta != null ? grads?.For(beta, 1, n) : null);
    }

    void LinearBackward(Linear w, Tensor input, Tensor dy, Tensor dx, bool accumulate, GradTensors? grads)
    {
        _be.LinearInputBackward(dy, w, dx, accumulate);
        if (grads != null)
            _be.LinearWeightBackward(input, dy, w, grads.For(w.Weight, w.InputMajor ? w.In : w.Out, w.InputMajor ? w.Out : w.In),
                w.Bias != null ? grads.For(w.Bias, 1, w.Out) : null);
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
        using var g = grads != null ? new GradTensors(this, grads) : null;

        Tensor dx;
        using (var dLog = FromHost(dLogits, n, c.VocabSize))
        using (var dNormed = _be.Allocate(n, d))
        using (var dFinalIn = Zeros(n, d))
        {
            LinearBackward(W.LmHead, _finalNormed!, dLog, dNormed, false, g);
            NormBackward(_finalIn!, dNormed, W.FinalNormGamma, W.FinalNormBeta, dFinalIn, g);
            // Scatter the selected rows' gradient back to their residual rows (a logit row may repeat).
            var finalRows = ToHost(dFinalIn);
            var dxHost = new float[rows * d];
            for (int i = 0; i < n; i++)
            {
                var dst = dxHost.AsSpan(_logitRows[i] * d, d);
                System.Numerics.Tensors.TensorPrimitives.Add(dst, finalRows.AsSpan(i * d, d), dst);
            }
            dx = FromHost(dxHost, rows, d);
        }

        for (int l = c.Layers - 1; l >= StartLayer; l--)
        {
            var w = W.Layers[l]; var s = _saved[l - StartLayer];
            // dx is the gradient of the block output y = x (+ ao) + v.
            using var activated = s.Key == null ? Clone(s.MlpIn) : null;
            if (activated != null) _be.Activate(activated, c.Activation);
            var key = s.Key ?? activated!;
            using var dKey = _be.Allocate(rows, f);
            LinearBackward(w.MlpOut, key, dx, dKey, false, g);
            using var dMlpIn = _be.Allocate(rows, w.MlpIn.Out);
            if (c.Architecture == Architecture.Llama) _be.SwiGluBackward(s.MlpIn, dKey, dMlpIn);
            else { _be.Copy(dKey, dMlpIn); _be.ActivationBackward(s.MlpIn, dMlpIn, c.Activation); }
            using var dMlpInput = _be.Allocate(rows, d);
            LinearBackward(w.MlpIn, s.H2 ?? s.H1, dMlpIn, dMlpInput, false, g);

            Tensor dA; // gradient reaching the attention output projection's output
            using var dH1 = _be.Allocate(rows, d);
            bool gptj = c.Architecture == Architecture.GptJ;
            if (gptj)
            {
                dA = dx;                                  // y = x + ao + v
                _be.Copy(dMlpInput, dH1);                 // the MLP reads ln_1(x) too
            }
            else
            {
                dA = Clone(dx);                           // y = a + v, a = x + ao
                NormBackward(s.A!, dMlpInput, w.Norm2Gamma!, w.Norm2Beta, dA, g);
            }
            using var dAtt = _be.Allocate(rows, qd);
            LinearBackward(w.AttnOut, s.Att, dA, dAtt, false, g);
            using var dQkv = _be.Allocate(rows, qd + 2 * kvd);
            _be.AttentionBackward(s.Qkv, dAtt, Batch.Size, Batch.Length, _keyValid, c.Heads, c.KvHeads, c.HeadDim, dQkv);
            if (_rope != null) _be.RopeBackward(dQkv, c.Heads, c.KvHeads, c.HeadDim, c.Rope, _positions, _rope);
            LinearBackward(w.Qkv, s.H1, dQkv, dH1, gptj, g);
            var dxIn = Clone(dA);                         // residual path
            NormBackward(s.X, dH1, w.Norm1Gamma, w.Norm1Beta, dxIn, g);
            if (!ReferenceEquals(dA, dx)) dA.Dispose();
            dx.Dispose();
            dx = dxIn;
        }
        g?.Flush();
        var result = ToHost(dx);
        dx.Dispose();
        return result;
    }

    void ReleaseSaved()
    {
        foreach (var s in _saved) s.Dispose();
        _saved.Clear();
        _finalIn?.Dispose(); _finalNormed?.Dispose();
        _finalIn = _finalNormed = null;
    }

    /// <summary>Releases the saved intermediates (device memory on an accelerator backend).</summary>
    public void Dispose() => ReleaseSaved();
}
