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
/// backend's memory; inputs, logits and gradients cross as host arrays. Every buffer (saved
/// intermediates, block scratch, backward scratch) is allocated on first use and reused by later
/// calls: compute_z runs the same batch forward and backward once per optimiser step.
/// </summary>
public sealed class TransformerTape : IDisposable
{
    readonly Transformer _model;
    readonly IBackwardBackend _be;
    readonly int[] _positions;
    readonly bool[] _keyValid;
    readonly RopeTables? _rope;
    // Saved intermediates: one tensor per (layer above StartLayer, stage), overwritten by each Forward.
    readonly Dictionary<BlockStage, Tensor>[] _saved;
    readonly Dictionary<(string Name, int Rows, int Cols), Tensor> _scratch = new();
    BlockBuffers? _blockBuffers;
    float[]? _selectedHost, _dxHost, _finalRowsHost;
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
        _saved = new Dictionary<BlockStage, Tensor>[Math.Max(0, model.Config.Layers - startLayer)];
        for (int i = 0; i < _saved.Length; i++) _saved[i] = new();
    }

    public TokenBatch Batch { get; }
    public int StartLayer { get; }
    public int Rows => Batch.Size * Batch.Length;
    /// <summary>The backend the tape runs on.</summary>
    public IBackend Backend => _be;

    /// <summary>A reusable backend tensor named by its role; contents are whatever the last user left.</summary>
    Tensor Scratch(string name, int rows, int cols)
    {
        if (!_scratch.TryGetValue((name, rows, cols), out var t)) _scratch[(name, rows, cols)] = t = _be.Allocate(rows, cols);
        return t;
    }

    static float[] HostBuffer(ref float[]? buffer, int length)
    {
        if (buffer == null || buffer.Length != length) buffer = new float[length];
        return buffer;
    }

    /// <summary>
    /// Runs blocks StartLayer…N−1 on x (the residual entering StartLayer, [rows, d]) and returns the
    /// logits [logitRows.Length, V] at the given rows.
    /// </summary>
    public float[] Forward(float[] x, int[] logitRows)
    {
        var logits = new float[logitRows.Length * _model.Config.VocabSize];
        Forward(x, logitRows, logits);
        return logits;
    }

    /// <summary>
    /// <see cref="Forward(float[], int[])"/> into a caller's buffer: <paramref name="logits"/> receives
    /// [logitRows.Length, V] (the caller may reuse it across steps).
    /// </summary>
    public void Forward(ReadOnlySpan<float> x, int[] logitRows, Span<float> logits)
    {
        var c = _model.Config; var W = _model.Weights;
        int rows = Rows, d = c.Hidden, kvd = c.KvHeads * c.HeadDim, n = logitRows.Length;
        if (x.Length < rows * d) throw new ArgumentException($"the residual has {x.Length} values; the tape's batch needs [{rows}, {d}]");
        if (logits.Length < n * c.VocabSize) throw new ArgumentException($"the logits buffer holds {logits.Length} values; {n} rows need {n * c.VocabSize}");
        _logitRows = null; // a failed forward leaves nothing to differentiate
        var cur = Scratch("residual", rows, d);
        _be.Upload(x[..(rows * d)], cur);
        var batchInfo = new AttentionBatch(Batch.Size, Batch.Length, 0, Batch.Length, _keyValid);
        // The block is the model's own (Transformer.RunBlock); the tape copies what the backward needs into its saved tensors.
        _blockBuffers ??= new BlockBuffers(_be, c, rows);
        var keyCache = Scratch("keys", rows, kvd);
        var valueCache = Scratch("values", rows, kvd);
        for (int l = StartLayer; l < c.Layers; l++)
        {
            var st = _saved[l - StartLayer];
            _model.RunBlock(_be, l, cur, _blockBuffers, _positions, keyCache, valueCache, batchInfo, null, Batch.Length,
                (stage, t) =>
                {
                    if (!st.TryGetValue(stage, out var kept)) st[stage] = kept = _be.Allocate(t.Rows, t.Cols);
                    _be.Copy(t, kept);
                });
        }
        var selected = HostBuffer(ref _selectedHost, n * d);
        for (int i = 0; i < n; i++) _be.ReadRow(cur, logitRows[i], selected.AsSpan(i * d, d));
        var finalIn = Scratch("finalIn", n, d);
        var finalNormed = Scratch("finalNormed", n, d);
        _be.Upload(selected, finalIn);
        _model.Norm(_be, finalIn, W.FinalNormGamma, W.FinalNormBeta, finalNormed);
        var logitsTensor = Scratch("logits", n, c.VocabSize);
        _be.Linear(finalNormed, W.LmHead, logitsTensor);
        _be.Download(logitsTensor, logits[..(n * c.VocabSize)]);
        _logitRows = logitRows;
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
            if (_tape._be is CpuBackend) t = new CpuTensor(rows, cols, _target.For(parameter));
            else
            {
                t = _tape._be.Allocate(rows, cols);
                _tape._be.Upload(new float[rows * cols], t);
            }
            _byParameter[parameter] = t;
            return t;
        }

        public void Flush()
        {
            if (_tape._be is CpuBackend) return;
            foreach (var (p, t) in _byParameter)
            {
                var g = _target.For(p);
                var add = new float[t.Length];
                _tape._be.Download(t, add);
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
    /// Backward from dLogits [logitRows, V] of the last <see cref="Forward(float[], int[])"/> to the residual entering
    /// StartLayer [rows, d]; accumulates parameter gradients into <paramref name="grads"/> when given.
    /// </summary>
    public float[] Backward(float[] dLogits, ParameterGrads? grads = null)
    {
        var dx = new float[Rows * _model.Config.Hidden];
        Backward(dLogits, dx, grads);
        return dx;
    }

    /// <summary><see cref="Backward(float[], ParameterGrads?)"/> into a caller's buffer <paramref name="dResidual"/> [rows, d].</summary>
    public void Backward(ReadOnlySpan<float> dLogits, Span<float> dResidual, ParameterGrads? grads = null)
    {
        if (_logitRows == null) throw new InvalidOperationException("Backward needs a Forward first");
        var c = _model.Config; var W = _model.Weights;
        int rows = Rows, d = c.Hidden, f = c.Intermediate, qd = c.Heads * c.HeadDim, kvd = c.KvHeads * c.HeadDim, n = _logitRows.Length;
        if (dLogits.Length < n * c.VocabSize) throw new ArgumentException($"dLogits holds {dLogits.Length} values; {n} logit rows need {n * c.VocabSize}");
        if (dResidual.Length < rows * d) throw new ArgumentException($"the residual gradient buffer holds {dResidual.Length} values; [{rows}, {d}] needed");
        using var g = grads != null ? new GradTensors(this, grads) : null;

        var dLog = Scratch("logits", n, c.VocabSize); // the forward's logits are on the host by now
        _be.Upload(dLogits[..(n * c.VocabSize)], dLog);
        var dNormed = Scratch("dFinalNormed", n, d);
        var dFinalIn = Scratch("dFinalIn", n, d);
        var finalRows = HostBuffer(ref _finalRowsHost, n * d);
        Array.Clear(finalRows);
        _be.Upload(finalRows, dFinalIn);                // the norm backward accumulates
        LinearBackward(W.LmHead, Scratch("finalNormed", n, d), dLog, dNormed, false, g);
        NormBackward(Scratch("finalIn", n, d), dNormed, W.FinalNormGamma, W.FinalNormBeta, dFinalIn, g);
        // Scatter the selected rows' gradient back to their residual rows (a logit row may repeat).
        _be.Download(dFinalIn, finalRows);
        var dxHost = HostBuffer(ref _dxHost, rows * d);
        Array.Clear(dxHost);
        for (int i = 0; i < n; i++)
        {
            var dst = dxHost.AsSpan(_logitRows[i] * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(dst, finalRows.AsSpan(i * d, d), dst);
        }
        // Three residual-gradient buffers rotate: dx (the block output's), dA (the post-attention residual's), next (the block input's).
        var dx = Scratch("dResidual0", rows, d);
        var next = Scratch("dResidual1", rows, d);
        var dAOwn = Scratch("dPostAttention", rows, d);
        _be.Upload(dxHost, dx);

        var dKey = Scratch("dKey", rows, f);
        var dMlpIn = Scratch("dMlpPreActivation", rows, W.Layers[0].MlpIn.Out);
        var dMlpInput = Scratch("dMlpInput", rows, d);
        var dH1 = Scratch("dNorm1", rows, d);
        var dAtt = Scratch("dAttention", rows, qd);
        var dQkv = Scratch("dQkv", rows, qd + 2 * kvd);
        bool gptj = c.Architecture == Architecture.GptJ, llama = c.Architecture == Architecture.Llama;
        for (int l = c.Layers - 1; l >= StartLayer; l--)
        {
            var w = W.Layers[l]; var s = _saved[l - StartLayer];
            // dx is the gradient of the block output y = x (+ ao) + v.
            LinearBackward(w.MlpOut, s[BlockStage.Key], dx, dKey, false, g);
            if (llama) _be.GatedActivationBackward(s[BlockStage.MlpPreActivation], c.Activation, dKey, dMlpIn);
            else { _be.Copy(dKey, dMlpIn); _be.ActivationBackward(s[BlockStage.MlpPreActivation], dMlpIn, c.Activation); }
            LinearBackward(w.MlpIn, s.GetValueOrDefault(BlockStage.Norm2) ?? s[BlockStage.Norm1], dMlpIn, dMlpInput, false, g);

            Tensor dA; // gradient reaching the attention output projection's output
            if (gptj)
            {
                dA = dx;                                  // y = x + ao + v
                _be.Copy(dMlpInput, dH1);                 // the MLP reads ln_1(x) too
            }
            else
            {
                dA = dAOwn;                               // y = a + v, a = x + ao
                _be.Copy(dx, dA);
                NormBackward(s[BlockStage.PostAttention], dMlpInput, w.Norm2Gamma!, w.Norm2Beta, dA, g);
            }
            LinearBackward(w.AttnOut, s[BlockStage.Attention], dA, dAtt, false, g);
            _be.AttentionBackward(s[BlockStage.Qkv], dAtt, Batch.Size, Batch.Length, _keyValid, c.Heads, c.KvHeads, c.HeadDim, c.AttentionScale(l), c.AttentionWindow(l), dQkv);
            if (_rope != null) _be.RopeBackward(dQkv, c.Heads, c.KvHeads, c.HeadDim, c.Rope, _positions, _rope);
            LinearBackward(w.Qkv, s[BlockStage.Norm1], dQkv, dH1, gptj, g);
            _be.Copy(dA, next);                           // residual path
            NormBackward(s[BlockStage.Input], dH1, w.Norm1Gamma, w.Norm1Beta, next, g);
            (dx, next) = (next, dx);
        }
        g?.Flush();
        _be.Download(dx, dResidual[..(rows * d)]);
    }

    /// <summary>Releases the saved intermediates and scratch buffers (device memory on an accelerator backend).</summary>
    public void Dispose()
    {
        foreach (var st in _saved) { foreach (var t in st.Values) t.Dispose(); st.Clear(); }
        foreach (var t in _scratch.Values) t.Dispose();
        _scratch.Clear();
        _blockBuffers?.Dispose();
        _blockBuffers = null;
        _logitRows = null;
    }
}
