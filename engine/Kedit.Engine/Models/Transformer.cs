using Kedit.Backends;
using Kedit.IO;
using Kedit.Tokenization;

namespace Kedit.Models;

/// <summary>Which rows get logits: every token, the last real token of each sequence, none, or <see cref="ForwardOptions.LogitRows"/>.</summary>
public enum LogitsMode { All, Last, None, Rows }

/// <summary>One chunk of logits handed to <see cref="ForwardOptions.OnLogits"/>: rows [first, first + count) of the asked rows, [count, V].</summary>
public delegate void LogitsChunk(int first, int count, ReadOnlySpan<float> logits);

public sealed class ForwardOptions
{
    public ForwardHooks? Hooks { get; init; }
    public LogitsMode Logits { get; init; } = LogitsMode.All;
    /// <summary>With <see cref="LogitsMode.Rows"/>: the rows (sequence · Length + t) whose logits are wanted, in this order.</summary>
    public IReadOnlyList<int>? LogitRows { get; init; }
    /// <summary>
    /// When set, the asked rows' logits come here in chunks of at most <see cref="Transformer.LogitChunkRows"/> rows, in
    /// one buffer reused from chunk to chunk (read it during the call), and the result holds no logits: a perplexity
    /// pass over 32 × 128 tokens of a 50k vocabulary needs 51 MB instead of an 823 MB array.
    /// </summary>
    public LogitsChunk? OnLogits { get; init; }

    /// <summary>The rows (sequence · Length + t) whose logits this pass returns, checked against the batch (not for <see cref="LogitsMode.None"/>).</summary>
    internal IReadOnlyList<int> AskedRows(TokenBatch batch)
    {
        int total = batch.Size * batch.Length;
        IReadOnlyList<int> rows = Logits switch
        {
            LogitsMode.All => Enumerable.Range(0, total).ToArray(),
            LogitsMode.Last => Enumerable.Range(0, batch.Size).Select(b => b * batch.Length + batch.LastRealIndex(b)).ToArray(),
            _ => LogitRows ?? throw new ArgumentException("LogitsMode.Rows needs ForwardOptions.LogitRows"),
        };
        foreach (int r in rows)
            if ((uint)r >= (uint)total) throw new ArgumentOutOfRangeException(nameof(LogitRows), $"logit row {r} is outside the batch's {total} rows");
        return rows;
    }
}

/// <summary>Another runtime computing <see cref="Transformer.Forward(TokenBatch, ForwardOptions?)"/>'s hook-free passes (see <see cref="Transformer.ExternalForward"/>).</summary>
public interface IExternalForward
{
    ForwardResult Forward(TokenBatch batch, ForwardOptions options);
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
    internal KvCache(IBackend backend, ModelConfig c, int batch, int capacity, int layers)
    {
        _backend = backend; _config = c;
        Batch = batch; Capacity = capacity;
        int kvd = c.KvHeads * c.HeadDim;
        Keys = new Tensor[layers]; Values = new Tensor[layers];
        for (int l = 0; l < layers; l++) { Keys[l] = backend.Allocate(batch * capacity, kvd); Values[l] = backend.Allocate(batch * capacity, kvd); }
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

    readonly IBackend _backend;
    readonly ModelConfig _config;
    Tensor? _x;
    BlockBuffers? _buffers;

    /// <summary>
    /// The residual and block scratch for a forward of <paramref name="rows"/> rows, kept for the next one of as many
    /// (each decoding step would otherwise allocate ~40 KiB; every op overwrites what it writes, so no clearing).
    /// </summary>
    internal (Tensor X, BlockBuffers Buffers) Workspace(int rows)
    {
        if (_x == null || _x.Rows != rows)
        {
            _x?.Dispose(); _buffers?.Dispose();
            _x = _backend.Allocate(rows, _config.Hidden);
            _buffers = new BlockBuffers(_backend, _config, rows);
        }
        return (_x, _buffers!);
    }

    public void Dispose()
    {
        _x?.Dispose(); _buffers?.Dispose();
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

    /// <summary>
    /// Loads a Hugging Face model directory (config.json, safetensors weights, tokenizer when present); with
    /// <paramref name="headersOnly"/> the weight matrices are checked and described from their headers, not read (kedit info).
    /// </summary>
    public static Transformer Load(string dir, IBackend? backend = null, bool headersOnly = false)
    {
        dir = ModelLocator.Resolve(dir);
        AtomicOutput.Recover(dir); // a training run killed while moving its files in is finished first
        var config = ModelConfig.Load(dir);
        ModelWeights weights;
        using (var store = TensorStore.OpenDirectory(dir)) weights = ModelWeights.Load(config, store, dir, headersOnly);
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
            MlpOut = new Linear(l.MlpOut.Name, l.MlpOut.Matrix.Clone(), l.MlpOut.Bias, l.MlpOut.In, l.MlpOut.Out, l.MlpOut.InputMajor),
        }).ToArray();
        var weights = new ModelWeights
        {
            TokenTable = w.TokenTable, PositionEmbedding = w.PositionEmbedding, Layers = copies,
            FinalNormGamma = w.FinalNormGamma, FinalNormBeta = w.FinalNormBeta, LmHead = w.LmHead, StoredDTypes = w.StoredDTypes,
            ParameterCount = w.ParameterCount, StoredBytes = w.StoredBytes,
        };
        return new Transformer(Config, weights, Backend, Tokenizer, Directory);
    }

    public Tokenizer RequireTokenizer() => Tokenizer ?? throw new KeditException($"{Directory ?? "model"}: no tokenizer.json (or vocab.json + merges.txt) in the model directory");

