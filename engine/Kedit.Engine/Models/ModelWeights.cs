using Kedit.IO;

namespace Kedit.Models;

/// <summary>
/// A linear map y = x·W (+ b) over rows of x, with W kept in the layout the checkpoint stores:
/// nn.Linear [out, in] or GPT-2's Conv1D [in, out] (<see cref="InputMajor"/>). Keeping the stored
/// layout means an edit changes exactly the tensor that is written back.
/// </summary>
public sealed class Linear
{
    public Linear(string name, float[] weight, float[]? bias, int inDim, int outDim, bool inputMajor)
        : this(name, new WeightMatrix(weight), bias, inDim, outDim, inputMajor) { }

    public Linear(string name, WeightMatrix weight, float[]? bias, int inDim, int outDim, bool inputMajor)
    {
        if (weight.Length != (long)inDim * outDim) throw new ArgumentException($"{name}: weight has {weight.Length} values, expected {inDim}×{outDim}");
        if (bias != null && bias.Length != outDim) throw new ArgumentException($"{name}: bias has {bias.Length} values, expected {outDim}");
        Name = name; Matrix = weight; Bias = bias; In = inDim; Out = outDim; InputMajor = inputMajor;
    }

    /// <summary>HF tensor name of the weight (for fused weights: a descriptive name).</summary>
    public string Name { get; }
    /// <summary>The weight as held (float32, or 16-bit as stored until an edit promotes it).</summary>
    public WeightMatrix Matrix { get; }
    /// <summary>The weight as float32; reading it promotes a 16-bit weight to float32 (see <see cref="WeightMatrix.F32"/>).</summary>
    public float[] Weight => Matrix.F32;
    public float[]? Bias { get; }
    public int In { get; }
    public int Out { get; }
    /// <summary>True for Conv1D storage [in, out]; false for nn.Linear storage [out, in].</summary>
    public bool InputMajor { get; }
    /// <summary>Bumped whenever <see cref="Weight"/> changes so device backends know to re-upload.</summary>
    public int Version { get; private set; }
    public void MarkChanged() => Version++;
}

/// <summary>One transformer block's parameters. Q/K/V and (Llama) gate/up are fused at load time.</summary>
public sealed class LayerWeights
{
    public required float[] Norm1Gamma { get; init; }
    public float[]? Norm1Beta { get; init; }
    /// <summary>Null for GPT-J (one norm shared by the parallel attention and MLP).</summary>
    public float[]? Norm2Gamma { get; init; }
    public float[]? Norm2Beta { get; init; }
    /// <summary>Fused projection to [q (heads·hd) | k (kvHeads·hd) | v (kvHeads·hd)].</summary>
    public required Linear Qkv { get; init; }
    public required Linear AttnOut { get; init; }
    /// <summary>GPT-2/GPT-J: fc_in → d_ff; Llama: fused [gate | up] → 2·d_ff.</summary>
    public required Linear MlpIn { get; init; }
    /// <summary>The down projection whose input is the MLP key: the matrix knowledge edits rewrite.</summary>
    public required Linear MlpOut { get; init; }
}

/// <summary>
/// All parameters of a model: the matrices (embeddings, projections) held as stored, float32 or 16-bit (see
/// <see cref="WeightMatrix"/>), the small vectors (norms, biases, position embeddings) as float32 (see <see cref="MemoryReport"/>).
/// </summary>
public sealed class ModelWeights
{
    /// <summary>The token embedding [V, d] as held; a tied lm_head shares this object.</summary>
    public WeightMatrix TokenTable { get; init; } = null!;
    /// <summary>The token embedding as float32 (promotes a 16-bit table: for training and export).</summary>
    public float[] TokenEmbedding { get => TokenTable.F32; init => TokenTable = new WeightMatrix(value); }
    public float[]? PositionEmbedding { get; init; }           // GPT-2: [P, d]
    public required LayerWeights[] Layers { get; init; }
    public required float[] FinalNormGamma { get; init; }
    public float[]? FinalNormBeta { get; init; }
    public required Linear LmHead { get; init; }                // [V, d] nn.Linear layout (tied: shares TokenEmbedding)
    /// <summary>dtype of each stored tensor, by HF name (for info and for writing back in the same dtype).</summary>
    public required IReadOnlyDictionary<string, DType> StoredDTypes { get; init; }

    public long ParameterCount { get; init; }
    public long StoredBytes { get; init; }

