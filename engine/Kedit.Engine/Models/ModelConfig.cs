using System.Globalization;
using System.Text.Json;

namespace Kedit.Models;

/// <summary>The three block layouts the engine runs; Llama-family variants differ only by config.</summary>
public enum Architecture { Gpt2, GptJ, Llama }

public enum Activation { GeluNew, GeluExact, Silu }

/// <summary>RoPE pairing: GPT-J rotates interleaved pairs (2i, 2i+1); HF Llama rotates halves (i, i + hd/2).</summary>
public enum RopeLayout { None, Interleaved, RotateHalf }

/// <summary>What a config.json field does to kedit's float32 forward pass.</summary>
public enum FieldRole
{
    /// <summary>Changes the forward and is implemented (unsupported values of it are refused by name).</summary>
    Forward,
    /// <summary>Would change the forward and is not implemented: any value but the neutral one is refused by name.</summary>
    Refused,
    /// <summary>Read by the reference code but leaves a float32 inference forward unchanged (training, dropout, float16 numerics, ids).</summary>
    NoEffect,
}

/// <summary>One field the Hugging Face modelling code of a model type reads, and how kedit treats it.</summary>
/// <param name="Default">The value when the field is absent (for <see cref="FieldRole.Refused"/>: the one accepted value).</param>
public sealed record ConfigField(string Name, FieldRole Role, string Default, string Note = "");

