using Kedit.Backends;
using Kedit.IO;
using Kedit.Tokenization;

namespace Kedit.Models;

public enum LogitsMode { All, Last, None }

public sealed class ForwardOptions
{
    public ForwardHooks? Hooks { get; init; }
    public LogitsMode Logits { get; init; } = LogitsMode.All;
}

/// <summary>Logits of one forward call: [Rows, Vocab]; rows are all tokens (sequence-major) or one per sequence.</summary>
public sealed record ForwardResult(float[] Logits, int Rows, int Vocab)
{
    public ReadOnlySpan<float> Row(int r) => Logits.AsSpan(r * Vocab, Vocab);
}

/// <summary>
/// Key/value cache for incremental decoding: per layer [Batch × Capacity, kvHeads·headDim] on the
/// backend, plus which slots hold real tokens and how many real tokens each sequence has seen.
/// </summary>
public sealed class KvCache : IDisposable
{
    internal KvCache(IBackend backend, ModelConfig c, int batch, int capacity)
    {
        Batch = batch; Capacity = capacity;
        int kvd = c.KvHeads * c.HeadDim;
        Keys = new Tensor[c.Layers]; Values = new Tensor[c.Layers];
        for (int l = 0; l < c.Layers; l++) { Keys[l] = backend.Allocate(batch * capacity, kvd); Values[l] = backend.Allocate(batch * capacity, kvd); }
        KeyValid = new bool[batch * capacity];
        RealTokens = new int[batch];
    }

    public int Batch { get; }
    public int Capacity { get; }
    /// <summary>Slots filled so far (the same for every sequence: batches are padded).</summary>
    public int Length { get; internal set; }
    internal Tensor[] Keys { get; }
    internal Tensor[] Values { get; }
    internal bool[] KeyValid { get; }
    internal int[] RealTokens { get; }

    public void Dispose()
    {
        foreach (var t in Keys) t.Dispose();
        foreach (var t in Values) t.Dispose();
    }
}

/// <summary>Intermediates of a block the backward pass keeps (see <see cref="Transformer.RunBlock"/>).</summary>
internal enum BlockStage { Input, Norm1, Qkv, Attention, PostAttention, Norm2, MlpPreActivation, Key } // Key: the MLP's activated input (mlp_out reads it)

/// <summary>Scratch tensors of one block's forward pass, reused across layers.</summary>
internal sealed class BlockBuffers : IDisposable
{
    public BlockBuffers(IBackend be, ModelConfig c, int rows)
    {
        int qd = c.Heads * c.HeadDim;
        H = be.Allocate(rows, c.Hidden);
        Qkv = be.Allocate(rows, qd + 2 * c.KvHeads * c.HeadDim);
        Att = be.Allocate(rows, qd);
        AttOut = be.Allocate(rows, c.Hidden);
        MlpIn = be.Allocate(rows, c.Architecture == Architecture.Llama ? 2 * c.Intermediate : c.Intermediate);
        Key = c.Architecture == Architecture.Llama ? be.Allocate(rows, c.Intermediate) : null;
        Val = be.Allocate(rows, c.Hidden);
    }

    public Tensor H { get; }
    public Tensor Qkv { get; }
    public Tensor Att { get; }
    public Tensor AttOut { get; }
    public Tensor MlpIn { get; }
    public Tensor? Key { get; }
    public Tensor Val { get; }

    public void Dispose()
    {
        foreach (var t in new[] { H, Qkv, Att, AttOut, MlpIn, Key, Val }) t?.Dispose();
    }
}

/// <summary>
/// A loaded causal language model (GPT-2, GPT-J or Llama family) running on a backend, with hook
/// points for reading and patching activations.
/// </summary>
public sealed class Transformer : IDisposable
{
    public Transformer(ModelConfig config, ModelWeights weights, IBackend? backend = null, Tokenizer? tokenizer = null, string? directory = null)
    {
        Config = config; Weights = weights; Backend = backend ?? CpuBackend.Instance; Tokenizer = tokenizer; Directory = directory;
        if (config.Rope != RopeLayout.None) Rope = new RopeTables(config.MaxPositions, config.RotaryDim, config.RopeTheta, config.RopeScaling);
    }

    public ModelConfig Config { get; }
    public ModelWeights Weights { get; }
    public IBackend Backend { get; }
    public Tokenizer? Tokenizer { get; }
    public string? Directory { get; }
    /// <summary>RoPE angles for every position, computed once per model (null without rotary embeddings).</summary>
    internal RopeTables? Rope { get; }

    /// <summary>Loads a Hugging Face model directory (config.json, safetensors weights, tokenizer when present).</summary>
    public static Transformer Load(string dir, IBackend? backend = null)
    {
        if (!System.IO.Directory.Exists(dir)) throw new KeditException($"{dir}: model directory not found");
        AtomicOutput.Recover(dir); // a training run killed while moving its files in is finished first
        var config = ModelConfig.Load(dir);
        ModelWeights weights;
        using (var store = TensorStore.OpenDirectory(dir)) weights = ModelWeights.Load(config, store, dir);
        Tokenizer? tok = File.Exists(Path.Combine(dir, "tokenizer.json")) || File.Exists(Path.Combine(dir, "vocab.json")) ? Tokenizer.Load(dir) : null;
        return new Transformer(config, weights, backend, tok, dir);
    }