    /// <summary>Every distinct weight matrix (a tied lm_head is the token table).</summary>
    public IEnumerable<WeightMatrix> Matrices() =>
        new[] { TokenTable, LmHead.Matrix }.Concat(Layers.SelectMany(l => new[] { l.Qkv.Matrix, l.AttnOut.Matrix, l.MlpIn.Matrix, l.MlpOut.Matrix }))
            .Distinct(ReferenceEqualityComparer.Instance).Cast<WeightMatrix>();

    /// <summary>Bytes the weights hold now: the matrices as held (16-bit ones promoted by edits count as float32), the rest float32.</summary>
    public long ResidentBytes => ParameterCount * 4 - Matrices().Sum(m => m.Length * 4 - m.ResidentBytes);

    public string MemoryReport()
    {
        var kinds = StoredDTypes.Values.GroupBy(t => t).Select(g => $"{g.Count()} {DTypes.ToSafetensorsName(g.Key)}");
        var matrices = Matrices().ToList();
        int half = matrices.Count(m => m.HeldFormat != null), promoted = StoredDTypes.Values.Any(t => t != DType.F32) ? matrices.Count - half : 0;
        string held = half == 0 && promoted == 0 ? "held as F32 as stored"
            : $"{half} matri{(half == 1 ? "x" : "ces")} held 16-bit as stored (widened to F32 in the matrix products)" +
              (promoted > 0 ? $", {promoted} promoted to F32 (edited, or stored F32)" : "") + ", the rest F32: " +
              $"{Mb(ResidentBytes)} resident vs {Mb(StoredBytes)} on disk ({ResidentBytes / (double)Math.Max(1, StoredBytes):F2}×)";
        return $"{string.Join(", ", kinds)} tensors; {held}";
    }

    static string Mb(long b) => $"{b / 1048576.0:F1} MiB";

    /// <summary>
    /// Reads and checks every tensor; with <paramref name="headersOnly"/> the matrices are checked and described from their
    /// headers without reading their values (kedit info), so such weights cannot run a model.
    /// </summary>
    public static ModelWeights Load(ModelConfig c, TensorStore store, string dir, bool headersOnly = false)
    {
        var loader = new WeightLoader(store, dir, headersOnly);
        CheckLayerCount(c, store, dir);
        var m = c.Architecture switch
        {
            Architecture.Gpt2 => LoadGpt2(c, loader),
            Architecture.GptJ => LoadGptJ(c, loader),
            _ => LoadLlama(c, loader),
        };
        return m;
    }

    /// <summary>
    /// The config's layer count must be the checkpoint's, checked before anything is sized from it: a count past
    /// the stored layers would allocate for blocks that do not exist, one short of them would silently drop blocks.
    /// </summary>
    static void CheckLayerCount(ModelConfig c, TensorStore store, string dir)
    {
        string field = c.Architecture == Architecture.Llama ? "num_hidden_layers" : "n_layer";
        string prefix = c.Architecture == Architecture.Llama ? "model.layers." : "h.";
        int stored = -1;
        foreach (var name in store.Names)
        {
            int at = name.IndexOf(prefix, StringComparison.Ordinal);
            if (at < 0 || (at > 0 && name[at - 1] != '.')) continue;
            int start = at + prefix.Length, end = name.IndexOf('.', start);
            if (end > start && int.TryParse(name.AsSpan(start, end - start), System.Globalization.NumberStyles.None, null, out int layer))
                stored = Math.Max(stored, layer);
        }
        if (stored + 1 != c.Layers)
            throw new KeditException($"{Path.Combine(dir, "config.json")}: {field} is {c.Layers} but the checkpoint stores {stored + 1} layer(s) ({prefix}0…)");
    }

    sealed class WeightLoader(TensorStore store, string dir, bool headersOnly)
    {
        public readonly Dictionary<string, DType> DTypes = new();
        public long Params, Stored;

        public bool Has(string name) => store.Contains(Resolve(name));

        string Resolve(string name)
        {
            if (store.Contains(name)) return name;
            if (name.StartsWith("transformer.") && store.Contains(name["transformer.".Length..])) return name["transformer.".Length..];
            return name;
        }

        public float[] Get(string name, params long[] shape) => store.ReadFloat32(Check(name, shape));

        /// <summary>A weight matrix as held: 16-bit tensors stay 16-bit (one copy of the stored values), others float32.</summary>
        public WeightMatrix Matrix(string name, params long[] shape)
        {
            string actual = Check(name, shape);
            var info = store.GetInfo(actual);
            if (headersOnly) return WeightMatrix.Described(info.ElementCount, WeightMatrix.FormatOf(info.DType));
            return WeightMatrix.FormatOf(info.DType) is { } format
                ? new WeightMatrix(store.ReadBits16(actual), format)
                : new WeightMatrix(store.ReadFloat32(actual));
        }