/// <summary>
/// A Hugging Face config.json reduced to what the forward pass needs: the one place that reads it.
/// <see cref="Fields"/> lists, per supported model_type, every field the reference modelling code reads;
/// each is implemented, refused by name, or stated to leave the forward unchanged. Unknown model types
/// are errors, not guesses; every integer is range-checked before anything is sized from it, and every
/// missing, ill-typed or out-of-range field is reported with the file and field name.
/// </summary>
public sealed record ModelConfig
{
    public required string ModelType { get; init; }
    public required Architecture Architecture { get; init; }
    public required int VocabSize { get; init; }
    public required int Hidden { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int Intermediate { get; init; }
    public required int MaxPositions { get; init; }
    public required float NormEps { get; init; }
    /// <summary>The MLP activation (GPT-2/GPT-J), or the gate's activation of the gated MLP (Llama family).</summary>
    public required Activation Activation { get; init; }
    public RopeLayout Rope { get; init; }
    public int RotaryDim { get; init; }
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    /// <summary>GPT-2 <c>scale_attn_weights</c>: scores divided by √head_dim (every other type: always).</summary>
    public bool ScaleAttnWeights { get; init; } = true;
    /// <summary>GPT-2 <c>scale_attn_by_inverse_layer_idx</c>: scores of layer l also divided by l + 1.</summary>
    public bool ScaleAttnByInverseLayerIdx { get; init; }
    /// <summary>Per layer, the sliding attention window (query i sees key j only when i − j &lt; window); null: every layer sees all keys.</summary>
    public IReadOnlyList<int>? LayerWindows { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public string TorchDtype { get; init; } = "float32";
    /// <summary>The math-relevant fields as read (name, value; "default" marks an absent field), for <c>kedit info</c>.</summary>
    public IReadOnlyList<(string Name, string Value)> MathFields { get; init; } = [];

    /// <summary>Stated ceilings: past them a config is refused before anything is allocated.</summary>
    public const int MaxLayers = 4096, MaxWidth = 1 << 17, MaxVocab = 1 << 24;
    /// <summary>The RoPE cos/sin tables hold max_position_embeddings × rotary_dim floats; more than this is refused.</summary>
    public const long MaxRopeTableBytes = 1L << 30;

    /// <summary>Factor applied to q·k in layer <paramref name="layer"/>.</summary>
    public float AttentionScale(int layer)
    {
        double s = ScaleAttnWeights ? 1 / Math.Sqrt(HeadDim) : 1;
        if (ScaleAttnByInverseLayerIdx) s /= layer + 1;
        return (float)s;
    }

    /// <summary>The attention window of layer <paramref name="layer"/> (int.MaxValue: unlimited).</summary>
    public int AttentionWindow(int layer) => LayerWindows?[layer] ?? int.MaxValue;

    /// <summary>Name of the weight whose input is the MLP key (the matrix knowledge edits rewrite).</summary>
    public string DownProjName(int layer) => Architecture switch
    {
        Architecture.Gpt2 => $"transformer.h.{layer}.mlp.c_proj.weight",
        Architecture.GptJ => $"transformer.h.{layer}.mlp.fc_out.weight",
        _ => $"model.layers.{layer}.mlp.down_proj.weight",
    };

    /// <summary>
    /// Every config.json field the Hugging Face modelling code of each supported model_type reads (configuration
    /// class, model, attention and RoPE initialisation), and what kedit does with it. Fields not listed are not
    /// read by that code either (e.g. architectures, transformers_version).
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<ConfigField>> Fields { get; } = BuildFields();

    static Dictionary<string, IReadOnlyList<ConfigField>> BuildFields()
    {
        static ConfigField F(string n, string d, string note = "") => new(n, FieldRole.Forward, d, note);
        static ConfigField R(string n, string neutral, string note) => new(n, FieldRole.Refused, neutral, note);
        static ConfigField N(string n, string note) => new(n, FieldRole.NoEffect, "", note);
        ConfigField[] common =
        [
            N("initializer_range", "initialisation: training only"), N("use_cache", "an inference switch: kedit always caches when decoding"),
            N("bos_token_id", "generation: a token id, range-checked"), N("eos_token_id", "generation stops at it; range-checked"),
            N("pad_token_id", "batching: kedit masks padding itself"), N("torch_dtype", "kedit holds weights as float32 whatever the stored dtype"),
            N("dtype", "as torch_dtype (newer transformers)"),
        ];
        ConfigField[] gptCommon =
        [
            F("vocab_size", "required"), F("n_positions", "required"), F("n_embd", "required"), F("n_layer", "required"), F("n_head", "required"),
            F("n_inner", "4·n_embd"), F("activation_function", "gelu_new"), F("layer_norm_epsilon", "1e-05"),
            N("resid_pdrop", "dropout: training only"), N("embd_pdrop", "dropout: training only"), N("attn_pdrop", "dropout: training only"),
        ];
        ConfigField[] gpt2 =
        [
            F("scale_attn_weights", "true"), F("scale_attn_by_inverse_layer_idx", "false"), F("tie_word_embeddings", "true"),
            N("reorder_and_upcast_attn", "only changes float16 numerics (upcast and reordered scaling): kedit computes attention in float32"),
            N("n_ctx", "legacy alias the modelling code does not read"),
            N("add_cross_attention", "cross-attention runs only with encoder states, which a causal LM never has"),
            N("summary_type", "GPT2DoubleHeadsModel's head"), N("summary_use_proj", "GPT2DoubleHeadsModel's head"),
            N("summary_activation", "GPT2DoubleHeadsModel's head"), N("summary_proj_to_labels", "GPT2DoubleHeadsModel's head"),
            N("summary_first_dropout", "GPT2DoubleHeadsModel's head"),
        ];
        ConfigField[] gptj = [F("rotary_dim", "64"), F("tie_word_embeddings", "false")];
        ConfigField[] llamaCommon =
        [
            F("vocab_size", "required"), F("hidden_size", "required"), F("intermediate_size", "required"), F("num_hidden_layers", "required"),
            F("num_attention_heads", "required"), F("num_key_value_heads", "num_attention_heads"), F("head_dim", "hidden_size / num_attention_heads"),
            F("hidden_act", "silu", "the gate activation of the gated MLP"), F("max_position_embeddings", "2048", "sizes the RoPE tables; longer sequences are refused"),
            F("rms_norm_eps", "1e-06"), F("rope_theta", "10000"), F("rope_scaling", "null", "default, linear and llama3 implemented; other rope types refused"),
            F("rope_parameters", "null", "transformers v5 spelling of rope_theta + rope_scaling"),
            F("tie_word_embeddings", "false", "true: the embeddings are the output matrix, even where lm_head.weight is stored"),
            R("partial_rotary_factor", "1", "rotary on a fraction of each head is not implemented for the Llama family"),
            N("attention_dropout", "dropout: training only"),
        ];
        ConfigField[] llama =
        [
            F("attention_bias", "false"), F("mlp_bias", "false"),
            N("pretraining_tp", "splits the projections into slices whose products are summed: the same map up to float rounding"),
        ];
        ConfigField[] mistral = [F("sliding_window", "4096", "null: full attention")];
        ConfigField[] qwen2 =
        [
            F("use_sliding_window", "false"), F("sliding_window", "4096", "used only with use_sliding_window"),
            F("max_window_layers", "28", "layers from this index on use the sliding window"),
            F("layer_types", "from max_window_layers", "per layer full_attention or sliding_attention"),
        ];
        return new()
        {
            ["gpt2"] = [.. gptCommon, .. gpt2, .. common],
            ["gptj"] = [.. gptCommon, .. gptj, .. common],
            ["llama"] = [.. llamaCommon, .. llama, .. common],
            ["mistral"] = [.. llamaCommon, .. mistral, .. common],
            ["qwen2"] = [.. llamaCommon, .. qwen2, .. common],
        };
    }

    public static ModelConfig Load(string dir)
    {
        string path = Path.Combine(dir, "config.json");
        if (!File.Exists(path)) throw new KeditException($"{path}: not found (a model directory needs config.json)");
        JsonElement root;
        try { root = JsonDocument.Parse(File.ReadAllBytes(path)).RootElement; }
        catch (JsonException e) { throw new KeditException($"{path}: invalid JSON ({e.Message})"); }
        if (root.ValueKind != JsonValueKind.Object) throw new KeditException($"{path}: expected a JSON object");
        return Parse(root, path);
    }

    public static ModelConfig Parse(JsonElement j, string source)
    {
        var r = new FieldReader(j, source);
        string type = r.Str("model_type");
        if (!Fields.TryGetValue(type, out var fields))
            throw new KeditException($"{source}: model_type \"{type}\" is not supported (supported: {string.Join(", ", Fields.Keys)})");
        foreach (var f in fields)
            if (f.Role == FieldRole.Refused && r.Has(f.Name) && !r.Is(f.Name, f.Default))
                throw new KeditException($"{source}: {f.Name} {r.Raw(f.Name)} is not supported ({f.Note}; only {f.Default} is)");
        ModelConfig c = type switch
        {
            "gpt2" => Gpt2(r),
            "gptj" => GptJ(r),
            _ => Llama(r, type),
        };
        CheckSizes(c, r);
        return c with
        {
            BosTokenId = r.OptIndex("bos_token_id", c.VocabSize, "vocab_size"), EosTokenId = r.OptIndex("eos_token_id", c.VocabSize, "vocab_size"),
            TorchDtype = r.OptStr("torch_dtype") ?? r.OptStr("dtype") ?? "float32",
            MathFields = fields.Where(f => f.Role != FieldRole.NoEffect).Select(f => (f.Name, r.Has(f.Name) ? r.Raw(f.Name) : $"default ({f.Default})")).ToList(),
        };
    }

    /// <summary>Sizes that follow from several fields: each tensor must fit one array, the RoPE tables the stated ceiling.</summary>
    static void CheckSizes(ModelConfig c, FieldReader r)
    {
        long qkv = (long)(c.Heads + 2 * c.KvHeads) * c.HeadDim;
        var tensors = new List<(string, long, long)> { ("the embedding (vocab_size)", c.VocabSize, c.Hidden), ("a fused q/k/v projection (heads)", qkv, c.Hidden),
                                                       ("an MLP projection (intermediate size)", 2L * c.Intermediate, c.Hidden) };
        if (c.Architecture == Architecture.Gpt2) tensors.Add(("the position table (n_positions)", c.MaxPositions, c.Hidden));
        foreach (var (what, rows, cols) in tensors)
            if (rows * cols > Array.MaxLength)
                throw new KeditException($"{r.Source}: {what} would be [{rows}, {cols}], more than the {Array.MaxLength} values one array holds");
        if (c.Rope != RopeLayout.None && (long)c.MaxPositions * c.RotaryDim * sizeof(float) > MaxRopeTableBytes)
            throw new KeditException($"{r.Source}: max_position_embeddings {c.MaxPositions} with rotary dimension {c.RotaryDim} needs RoPE tables of {(long)c.MaxPositions * c.RotaryDim * 4 >> 20} MiB, over kedit's {MaxRopeTableBytes >> 20} MiB ceiling");
    }

    static ModelConfig Gpt2(FieldReader r)
    {
        var (d, heads, layers) = GptSizes(r);
        return new ModelConfig
        {
            ModelType = "gpt2", Architecture = Architecture.Gpt2,
            VocabSize = r.Size("vocab_size", MaxVocab), Hidden = d, Layers = layers, Heads = heads, KvHeads = heads,
            HeadDim = d / heads, Intermediate = r.OptSize("n_inner", MaxWidth * 4) ?? 4 * d, MaxPositions = r.Size("n_positions", int.MaxValue),
            NormEps = r.Epsilon("layer_norm_epsilon", 1e-5), Activation = Act(r, "activation_function", "gelu_new"),
            Rope = RopeLayout.None, TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? true, AttentionBias = true, MlpBias = true,
            ScaleAttnWeights = r.OptBool("scale_attn_weights") ?? true, ScaleAttnByInverseLayerIdx = r.OptBool("scale_attn_by_inverse_layer_idx") ?? false,
        };
    }

    static ModelConfig GptJ(FieldReader r)
    {
        var (d, heads, layers) = GptSizes(r);
        int headDim = d / heads;
        int rotary = r.OptInt("rotary_dim") ?? 64; // GPTJConfig's default
        if (rotary < 0 || rotary > headDim || rotary % 2 != 0)
            throw new KeditException($"{r.Source}: rotary_dim {rotary} must be even and between 0 and the head dimension {headDim}");
        return new ModelConfig
        {
            ModelType = "gptj", Architecture = Architecture.GptJ,
            VocabSize = r.Size("vocab_size", MaxVocab), Hidden = d, Layers = layers, Heads = heads, KvHeads = heads,
            HeadDim = headDim, Intermediate = r.OptSize("n_inner", MaxWidth * 4) ?? 4 * d, MaxPositions = r.Size("n_positions", int.MaxValue),
            NormEps = r.Epsilon("layer_norm_epsilon", 1e-5), Activation = Act(r, "activation_function", "gelu_new"),
            Rope = RopeLayout.Interleaved, RotaryDim = rotary, RopeTheta = 10000,
            TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? false, AttentionBias = false, MlpBias = true,
        };
    }

    static (int D, int Heads, int Layers) GptSizes(FieldReader r)
    {
        int d = r.Size("n_embd", MaxWidth), heads = r.Size("n_head", MaxWidth);
        if (d % heads != 0) throw new KeditException($"{r.Source}: n_embd ({d}) must be divisible by n_head ({heads})");
        return (d, heads, r.Size("n_layer", MaxLayers));
    }

    static ModelConfig Llama(FieldReader r, string type)
    {
        int d = r.Size("hidden_size", MaxWidth), heads = r.Size("num_attention_heads", MaxWidth), layers = r.Size("num_hidden_layers", MaxLayers);
        int headDim = r.OptSize("head_dim", MaxWidth) ?? (d % heads == 0 ? d / heads : throw new KeditException($"{r.Source}: hidden_size {d} is not divisible by num_attention_heads {heads} and head_dim is not given"));
        if (headDim % 2 != 0) throw new KeditException($"{r.Source}: head_dim {headDim} must be even (RoPE rotates pairs)");
        int kvHeads = r.OptSize("num_key_value_heads", MaxWidth) ?? heads;
        if (heads % kvHeads != 0) throw new KeditException($"{r.Source}: num_key_value_heads ({kvHeads}) must divide num_attention_heads ({heads})");
        var (theta, scaling) = ReadRope(r);
        return new ModelConfig
        {
            ModelType = type, Architecture = Architecture.Llama,
            VocabSize = r.Size("vocab_size", MaxVocab), Hidden = d, Layers = layers, Heads = heads,
            KvHeads = kvHeads, HeadDim = headDim, Intermediate = r.Size("intermediate_size", MaxWidth * 4),
            MaxPositions = r.OptSize("max_position_embeddings", int.MaxValue) ?? 2048,
            NormEps = r.Epsilon("rms_norm_eps", 1e-6), Activation = Act(r, "hidden_act", "silu"),
            Rope = RopeLayout.RotateHalf, RotaryDim = headDim, RopeTheta = theta, RopeScaling = scaling,
            TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? false,
            // qwen2 always has q/k/v biases; llama declares them with attention_bias; mistral has none (its code reads neither field).
            AttentionBias = type == "qwen2" || (type == "llama" && (r.OptBool("attention_bias") ?? false)),
            MlpBias = type == "llama" && (r.OptBool("mlp_bias") ?? false),
            LayerWindows = Windows(r, type, layers),
        };
    }

    /// <summary>rope_theta + rope_scaling, or their transformers v5 spelling rope_parameters (one or the other).</summary>
    static (double Theta, RopeScaling? Scaling) ReadRope(FieldReader r)
    {
        if (!r.Has("rope_parameters")) return (r.Positive("rope_theta", 10000), RopeScaling.Parse(r, "rope_scaling"));
        foreach (var old in new[] { "rope_theta", "rope_scaling" })
            if (r.Has(old)) throw new KeditException($"{r.Source}: both rope_parameters and {old} are given; kedit reads one spelling (drop {old})");
        var p = r.Object("rope_parameters");
        if (p.Has("partial_rotary_factor") && !p.Is("partial_rotary_factor", "1"))
            throw new KeditException($"{r.Source}: rope_parameters.partial_rotary_factor {p.Raw("partial_rotary_factor")} is not supported (rotary on a fraction of each head is not implemented for the Llama family; only 1 is)");
        return (p.Positive("rope_theta", 10000), RopeScaling.Parse(r, "rope_parameters"));
    }

    /// <summary>Mistral: one window for every layer; Qwen2: from max_window_layers on (or per layer_types), when use_sliding_window.</summary>
    static IReadOnlyList<int>? Windows(FieldReader r, string type, int layers)
    {
        if (type == "llama") return null;
        if (type == "qwen2" && !(r.OptBool("use_sliding_window") ?? false)) return null;
        // Both configuration classes default to 4096 when the key is absent; an explicit null means full attention.
        if (r.IsNull("sliding_window")) return null;
        int window = r.Has("sliding_window") ? r.Size("sliding_window", int.MaxValue) : 4096;
        if (type == "mistral") return Enumerable.Repeat(window, layers).ToArray();
        if (r.Has("layer_types"))
        {
            var kinds = r.StrList("layer_types");
            if (kinds.Count != layers) throw new KeditException($"{r.Source}: layer_types lists {kinds.Count} layers, num_hidden_layers is {layers}");
            return kinds.Select((k, i) => k switch
            {
                "full_attention" => int.MaxValue,
                "sliding_attention" => window,
                _ => throw new KeditException($"{r.Source}: layer_types[{i}] \"{k}\" is not supported (full_attention, sliding_attention)"),
            }).ToArray();
        }
        int from = r.OptInt("max_window_layers") ?? 28;
        if (from < 0) throw new KeditException($"{r.Source}: max_window_layers {from} must be ≥ 0");
        return Enumerable.Range(0, layers).Select(l => l >= from ? window : int.MaxValue).ToArray();
    }

    static Activation Act(FieldReader r, string field, string dflt)
    {
        string a = r.OptStr(field) ?? dflt;
        return a switch
        {
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Activation.GeluNew,
            "gelu" => Activation.GeluExact,
            "silu" or "swish" => Activation.Silu,
            _ => throw new KeditException($"{r.Source}: {field} \"{a}\" is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, silu, swish)"),
        };
    }
}

/// <summary>RoPE frequency scaling (Llama-3 style "llama3", or "linear").</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    /// <summary>Reads the rope_scaling (or rope_parameters) object; null for none or the default rope type.</summary>
    internal static RopeScaling? Parse(FieldReader r, string field)
    {
        if (!r.Has(field)) return null;
        var sr = r.Object(field);
        string type = sr.OptStr("rope_type") ?? sr.OptStr("type") ?? (field == "rope_parameters" ? "default" : sr.Str("type"));
        return type switch
        {
            "llama3" => Llama3(sr),
            "linear" => new RopeScaling(type, sr.Positive("factor", null), 0, 0, 0),
            "default" => null,
            _ => throw new KeditException($"{r.Source}: {field} type \"{type}\" is not supported (default, linear, llama3)"),
        };
    }

    static RopeScaling Llama3(FieldReader sr)
    {
        double low = sr.Positive("low_freq_factor", null), high = sr.Positive("high_freq_factor", null);
        if (!(high > low)) throw new KeditException($"{sr.Source}: high_freq_factor ({high}) must exceed low_freq_factor ({low})");
        return new RopeScaling("llama3", sr.Positive("factor", null), low, high, sr.Size("original_max_position_embeddings", int.MaxValue));
    }

    /// <summary>Applies the scaling to one inverse frequency.</summary>
    public double Scale(double invFreq)
    {
        if (Type == "linear") return invFreq / Factor;
        double lowWavelen = OriginalMaxPositions / LowFreqFactor, highWavelen = OriginalMaxPositions / HighFreqFactor;
        double wavelen = 2 * Math.PI / invFreq;
        if (wavelen < highWavelen) return invFreq;
        if (wavelen > lowWavelen) return invFreq / Factor;
        double smooth = (OriginalMaxPositions / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * invFreq / Factor + smooth * invFreq;
    }
}

/// <summary>Typed, range-checked access to JSON fields with errors that name the file and the field.</summary>
internal readonly struct FieldReader(JsonElement root, string source)
{
    public JsonElement Root { get; } = root;
    public string Source { get; } = source;

    /// <summary>Present with the value null (some fields mean something else by null than by their absence).</summary>
    public bool IsNull(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Null;

    /// <summary>Present and not null.</summary>
    public bool Has(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;
    public string Raw(string name) => Root.GetProperty(name).GetRawText();

    /// <summary>The field equals a JSON literal (numbers compared by value).</summary>
    public bool Is(string name, string literal)
    {
        var v = Root.GetProperty(name);
        using var lit = JsonDocument.Parse(literal);
        var l = lit.RootElement;
        if (v.ValueKind == JsonValueKind.Number && l.ValueKind == JsonValueKind.Number) return v.GetDouble() == l.GetDouble();
        return v.ValueKind == l.ValueKind && v.GetRawText() == l.GetRawText();
    }

    JsonElement Get(string name) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : throw new KeditException($"{Source}: missing field \"{name}\"");

    public int Int(string name) => AsInt(Get(name), name);
    public string Str(string name) => Get(name) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw new KeditException($"{Source}: field \"{name}\" must be a string");

    /// <summary>A size: an integer in 1..max.</summary>
    public int Size(string name, int max)
    {
        int v = Int(name);
        if (v < 1 || v > max) throw new KeditException($"{Source}: {name} is {v}; it must be between 1 and {max}");
        return v;
    }

    public int? OptSize(string name, int max) => Has(name) ? Size(name, max) : null;

    /// <summary>A token id (the first of a list, as newer configs give several): 0 ≤ id &lt; limit.</summary>
    public int? OptIndex(string name, int limit, string limitName)
    {
        if (!Has(name)) return null;
        var v = Root.GetProperty(name);
        if (v.ValueKind == JsonValueKind.Array)
        {
            if (v.GetArrayLength() == 0) return null;
            v = v[0];
        }
        int i = AsInt(v, name);
        if (i < 0 || i >= limit) throw new KeditException($"{Source}: {name} {i} is outside the vocabulary (0..{limit - 1}, {limitName} {limit})");
        return i;
    }

    /// <summary>A positive finite number, or <paramref name="dflt"/> when absent (null: required).</summary>
    public double Positive(string name, double? dflt)
    {
        double v = Has(name) || dflt == null ? AsDouble(Get(name), name) : dflt.Value;
        if (!(v > 0) || !double.IsFinite(v)) throw new KeditException($"{Source}: {name} is {v.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number");
        return v;
    }

    /// <summary>A norm epsilon: positive, finite and representable in float32.</summary>
    public float Epsilon(string name, double dflt)
    {
        double v = Positive(name, dflt);
        if ((float)v == 0 || float.IsInfinity((float)v)) throw new KeditException($"{Source}: {name} {v.ToString(CultureInfo.InvariantCulture)} is not representable in float32");
        return (float)v;
    }

    public int? OptInt(string name) => Has(name) ? Int(name) : null;
    public string? OptStr(string name) => Has(name) ? Str(name) : null;
    public bool? OptBool(string name) =>
        !Has(name) ? null : Root.GetProperty(name) is { ValueKind: JsonValueKind.True or JsonValueKind.False } v ? v.GetBoolean()
        : throw new KeditException($"{Source}: field \"{name}\" must be true or false");

    public FieldReader Object(string name) =>
        Get(name) is { ValueKind: JsonValueKind.Object } v ? new FieldReader(v, $"{Source} ({name})") : throw new KeditException($"{Source}: {name} must be an object or null");

    public List<string> StrList(string name) =>
        Get(name) is { ValueKind: JsonValueKind.Array } v && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
            ? v.EnumerateArray().Select(e => e.GetString()!).ToList()
            : throw new KeditException($"{Source}: {name} must be a list of strings");

    int AsInt(JsonElement v, string name) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new KeditException($"{Source}: field \"{name}\" must be an integer (got {v.GetRawText()})");

    double AsDouble(JsonElement v, string name) =>
        v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new KeditException($"{Source}: field \"{name}\" must be a number");
}