    /// <summary>
    /// A model sharing every array of this one except private copies of the given layers' MLP down
    /// projections (the matrices edits change): edits can be computed on it while this model keeps serving.
    /// </summary>
    public Transformer WithPrivateDownProjections(IReadOnlyCollection<int> layers)
    {
        var w = Weights;
        var copies = w.Layers.Select((l, i) => !layers.Contains(i) ? l : new LayerWeights
        {
            Norm1Gamma = l.Norm1Gamma, Norm1Beta = l.Norm1Beta, Norm2Gamma = l.Norm2Gamma, Norm2Beta = l.Norm2Beta,
            Qkv = l.Qkv, AttnOut = l.AttnOut, MlpIn = l.MlpIn,
            MlpOut = new Linear(l.MlpOut.Name, (float[])l.MlpOut.Weight.Clone(), l.MlpOut.Bias, l.MlpOut.In, l.MlpOut.Out, l.MlpOut.InputMajor),
        }).ToArray();
        var weights = new ModelWeights
        {
            TokenEmbedding = w.TokenEmbedding, PositionEmbedding = w.PositionEmbedding, Layers = copies,
            FinalNormGamma = w.FinalNormGamma, FinalNormBeta = w.FinalNormBeta, LmHead = w.LmHead, StoredDTypes = w.StoredDTypes,
            ParameterCount = w.ParameterCount, StoredBytes = w.StoredBytes, ResidentBytes = w.ResidentBytes,
        };
        return new Transformer(Config, weights, Backend, Tokenizer, Directory);
    }

    public Tokenizer RequireTokenizer() => Tokenizer ?? throw new KeditException($"{Directory ?? "model"}: no tokenizer.json (or vocab.json + merges.txt) in the model directory");

    public KvCache CreateCache(int batch, int capacity)
    {
        if (capacity > Config.MaxPositions && Config.Architecture == Architecture.Gpt2)
            throw new KeditException($"sequence of {capacity} tokens exceeds the model's {Config.MaxPositions} positions");
        return new KvCache(Backend, Config, batch, capacity);
    }

    /// <summary>A forward pass over a whole batch with no cache kept afterwards.</summary>
    public ForwardResult Forward(TokenBatch batch, ForwardOptions? options = null)
    {
        using var cache = CreateCache(batch.Size, batch.Length);
        return Forward(batch, cache, options);
    }

    /// <summary>Runs the batch's tokens after what the cache already holds and appends them to it.</summary>
    public ForwardResult Forward(TokenBatch batch, KvCache cache, ForwardOptions? options = null)
    {
        options ??= new ForwardOptions();
        var c = Config; var be = Backend; var hooks = options.Hooks;
        int B = batch.Size, T = batch.Length, P = cache.Length, rows = B * T;
        if (B != cache.Batch) throw new ArgumentException($"batch of {B} sequences does not match the cache's {cache.Batch}");
        if (P + T > cache.Capacity) throw new KeditException($"sequence of {P + T} tokens exceeds the cache capacity {cache.Capacity}");

        // Positions continue each sequence's count of real tokens; pads get position 0 (they are masked).
        var positions = new int[rows];
        for (int b = 0; b < B; b++)
        {
            int seen = cache.RealTokens[b];
            for (int t = 0; t < T; t++)
            {
                bool real = batch.Mask[b * T + t];
                cache.KeyValid[b * cache.Capacity + P + t] = real;
                positions[b * T + t] = real ? seen++ : Math.Max(0, seen - 1);
                if (!real && seen == 0) positions[b * T + t] = 0;
            }
            cache.RealTokens[b] = seen;
        }
        int maxPos = c.Architecture == Architecture.Gpt2 ? c.MaxPositions : Rope?.MaxPositions ?? int.MaxValue;
        foreach (int p in positions)
            if (p >= maxPos) throw new KeditException($"position {p} exceeds the model's {maxPos} positions (max_position_embeddings / n_positions)");

        for (int i = 0; i < rows; i++)
            if (batch.Mask[i] && (uint)batch.Ids[i] >= (uint)c.VocabSize)
                throw new KeditException($"token id {batch.Ids[i]} is outside the model's vocabulary (vocab_size {c.VocabSize})");

        int d = c.Hidden;
        using var x = be.Allocate(rows, d);
        using var buffers = new BlockBuffers(be, c, rows);
        var attnBatch = new AttentionBatch(B, T, P, cache.Capacity, cache.KeyValid);

        be.Embed(batch.Ids, Weights.TokenEmbedding, Weights.PositionEmbedding, positions, x);
        Hook(hooks, x, 0, HookPoint.Embedding, T);

        int lastLayer = Math.Min(c.Layers - 1, hooks?.StopAfterLayer ?? int.MaxValue);
        for (int l = 0; l <= lastLayer; l++)
            RunBlock(be, l, x, buffers, positions, cache.Keys[l], cache.Values[l], attnBatch, hooks, T, null);
        cache.Length = P + T;

        if (options.Logits == LogitsMode.None || lastLayer < c.Layers - 1) return new ForwardResult(Array.Empty<float>(), 0, c.VocabSize);
        return Logits(x, batch, options.Logits);
    }