    public KvCache CreateCache(int batch, int capacity) => CreateCache(batch, capacity, Config.Layers);

    KvCache CreateCache(int batch, int capacity, int layers)
    {
        if (capacity > Config.MaxPositions && Config.Architecture == Architecture.Gpt2)
            throw new KeditException($"sequence of {capacity} tokens exceeds the model's {Config.MaxPositions} positions");
        return new KvCache(Backend, Config, batch, capacity, layers);
    }

    /// <summary>
    /// When set, hook-free forward passes with no cache kept (the evaluation metrics') are computed here instead,
    /// e.g. by ONNX Runtime (<c>eval --device ort</c>); passes with hooks and cached decoding stay on <see cref="Backend"/>.
    /// </summary>
    public IExternalForward? ExternalForward { get; set; }

    /// <summary>A forward pass over a whole batch with no cache kept afterwards.</summary>
    public ForwardResult Forward(TokenBatch batch, ForwardOptions? options = null)
    {
        if (ExternalForward != null && options?.Hooks == null) return ExternalForward.Forward(batch, options ?? new ForwardOptions());
        // A pass that stops early (statistics, keys) needs no cache for the layers it never runs.
        int layers = Math.Min(Config.Layers - 1, options?.Hooks?.StopAfterLayer ?? int.MaxValue) + 1;
        using var cache = CreateCache(batch.Size, batch.Length, layers);
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
        var (x, buffers) = cache.Workspace(rows);
        var attnBatch = new AttentionBatch(B, T, P, cache.Capacity, cache.KeyValid);

        be.Embed(batch.Ids, Weights.TokenTable, Weights.PositionEmbedding, positions, x);
        Hook(hooks, x, 0, HookPoint.Embedding, T);

        int lastLayer = Math.Min(c.Layers - 1, hooks?.StopAfterLayer ?? int.MaxValue);
        for (int l = 0; l <= lastLayer; l++)
            RunBlock(be, l, x, buffers, positions, cache.Keys[l], cache.Values[l], attnBatch, hooks, T, null);
        cache.Length = P + T;

        if (options.Logits == LogitsMode.None || lastLayer < c.Layers - 1) return new ForwardResult(Array.Empty<float>(), 0, c.VocabSize);
        return Logits(x, batch, options, buffers.H);
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
        be.Attention(b.Qkv, c.Heads, c.KvHeads, c.HeadDim, c.AttentionScale(l), c.AttentionWindow(l), keyCache, valueCache, attnBatch, b.Att);
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
        if (c.Architecture == Architecture.Llama) { be.GatedActivation(b.MlpIn, c.Activation, b.Key!); k = b.Key!; }
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

    /// <summary>Most rows one final-norm + unembedding GEMM covers (256 × 50,257 logits: 51 MB).</summary>
    public const int LogitChunkRows = 256;

    /// <summary>
    /// Final norm and unembedding of the asked rows only, a chunk of rows at a time into one reused logits tensor;
    /// handed to the sink chunk by chunk, or gathered into one [rows, V] array. <paramref name="spare"/> is a free tensor
    /// of x's shape (the blocks' scratch), the normed rows' home when every row of x is asked for in one chunk.
    /// </summary>
    ForwardResult Logits(Tensor x, TokenBatch batch, ForwardOptions options, Tensor spare)
    {
        var be = Backend; int d = Config.Hidden, V = Config.VocabSize;
        var rows = options.AskedRows(batch);
        var sink = options.OnLogits;
        var result = sink == null ? new float[(long)rows.Count * V] : Array.Empty<float>();
        int chunk = Math.Min(LogitChunkRows, Math.Max(1, rows.Count));
        // Every row of a chunk-sized batch read as is: no gather.
        bool direct = rows.Count == x.Rows && rows.Count <= chunk;
        for (int i = 0; direct && i < rows.Count; i++) direct = rows[i] == i;
        using var gathered = direct ? null : be.Allocate(chunk, d);
        using var normed = direct ? null : be.Allocate(chunk, d);
        using var logits = be.Allocate(chunk, V);
        var row = direct ? null : new float[d];
        var host = sink != null && logits is not CpuTensor ? new float[(long)chunk * V] : null;
        for (int first = 0; first < rows.Count; first += chunk)
        {
            int n = Math.Min(chunk, rows.Count - first);
            // A short last chunk gets tensors of its own size (ops run over whole tensors).
            bool full = n == chunk;
            using var shortGathered = full || direct ? null : be.Allocate(n, d);
            using var shortNormed = full ? null : be.Allocate(n, d);
            using var shortLogits = full ? null : be.Allocate(n, V);
            Tensor src = direct ? x : shortGathered ?? gathered!, nt = shortNormed ?? normed ?? spare, lt = shortLogits ?? logits;
            if (!direct)
            {
                var block = new float[(long)n * d];
                for (int i = 0; i < n; i++) { be.ReadRow(x, rows[first + i], row!); row!.CopyTo(block, (long)i * d); }
                be.Upload(block, src);
            }
            Norm(src, Weights.FinalNormGamma, Weights.FinalNormBeta, nt);
            be.Linear(nt, Weights.LmHead, lt);
            if (sink == null) be.Download(lt, result.AsSpan((int)((long)first * V), n * V));
            else if (lt is CpuTensor ct) sink(first, n, ct.Data.AsSpan(0, n * V));
            else { be.Download(lt, host); sink(first, n, host.AsSpan(0, n * V)); }
        }
        return new ForwardResult(result, sink == null ? rows.Count : 0, V);
    }

    public void Dispose() => Backend.Dispose();
}
