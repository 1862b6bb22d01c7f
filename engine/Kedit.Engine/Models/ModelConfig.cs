using System.Text.Json;

namespace Kedit.Models;

/// <summary>The three block layouts the engine runs; Llama-family variants differ only by config.</summary>
public enum Architecture { Gpt2, GptJ, Llama }

public enum Activation { GeluNew, GeluExact, Silu }

/// <summary>RoPE pairing: GPT-J rotates interleaved pairs (2i, 2i+1); HF Llama rotates halves (i, i + hd/2).</summary>
public enum RopeLayout { None, Interleaved, RotateHalf }

/// <summary>
/// A Hugging Face config.json reduced to what the forward pass needs. Unknown model types are
/// errors, not guesses; every missing or ill-typed field is reported with the file name.
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
    public required Activation Activation { get; init; }
    public RopeLayout Rope { get; init; }
    public int RotaryDim { get; init; }
    public double RopeTheta { get; init; } = 10000;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    public bool MlpBias { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public string TorchDtype { get; init; } = "float32";

    /// <summary>Name of the weight whose input is the MLP key (the matrix knowledge edits rewrite).</summary>
    public string DownProjName(int layer) => Architecture switch
    {
        Architecture.Gpt2 => $"transformer.h.{layer}.mlp.c_proj.weight",
        Architecture.GptJ => $"transformer.h.{layer}.mlp.fc_out.weight",
        _ => $"model.layers.{layer}.mlp.down_proj.weight",
    };

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
        ModelConfig c = type switch
        {
            "gpt2" => Gpt2(r),
            "gptj" => GptJ(r),
            "llama" or "mistral" or "qwen2" => Llama(r, type),
            _ => throw new KeditException($"{source}: model_type \"{type}\" is not supported (supported: gpt2, gptj, llama, mistral, qwen2)"),
        };
        if (c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.VocabSize <= 0 || c.Intermediate <= 0)
            throw new KeditException($"{source}: sizes must be positive (hidden {c.Hidden}, layers {c.Layers}, heads {c.Heads}, vocab {c.VocabSize}, intermediate {c.Intermediate})");
        if (c.KvHeads <= 0 || c.Heads % c.KvHeads != 0)
            throw new KeditException($"{source}: num_key_value_heads ({c.KvHeads}) must divide num_attention_heads ({c.Heads})");
        if (c.RotaryDim % 2 != 0 || c.RotaryDim > c.HeadDim)
            throw new KeditException($"{source}: rotary dimension {c.RotaryDim} must be even and at most head_dim {c.HeadDim}");
        return c;
    }

    static ModelConfig Gpt2(FieldReader r)
    {
        int d = r.Int("n_embd"), heads = r.Int("n_head");
        CheckDivides(r, d, heads, "n_embd", "n_head");
        return new ModelConfig
        {
            ModelType = "gpt2", Architecture = Architecture.Gpt2,
            VocabSize = r.Int("vocab_size"), Hidden = d, Layers = r.Int("n_layer"), Heads = heads, KvHeads = heads,
            HeadDim = d / heads, Intermediate = r.OptInt("n_inner") ?? 4 * d, MaxPositions = r.Int("n_positions"),
            NormEps = (float)(r.OptDouble("layer_norm_epsilon") ?? 1e-5), Activation = Act(r, "activation_function", "gelu_new"),
            Rope = RopeLayout.None, TieWordEmbeddings = true, AttentionBias = true, MlpBias = true,
            BosTokenId = r.OptInt("bos_token_id"), EosTokenId = r.OptInt("eos_token_id"), TorchDtype = r.OptStr("torch_dtype") ?? "float32",
        };
    }

    static ModelConfig GptJ(FieldReader r)
    {
        int d = r.Int("n_embd"), heads = r.Int("n_head");
        CheckDivides(r, d, heads, "n_embd", "n_head");
        return new ModelConfig
        {
            ModelType = "gptj", Architecture = Architecture.GptJ,
            VocabSize = r.Int("vocab_size"), Hidden = d, Layers = r.Int("n_layer"), Heads = heads, KvHeads = heads,
            HeadDim = d / heads, Intermediate = r.OptInt("n_inner") ?? 4 * d, MaxPositions = r.Int("n_positions"),
            NormEps = (float)(r.OptDouble("layer_norm_epsilon") ?? 1e-5), Activation = Act(r, "activation_function", "gelu_new"),
            Rope = RopeLayout.Interleaved, RotaryDim = r.OptInt("rotary_dim") ?? d / heads, RopeTheta = 10000,
            TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? false, AttentionBias = false, MlpBias = true,
            BosTokenId = r.OptInt("bos_token_id"), EosTokenId = r.OptInt("eos_token_id"), TorchDtype = r.OptStr("torch_dtype") ?? "float32",
        };
    }

    static ModelConfig Llama(FieldReader r, string type)
    {
        int d = r.Int("hidden_size"), heads = r.Int("num_attention_heads");
        int headDim = r.OptInt("head_dim") ?? (d % heads == 0 ? d / heads : throw new KeditException($"{r.Source}: hidden_size {d} is not divisible by num_attention_heads {heads} and head_dim is not given"));
        return new ModelConfig
        {
            ModelType = type, Architecture = Architecture.Llama,
            VocabSize = r.Int("vocab_size"), Hidden = d, Layers = r.Int("num_hidden_layers"), Heads = heads,
            KvHeads = r.OptInt("num_key_value_heads") ?? heads, HeadDim = headDim, Intermediate = r.Int("intermediate_size"),
            MaxPositions = r.OptInt("max_position_embeddings") ?? 2048,
            NormEps = (float)(r.OptDouble("rms_norm_eps") ?? 1e-6), Activation = Act(r, "hidden_act", "silu"),
            Rope = RopeLayout.RotateHalf, RotaryDim = headDim, RopeTheta = r.OptDouble("rope_theta") ?? 10000,
            RopeScaling = RopeScaling.Parse(r),
            TieWordEmbeddings = r.OptBool("tie_word_embeddings") ?? false,
            // qwen2 always has q/k/v biases; llama declares them with attention_bias.
            AttentionBias = type == "qwen2" || (r.OptBool("attention_bias") ?? false), MlpBias = r.OptBool("mlp_bias") ?? false,
            BosTokenId = r.OptInt("bos_token_id"), EosTokenId = r.OptInt("eos_token_id"), TorchDtype = r.OptStr("torch_dtype") ?? "float32",
        };
    }

    static void CheckDivides(FieldReader r, int d, int heads, string dName, string hName)
    {
        if (heads <= 0 || d % heads != 0) throw new KeditException($"{r.Source}: {dName} ({d}) must be divisible by {hName} ({heads})");
    }

    static Activation Act(FieldReader r, string field, string dflt)
    {
        string a = r.OptStr(field) ?? dflt;
        return a switch
        {
            "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Activation.GeluNew,
            "gelu" => Activation.GeluExact,
            "silu" or "swish" => Activation.Silu,
            _ => throw new KeditException($"{r.Source}: {field} \"{a}\" is not supported (gelu_new, gelu, silu)"),
        };
    }
}