        string Check(string name, long[] shape)
        {
            string actual = Resolve(name);
            if (!store.Contains(actual)) throw new KeditException($"{dir}: tensor \"{name}\" is missing from the checkpoint");
            var info = store.GetInfo(actual);
            if (!info.Shape.SequenceEqual(shape))
                throw new KeditException($"{dir}: tensor \"{name}\" has shape [{string.Join(", ", info.Shape)}], expected [{string.Join(", ", shape)}] from config.json");
            if (info.DType is not (DType.F32 or DType.F16 or DType.BF16))
                throw new KeditException($"{dir}: tensor \"{name}\" has dtype {Kedit.IO.DTypes.ToSafetensorsName(info.DType)}; weights must be F32, F16 or BF16");
            DTypes[name] = info.DType;
            Params += info.ElementCount;
            Stored += info.ByteLength;
            return actual;
        }

        public float[]? Opt(string name, params long[] shape) => Has(name) ? Get(name, shape) : null;
    }

    static ModelWeights Finish(WeightLoader l, WeightMatrix wte, float[]? wpe, LayerWeights[] layers, float[] fg, float[]? fb, Linear head) => new()
    {
        TokenTable = wte, PositionEmbedding = wpe, Layers = layers, FinalNormGamma = fg, FinalNormBeta = fb, LmHead = head,
        StoredDTypes = l.DTypes, ParameterCount = l.Params, StoredBytes = l.Stored,
    };

    static ModelWeights LoadGpt2(ModelConfig c, WeightLoader l)
    {
        int d = c.Hidden, f = c.Intermediate, V = c.VocabSize;
        var wte = l.Matrix("transformer.wte.weight", V, d);
        var wpe = l.Get("transformer.wpe.weight", c.MaxPositions, d);
        var layers = new LayerWeights[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"transformer.h.{i}.";
            layers[i] = new LayerWeights
            {
                Norm1Gamma = l.Get(p + "ln_1.weight", d), Norm1Beta = l.Get(p + "ln_1.bias", d),
                Norm2Gamma = l.Get(p + "ln_2.weight", d), Norm2Beta = l.Get(p + "ln_2.bias", d),
                Qkv = new Linear(p + "attn.c_attn.weight", l.Matrix(p + "attn.c_attn.weight", d, 3 * d), l.Get(p + "attn.c_attn.bias", 3 * d), d, 3 * d, true),
                AttnOut = new Linear(p + "attn.c_proj.weight", l.Matrix(p + "attn.c_proj.weight", d, d), l.Get(p + "attn.c_proj.bias", d), d, d, true),
                MlpIn = new Linear(p + "mlp.c_fc.weight", l.Matrix(p + "mlp.c_fc.weight", d, f), l.Get(p + "mlp.c_fc.bias", f), d, f, true),
                MlpOut = new Linear(p + "mlp.c_proj.weight", l.Matrix(p + "mlp.c_proj.weight", f, d), l.Get(p + "mlp.c_proj.bias", d), f, d, true),
            };
        }
        var fg = l.Get("transformer.ln_f.weight", d);
        var fb = l.Get("transformer.ln_f.bias", d);
        return Finish(l, wte, wpe, layers, fg, fb, new Linear("lm_head.weight", Head(c, l, wte), null, d, V, false));
    }

    static ModelWeights LoadGptJ(ModelConfig c, WeightLoader l)
    {
        int d = c.Hidden, f = c.Intermediate, V = c.VocabSize;
        var wte = l.Matrix("transformer.wte.weight", V, d);
        var layers = new LayerWeights[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"transformer.h.{i}.";
            var qkv = Concat(l.Matrix(p + "attn.q_proj.weight", d, d), l.Matrix(p + "attn.k_proj.weight", d, d), l.Matrix(p + "attn.v_proj.weight", d, d));
            layers[i] = new LayerWeights
            {
                Norm1Gamma = l.Get(p + "ln_1.weight", d), Norm1Beta = l.Get(p + "ln_1.bias", d),
                Qkv = new Linear(p + "attn.{q,k,v}_proj.weight", qkv, null, d, 3 * d, false),
                AttnOut = new Linear(p + "attn.out_proj.weight", l.Matrix(p + "attn.out_proj.weight", d, d), null, d, d, false),
                MlpIn = new Linear(p + "mlp.fc_in.weight", l.Matrix(p + "mlp.fc_in.weight", f, d), l.Get(p + "mlp.fc_in.bias", f), d, f, false),
                MlpOut = new Linear(p + "mlp.fc_out.weight", l.Matrix(p + "mlp.fc_out.weight", d, f), l.Get(p + "mlp.fc_out.bias", d), f, d, false),
            };
        }
        var fg = l.Get("transformer.ln_f.weight", d);
        var fb = l.Get("transformer.ln_f.bias", d);
        return Finish(l, wte, null, layers, fg, fb, new Linear("lm_head.weight", Head(c, l, wte), l.Opt("lm_head.bias", V), d, V, false));
    }