    /// <summary>
    /// One transformer block on the residual x (updated in place): the single definition of the
    /// block that inference and the backward tape both run. <paramref name="save"/> sees each
    /// intermediate the backward pass needs, before the next op overwrites it.
    /// </summary>
    internal void RunBlock(IBackend be, int l, Tensor x, BlockBuffers b, int[] positions, Tensor keyCache, Tensor valueCache,
        AttentionBatch attnBatch, ForwardHooks? hooks, int newTokens, Action<BlockStage, Tensor>? save)
    {
        var c = Config; var w = Weights.Layers[l];
        save?.Invoke(BlockStage.Input, x);
        Norm(be, x, w.Norm1Gamma, w.Norm1Beta, b.H);
        save?.Invoke(BlockStage.Norm1, b.H);
        be.Linear(b.H, w.Qkv, b.Qkv);
        if (Rope != null) be.Rope(b.Qkv, c.Heads, c.KvHeads, c.HeadDim, c.RotaryDim, c.Rope, positions, Rope);
        save?.Invoke(BlockStage.Qkv, b.Qkv);
        be.Attention(b.Qkv, c.Heads, c.KvHeads, c.HeadDim, keyCache, valueCache, attnBatch, b.Att);
        save?.Invoke(BlockStage.Attention, b.Att);
        be.Linear(b.Att, w.AttnOut, b.AttOut);
        Hook(hooks, b.AttOut, l, HookPoint.AttentionOutput, newTokens);

        // GPT-J runs the MLP in parallel on the same normed input; the others on the post-attention residual.
        if (c.Architecture != Architecture.GptJ)
        {
            be.Add(x, b.AttOut);
            save?.Invoke(BlockStage.PostAttention, x);
            Norm(be, x, w.Norm2Gamma!, w.Norm2Beta, b.H);
            save?.Invoke(BlockStage.Norm2, b.H);
        }
        be.Linear(b.H, w.MlpIn, b.MlpIn);
        save?.Invoke(BlockStage.MlpPreActivation, b.MlpIn);
        Tensor k;
        if (c.Architecture == Architecture.Llama) { be.SwiGlu(b.MlpIn, b.Key!); k = b.Key!; }
        else { be.Activate(b.MlpIn, c.Activation); k = b.MlpIn; }
        save?.Invoke(BlockStage.Key, k); // kept so the backward need not recompute the activation
        Hook(hooks, k, l, HookPoint.MlpKey, newTokens);
        be.Linear(k, w.MlpOut, b.Val);
        Hook(hooks, b.Val, l, HookPoint.MlpValue, newTokens);
        if (c.Architecture == Architecture.GptJ) be.Add(x, b.AttOut);
        be.Add(x, b.Val);
        Hook(hooks, x, l, HookPoint.BlockOutput, newTokens);
    }

    void Norm(Tensor x, float[] gamma, float[]? beta, Tensor y) => Norm(Backend, x, gamma, beta, y);

    internal void Norm(IBackend be, Tensor x, float[] gamma, float[]? beta, Tensor y)
    {
        if (Config.Architecture == Architecture.Llama) be.RmsNorm(x, gamma, Config.NormEps, y);
        else be.LayerNorm(x, gamma, beta, Config.NormEps, y);
    }

    void Hook(ForwardHooks? hooks, Tensor t, int layer, HookPoint point, int newTokens)
    {
        if (hooks != null && hooks.Wants(layer, point)) hooks.Run(new HookAccess(Backend, t, layer, point, newTokens));
    }

    ForwardResult Logits(Tensor x, TokenBatch batch, LogitsMode mode)
    {
        var be = Backend; int d = Config.Hidden, V = Config.VocabSize;
        Tensor final = x;
        Tensor? gathered = null;
        if (mode == LogitsMode.Last)
        {
            // Only the last real token of each sequence needs the final norm and the unembedding.
            gathered = be.Allocate(batch.Size, d);
            var row = new float[d];
            var all = new float[batch.Size * d];
            for (int b = 0; b < batch.Size; b++)
            {
                be.ReadRow(x, b * batch.Length + batch.LastRealIndex(b), row);
                row.CopyTo(all, b * d);
            }
            be.Upload(all, gathered);
            final = gathered;
        }
        using var normed = be.Allocate(final.Rows, d);
        Norm(final, Weights.FinalNormGamma, Weights.FinalNormBeta, normed);
        using var logits = be.Allocate(final.Rows, V);
        be.Linear(normed, Weights.LmHead, logits);
        var result = new float[logits.Length];
        be.Download(logits, result);
        gathered?.Dispose();
        return new ForwardResult(result, final.Rows, V);
    }

    public void Dispose() => Backend.Dispose();
}