/// <summary>RoPE frequency scaling (Llama-3 style "llama3", or "linear").</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    internal static RopeScaling? Parse(FieldReader r)
    {
        if (!r.Root.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null) return null;
        if (s.ValueKind != JsonValueKind.Object) throw new KeditException($"{r.Source}: rope_scaling must be an object or null");
        var sr = new FieldReader(s, r.Source + " (rope_scaling)");
        string type = sr.OptStr("rope_type") ?? sr.Str("type");
        return type switch
        {
            "llama3" => new RopeScaling(type, sr.Double("factor"), sr.Double("low_freq_factor"), sr.Double("high_freq_factor"), sr.Int("original_max_position_embeddings")),
            "linear" => new RopeScaling(type, sr.Double("factor"), 0, 0, 0),
            "default" => null,
            _ => throw new KeditException($"{r.Source}: rope_scaling type \"{type}\" is not supported (llama3, linear)"),
        };
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

/// <summary>Typed access to JSON fields with errors that name the file and the field.</summary>
internal readonly struct FieldReader(JsonElement root, string source)
{
    public JsonElement Root { get; } = root;
    public string Source { get; } = source;

    JsonElement Get(string name) =>
        Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : throw new KeditException($"{Source}: missing field \"{name}\"");

    public int Int(string name) => AsInt(Get(name), name);
    public double Double(string name) => AsDouble(Get(name), name);
    public string Str(string name) => Get(name) is { ValueKind: JsonValueKind.String } v ? v.GetString()! : throw new KeditException($"{Source}: field \"{name}\" must be a string");

    public int? OptInt(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? OptIntOf(v, name) : null;
    public double? OptDouble(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? AsDouble(v, name) : null;
    public string? OptStr(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    public bool? OptBool(string name) => Root.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    int? OptIntOf(JsonElement v, string name) =>
        // eos_token_id may be a list in newer configs: take the first.
        v.ValueKind == JsonValueKind.Array ? (v.GetArrayLength() > 0 ? AsInt(v[0], name) : null) : AsInt(v, name);

    int AsInt(JsonElement v, string name) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new KeditException($"{Source}: field \"{name}\" must be an integer");

    double AsDouble(JsonElement v, string name) =>
        v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new KeditException($"{Source}: field \"{name}\" must be a number");
}