    static ModelWeights LoadLlama(ModelConfig c, WeightLoader l)
    {
        int d = c.Hidden, f = c.Intermediate, V = c.VocabSize, hd = c.HeadDim, qd = c.Heads * hd, kvd = c.KvHeads * hd;
        var wte = l.Matrix("model.embed_tokens.weight", V, d);
        var layers = new LayerWeights[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"model.layers.{i}.";
            var qkv = Concat(l.Matrix(p + "self_attn.q_proj.weight", qd, d), l.Matrix(p + "self_attn.k_proj.weight", kvd, d), l.Matrix(p + "self_attn.v_proj.weight", kvd, d));
            float[]? qkvBias = c.AttentionBias
                ? Concat(l.Get(p + "self_attn.q_proj.bias", qd), l.Get(p + "self_attn.k_proj.bias", kvd), l.Get(p + "self_attn.v_proj.bias", kvd))
                : null;
            var gateUp = Concat(l.Matrix(p + "mlp.gate_proj.weight", f, d), l.Matrix(p + "mlp.up_proj.weight", f, d));
            float[]? gateUpBias = c.MlpBias ? Concat(l.Get(p + "mlp.gate_proj.bias", f), l.Get(p + "mlp.up_proj.bias", f)) : null;
            layers[i] = new LayerWeights
            {
                Norm1Gamma = l.Get(p + "input_layernorm.weight", d),
                Norm2Gamma = l.Get(p + "post_attention_layernorm.weight", d),
                Qkv = new Linear(p + "self_attn.{q,k,v}_proj.weight", qkv, qkvBias, d, qd + 2 * kvd, false),
                AttnOut = new Linear(p + "self_attn.o_proj.weight", l.Matrix(p + "self_attn.o_proj.weight", d, qd), c.AttentionBias ? l.Opt(p + "self_attn.o_proj.bias", d) : null, qd, d, false),
                MlpIn = new Linear(p + "mlp.{gate,up}_proj.weight", gateUp, gateUpBias, d, 2 * f, false),
                MlpOut = new Linear(p + "mlp.down_proj.weight", l.Matrix(p + "mlp.down_proj.weight", d, f), c.MlpBias ? l.Get(p + "mlp.down_proj.bias", d) : null, f, d, false),
            };
        }
        var fg = l.Get("model.norm.weight", d);
        return Finish(l, wte, null, layers, fg, null, new Linear("lm_head.weight", Head(c, l, wte), null, d, V, false));
    }

    /// <summary>
    /// The output matrix: with tie_word_embeddings the token embedding itself, as Hugging Face ties them at load
    /// (a stored lm_head.weight is then ignored, as there); otherwise the stored lm_head.weight.
    /// </summary>
    static WeightMatrix Head(ModelConfig c, WeightLoader l, WeightMatrix wte) =>
        c.TieWordEmbeddings ? wte : l.Matrix("lm_head.weight", c.VocabSize, c.Hidden);

    /// <summary>Fused matrices: 16-bit when every part is 16-bit in one format, float32 otherwise.</summary>
    static WeightMatrix Concat(params WeightMatrix[] parts)
    {
        if (parts.Any(p => p.IsDescribed))   // described from headers only
            return WeightMatrix.Described(parts.Sum(p => p.Length), parts.All(p => p.HeldFormat == parts[0].HeldFormat) ? parts[0].HeldFormat : null);
        var halves = parts.Select(p => p.Half).ToList();
        if (halves.All(h => h != null && h.Value.Format == halves[0]!.Value.Format))
        {
            var bits = new ushort[parts.Sum(p => p.Length)];
            long at = 0;
            foreach (var h in halves) { h!.Value.Bits.CopyTo(bits, at); at += h.Value.Bits.LongLength; }
            return new WeightMatrix(bits, halves[0]!.Value.Format);
        }
        return new WeightMatrix(Concat(parts.Select(p => p.F32).ToArray()));
    }

    static float[] Concat(params float[][] parts)
    {
        var r = new float[parts.Sum(p => (long)p.Length)];
        long o = 0;
        foreach (var p in parts) { p.CopyTo(r, o); o += p.Length; }
        return r;
    }
}
