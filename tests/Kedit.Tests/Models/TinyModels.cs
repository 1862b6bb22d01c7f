using System.Text.Json.Nodes;
using Kedit.IO;

namespace Kedit.Tests.Models;

/// <summary>
/// Two-layer models of every supported model_type, written as Hugging Face directories (config.json and
/// seeded weights under their HF names and layouts), and <see cref="Reference"/>: the forward pass as the
/// Hugging Face modelling code defines it, written from scratch in float64 with naive loops. It reads the
/// config with its own defaults and shares no code with the engine, so the engine is checked field by field
/// against an independent derivation.
/// </summary>
internal sealed class TinyModel : IDisposable
{
    TinyModel(string dir, JsonObject config, Dictionary<string, (long[] Shape, float[] Data)> tensors) { Dir = dir; Config = config; Tensors = tensors; }

    public string Dir { get; }
    public JsonObject Config { get; }
    public Dictionary<string, (long[] Shape, float[] Data)> Tensors { get; }

    /// <summary>The base config of a type: 2 layers, small widths, every field at its default unless needed.</summary>
    public static JsonObject BaseConfig(string type) => type switch
    {
        "gpt2" => new() { ["model_type"] = "gpt2", ["vocab_size"] = 40, ["n_positions"] = 32, ["n_embd"] = 24, ["n_layer"] = 2, ["n_head"] = 4 },
        "gptj" => new() { ["model_type"] = "gptj", ["vocab_size"] = 40, ["n_positions"] = 32, ["n_embd"] = 24, ["n_layer"] = 2, ["n_head"] = 4, ["rotary_dim"] = 4 },
        _ => new()
        {
            ["model_type"] = type, ["vocab_size"] = 40, ["hidden_size"] = 24, ["intermediate_size"] = 20, ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["max_position_embeddings"] = 32,
        },
    };

    /// <summary>
    /// Writes a model of <paramref name="type"/> with <paramref name="overrides"/> merged into its base config; the
    /// weights follow <paramref name="weightsConfig"/> when given (a config that disagrees with its checkpoint).
    /// lm_head.weight is always stored, different from the embeddings, so a tied model must ignore it.
    /// </summary>
    public static TinyModel Create(string type, JsonObject? overrides = null, int seed = 1, JsonObject? weightsConfig = null)
    {
        var config = Merge(BaseConfig(type), overrides);
        var tensors = Weights(weightsConfig ?? config, seed);
        string dir = Directory.CreateTempSubdirectory($"kedit-tiny-{type}-").FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors.Select(t => SafetensorsWriter.Entry.F32(t.Key, t.Value.Shape, t.Value.Data)));
        return new TinyModel(dir, config, tensors);
    }

    public static JsonObject Merge(JsonObject a, JsonObject? b)
    {
        var r = (JsonObject)a.DeepClone();
        if (b != null) foreach (var (k, v) in b) r[k] = v?.DeepClone();
        return r;
    }

    static int I(JsonObject c, string k, int dflt) => c[k] is JsonValue v ? int.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) : dflt;

    public static (int V, int D, int L, int H, int Kv, int Hd, int F, int P) Sizes(JsonObject c)
    {
        if (c["model_type"]!.GetValue<string>() is "gpt2" or "gptj")
        {
            int d = I(c, "n_embd", 0), h = I(c, "n_head", 0);
            return (I(c, "vocab_size", 0), d, I(c, "n_layer", 0), h, h, d / h, I(c, "n_inner", 4 * d), I(c, "n_positions", 0));
        }
        int dd = I(c, "hidden_size", 0), hh = I(c, "num_attention_heads", 0);
        return (I(c, "vocab_size", 0), dd, I(c, "num_hidden_layers", 0), hh, I(c, "num_key_value_heads", hh), I(c, "head_dim", dd / hh),
            I(c, "intermediate_size", 0), I(c, "max_position_embeddings", 2048));
    }

    static Dictionary<string, (long[] Shape, float[] Data)> Weights(JsonObject c, int seed)
    {
        string type = c["model_type"]!.GetValue<string>();
        var (V, d, L, H, Kv, hd, f, P) = Sizes(c);
        var rng = new Random(seed);
        var t = new Dictionary<string, (long[] Shape, float[] Data)>();
        void Add(string name, float scale, float center, params long[] shape)
        {
            var a = new float[shape.Aggregate(1L, (x, y) => x * y)];
            for (int i = 0; i < a.Length; i++) a[i] = center + scale * (float)(rng.NextDouble() * 2 - 1);
            t[name] = (shape, a);
        }
        float w = 0.5f;
        if (type == "gpt2")
        {
            Add("transformer.wte.weight", 1, 0, V, d); Add("transformer.wpe.weight", 0.5f, 0, P, d);
            for (int l = 0; l < L; l++)
            {
                string p = $"transformer.h.{l}.";
                Add(p + "ln_1.weight", 0.2f, 1, d); Add(p + "ln_1.bias", 0.1f, 0, d); Add(p + "ln_2.weight", 0.2f, 1, d); Add(p + "ln_2.bias", 0.1f, 0, d);
                Add(p + "attn.c_attn.weight", w, 0, d, 3 * d); Add(p + "attn.c_attn.bias", 0.1f, 0, 3 * d);
                Add(p + "attn.c_proj.weight", w, 0, d, d); Add(p + "attn.c_proj.bias", 0.1f, 0, d);
                Add(p + "mlp.c_fc.weight", w, 0, d, f); Add(p + "mlp.c_fc.bias", 0.1f, 0, f);
                Add(p + "mlp.c_proj.weight", w, 0, f, d); Add(p + "mlp.c_proj.bias", 0.1f, 0, d);
            }
            Add("transformer.ln_f.weight", 0.2f, 1, d); Add("transformer.ln_f.bias", 0.1f, 0, d);
            Add("lm_head.weight", 1, 0, V, d);
        }
        else if (type == "gptj")
        {
            Add("transformer.wte.weight", 1, 0, V, d);
            for (int l = 0; l < L; l++)
            {
                string p = $"transformer.h.{l}.";
                Add(p + "ln_1.weight", 0.2f, 1, d); Add(p + "ln_1.bias", 0.1f, 0, d);
                foreach (var m in new[] { "q_proj", "k_proj", "v_proj", "out_proj" }) Add(p + $"attn.{m}.weight", w, 0, d, d);
                Add(p + "mlp.fc_in.weight", w, 0, f, d); Add(p + "mlp.fc_in.bias", 0.1f, 0, f);
                Add(p + "mlp.fc_out.weight", w, 0, d, f); Add(p + "mlp.fc_out.bias", 0.1f, 0, d);
            }
            Add("transformer.ln_f.weight", 0.2f, 1, d); Add("transformer.ln_f.bias", 0.1f, 0, d);
            Add("lm_head.weight", 1, 0, V, d); Add("lm_head.bias", 0.2f, 0, V);
        }
        else
        {
            bool qkvBias = type == "qwen2" || (type == "llama" && c["attention_bias"]?.GetValue<bool>() == true);
            bool mlpBias = type == "llama" && c["mlp_bias"]?.GetValue<bool>() == true;
            Add("model.embed_tokens.weight", 1, 0, V, d);
            for (int l = 0; l < L; l++)
            {
                string p = $"model.layers.{l}.";
                Add(p + "input_layernorm.weight", 0.2f, 1, d); Add(p + "post_attention_layernorm.weight", 0.2f, 1, d);
                Add(p + "self_attn.q_proj.weight", w, 0, H * hd, d); Add(p + "self_attn.k_proj.weight", w, 0, Kv * hd, d);
                Add(p + "self_attn.v_proj.weight", w, 0, Kv * hd, d); Add(p + "self_attn.o_proj.weight", w, 0, d, H * hd);
                if (qkvBias) { Add(p + "self_attn.q_proj.bias", 0.2f, 0, H * hd); Add(p + "self_attn.k_proj.bias", 0.2f, 0, Kv * hd); Add(p + "self_attn.v_proj.bias", 0.2f, 0, Kv * hd); }
                if (type == "llama" && qkvBias) Add(p + "self_attn.o_proj.bias", 0.2f, 0, d);
                Add(p + "mlp.gate_proj.weight", w, 0, f, d); Add(p + "mlp.up_proj.weight", w, 0, f, d); Add(p + "mlp.down_proj.weight", w, 0, d, f);
                if (mlpBias) { Add(p + "mlp.gate_proj.bias", 0.2f, 0, f); Add(p + "mlp.up_proj.bias", 0.2f, 0, f); Add(p + "mlp.down_proj.bias", 0.2f, 0, d); }
            }
            Add("model.norm.weight", 0.2f, 1, d);
            Add("lm_head.weight", 1, 0, V, d);
        }
        return t;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>The Hugging Face forward of a <see cref="TinyModel"/> in float64: logits [T, V] of one sequence.</summary>
internal static class Reference
{
    public static double[] Logits(TinyModel m, int[] ids)
    {
        var c = m.Config;
        string type = c["model_type"]!.GetValue<string>();
        bool gpt = type is "gpt2" or "gptj", llama = !gpt;
        var (V, d, L, H, Kv, hd, f, P) = TinyModel.Sizes(c);
        int T = ids.Length;
        double[] W(string name) => m.Tensors[name].Data.Select(v => (double)v).ToArray();
        double[]? Opt(string name) => m.Tensors.ContainsKey(name) ? W(name) : null;
        double eps = Num(c, gpt ? "layer_norm_epsilon" : "rms_norm_eps", gpt ? 1e-5 : 1e-6);
        string act = Str(c, gpt ? "activation_function" : "hidden_act", gpt ? "gelu_new" : "silu");

        // Embeddings (GPT-2 adds learned positions).
        var x = new double[T, d];
        var wte = W(type == "gpt2" || type == "gptj" ? "transformer.wte.weight" : "model.embed_tokens.weight");
        var wpe = type == "gpt2" ? W("transformer.wpe.weight") : null;
        for (int t = 0; t < T; t++) for (int k = 0; k < d; k++) x[t, k] = wte[ids[t] * d + k] + (wpe?[t * d + k] ?? 0);

        for (int l = 0; l < L; l++)
        {
            string p = gpt ? $"transformer.h.{l}." : $"model.layers.{l}.";
            var h = gpt ? LayerNorm(x, W(p + "ln_1.weight"), W(p + "ln_1.bias"), eps) : RmsNorm(x, W(p + "input_layernorm.weight"), eps);
            double[,] q, k, v;
            if (type == "gpt2")
            {
                var qkv = Conv1D(h, W(p + "attn.c_attn.weight"), W(p + "attn.c_attn.bias"), 3 * d);
                q = Cols(qkv, 0, d); k = Cols(qkv, d, d); v = Cols(qkv, 2 * d, d);
            }
            else if (type == "gptj")
            {
                q = Linear(h, W(p + "attn.q_proj.weight"), null, d); k = Linear(h, W(p + "attn.k_proj.weight"), null, d); v = Linear(h, W(p + "attn.v_proj.weight"), null, d);
            }
            else
            {
                q = Linear(h, W(p + "self_attn.q_proj.weight"), Opt(p + "self_attn.q_proj.bias"), H * hd);
                k = Linear(h, W(p + "self_attn.k_proj.weight"), Opt(p + "self_attn.k_proj.bias"), Kv * hd);
                v = Linear(h, W(p + "self_attn.v_proj.weight"), Opt(p + "self_attn.v_proj.bias"), Kv * hd);
            }
            if (type == "gptj") { int rd = (int)Num(c, "rotary_dim", 64); RotateInterleaved(q, H, hd, rd); RotateInterleaved(k, Kv, hd, rd); }
            if (llama) { var freqs = LlamaFrequencies(c, hd); RotateHalf(q, H, hd, freqs); RotateHalf(k, Kv, hd, freqs); }

            double scale = 1 / Math.Sqrt(hd);
            if (type == "gpt2")
            {
                if (!Bool(c, "scale_attn_weights", true)) scale = 1;
                if (Bool(c, "scale_attn_by_inverse_layer_idx", false)) scale /= l + 1;
            }
            int window = Window(c, type, l);
            var att = new double[T, H * hd];
            for (int head = 0; head < H; head++)
            {
                int kvh = head / (H / Kv);
                for (int i = 0; i < T; i++)
                {
                    var s = new double[T];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j <= i; j++)
                    {
                        if (i - j >= window) { s[j] = double.NegativeInfinity; continue; }
                        double dot = 0;
                        for (int e = 0; e < hd; e++) dot += q[i, head * hd + e] * k[j, kvh * hd + e];
                        s[j] = dot * scale;
                        max = Math.Max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) { s[j] = Math.Exp(s[j] - max); sum += s[j]; }
                    for (int j = 0; j <= i; j++)
                        for (int e = 0; e < hd; e++) att[i, head * hd + e] += s[j] / sum * v[j, kvh * hd + e];
                }
            }
            var ao = type == "gpt2" ? Conv1D(att, W(p + "attn.c_proj.weight"), W(p + "attn.c_proj.bias"), d)
                   : type == "gptj" ? Linear(att, W(p + "attn.out_proj.weight"), null, d)
                   : Linear(att, W(p + "self_attn.o_proj.weight"), Opt(p + "self_attn.o_proj.bias"), d);
            if (type == "gptj")
            {
                var mlp = Linear(Act(Linear(h, W(p + "mlp.fc_in.weight"), W(p + "mlp.fc_in.bias"), f), act), W(p + "mlp.fc_out.weight"), W(p + "mlp.fc_out.bias"), d);
                x = Sum(x, Sum(ao, mlp));
                continue;
            }
            x = Sum(x, ao);
            if (type == "gpt2")
            {
                var h2 = LayerNorm(x, W(p + "ln_2.weight"), W(p + "ln_2.bias"), eps);
                x = Sum(x, Conv1D(Act(Conv1D(h2, W(p + "mlp.c_fc.weight"), W(p + "mlp.c_fc.bias"), f), act), W(p + "mlp.c_proj.weight"), W(p + "mlp.c_proj.bias"), d));
            }
            else
            {
                var h2 = RmsNorm(x, W(p + "post_attention_layernorm.weight"), eps);
                var gate = Act(Linear(h2, W(p + "mlp.gate_proj.weight"), Opt(p + "mlp.gate_proj.bias"), f), act);
                var up = Linear(h2, W(p + "mlp.up_proj.weight"), Opt(p + "mlp.up_proj.bias"), f);
                for (int t = 0; t < T; t++) for (int e = 0; e < f; e++) gate[t, e] *= up[t, e];
                x = Sum(x, Linear(gate, W(p + "mlp.down_proj.weight"), Opt(p + "mlp.down_proj.bias"), d));
            }
        }
        var final = gpt ? LayerNorm(x, W("transformer.ln_f.weight"), W("transformer.ln_f.bias"), eps) : RmsNorm(x, W("model.norm.weight"), eps);
        bool tied = Bool(c, "tie_word_embeddings", type == "gpt2");
        // Tying shares the weight only: GPT-J's lm_head keeps its own bias.
        var logits = Linear(final, tied ? wte : W("lm_head.weight"), Opt("lm_head.bias"), V);
        var r = new double[T * V];
        for (int t = 0; t < T; t++) for (int e = 0; e < V; e++) r[t * V + e] = logits[t, e];
        return r;
    }

    static double Num(JsonObject c, string k, double dflt) => c[k] is JsonValue v ? double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) : dflt;
    static string Str(JsonObject c, string k, string dflt) => c[k] is JsonValue v ? v.GetValue<string>() : dflt;
    static bool Bool(JsonObject c, string k, bool dflt) => c[k] is JsonValue v ? v.GetValue<bool>() : dflt;

    /// <summary>Mistral: sliding_window (4096 when the key is absent, none when null) on every layer; Qwen2: with use_sliding_window, per layer_types or from max_window_layers on.</summary>
    static int Window(JsonObject c, string type, int layer)
    {
        if (type == "mistral") return !c.ContainsKey("sliding_window") ? 4096 : c["sliding_window"] is JsonValue ? (int)Num(c, "sliding_window", 0) : int.MaxValue;
        if (type != "qwen2" || !Bool(c, "use_sliding_window", false) || (c.ContainsKey("sliding_window") && c["sliding_window"] is null)) return int.MaxValue;
        int w = (int)Num(c, "sliding_window", 4096);
        bool sliding = c["layer_types"] is JsonArray types ? types[layer]!.GetValue<string>() == "sliding_attention" : layer >= (int)Num(c, "max_window_layers", 28);
        return sliding ? w : int.MaxValue;
    }

    /// <summary>inv_freq as transformers' rope initialisation computes it (default, linear, llama3).</summary>
    static double[] LlamaFrequencies(JsonObject c, int hd)
    {
        var rp = c["rope_parameters"] as JsonObject;
        var rs = rp ?? c["rope_scaling"] as JsonObject;
        double theta = rp != null ? Num(rp, "rope_theta", 10000) : Num(c, "rope_theta", 10000);
        var inv = new double[hd / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1 / Math.Pow(theta, 2.0 * i / hd);
        string kind = rs == null ? "default" : rs["rope_type"]?.GetValue<string>() ?? rs["type"]!.GetValue<string>();
        for (int i = 0; i < inv.Length; i++)
        {
            if (kind == "linear") inv[i] /= Num(rs!, "factor", 1);
            if (kind != "llama3") continue;
            double factor = Num(rs!, "factor", 0), lo = Num(rs!, "low_freq_factor", 0), hi = Num(rs!, "high_freq_factor", 0), old = Num(rs!, "original_max_position_embeddings", 0);
            double wavelen = 2 * Math.PI / inv[i];
            if (wavelen > old / lo) inv[i] /= factor;
            else if (wavelen >= old / hi)
            {
                double smooth = (old / wavelen - lo) / (hi - lo);
                inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
            }
        }
        return inv;
    }

    static void RotateHalf(double[,] x, int heads, int hd, double[] inv)
    {
        for (int t = 0; t < x.GetLength(0); t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++)
                {
                    double a = x[t, h * hd + i], b = x[t, h * hd + i + hd / 2], cs = Math.Cos(t * inv[i]), sn = Math.Sin(t * inv[i]);
                    x[t, h * hd + i] = a * cs - b * sn;
                    x[t, h * hd + i + hd / 2] = b * cs + a * sn;
                }
    }

    static void RotateInterleaved(double[,] x, int heads, int hd, int rd)
    {
        for (int t = 0; t < x.GetLength(0); t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < rd / 2; i++)
                {
                    double ang = t / Math.Pow(10000, 2.0 * i / rd);
                    double a = x[t, h * hd + 2 * i], b = x[t, h * hd + 2 * i + 1];
                    x[t, h * hd + 2 * i] = a * Math.Cos(ang) - b * Math.Sin(ang);
                    x[t, h * hd + 2 * i + 1] = b * Math.Cos(ang) + a * Math.Sin(ang);
                }
    }

    static double[,] Act(double[,] x, string act)
    {
        var r = (double[,])x.Clone();
        for (int t = 0; t < r.GetLength(0); t++)
            for (int e = 0; e < r.GetLength(1); e++)
            {
                double u = r[t, e];
                r[t, e] = act switch
                {
                    "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => 0.5 * u * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (u + 0.044715 * u * u * u))),
                    "gelu" => 0.5 * u * (1 + Erf(u / Math.Sqrt(2))),
                    "silu" or "swish" => u / (1 + Math.Exp(-u)),
                    _ => throw new ArgumentException(act),
                };
            }
        return r;
    }

    /// <summary>erf by its Maclaurin series (|x| ≤ 6 here; terms alternate and are summed in float64 until negligible).</summary>
    static double Erf(double x)
    {
        if (Math.Abs(x) > 6) return Math.Sign(x);
        double sum = 0, term = x;
        for (int n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    static double[,] LayerNorm(double[,] x, double[] g, double[] b, double eps)
    {
        int T = x.GetLength(0), d = x.GetLength(1);
        var r = new double[T, d];
        for (int t = 0; t < T; t++)
        {
            double mean = 0, var = 0;
            for (int e = 0; e < d; e++) mean += x[t, e] / d;
            for (int e = 0; e < d; e++) var += (x[t, e] - mean) * (x[t, e] - mean) / d;
            for (int e = 0; e < d; e++) r[t, e] = (x[t, e] - mean) / Math.Sqrt(var + eps) * g[e] + b[e];
        }
        return r;
    }

    static double[,] RmsNorm(double[,] x, double[] g, double eps)
    {
        int T = x.GetLength(0), d = x.GetLength(1);
        var r = new double[T, d];
        for (int t = 0; t < T; t++)
        {
            double ms = 0;
            for (int e = 0; e < d; e++) ms += x[t, e] * x[t, e] / d;
            for (int e = 0; e < d; e++) r[t, e] = x[t, e] / Math.Sqrt(ms + eps) * g[e];
        }
        return r;
    }

    /// <summary>nn.Linear: y = x·Wᵀ + b with W stored [out, in].</summary>
    static double[,] Linear(double[,] x, double[] w, double[]? b, int outDim)
    {
        int T = x.GetLength(0), inDim = x.GetLength(1);
        var y = new double[T, outDim];
        for (int t = 0; t < T; t++)
            for (int o = 0; o < outDim; o++)
            {
                double s = b?[o] ?? 0;
                for (int i = 0; i < inDim; i++) s += x[t, i] * w[o * inDim + i];
                y[t, o] = s;
            }
        return y;
    }

    /// <summary>GPT-2's Conv1D: y = x·W + b with W stored [in, out].</summary>
    static double[,] Conv1D(double[,] x, double[] w, double[] b, int outDim)
    {
        int T = x.GetLength(0), inDim = x.GetLength(1);
        var y = new double[T, outDim];
        for (int t = 0; t < T; t++)
            for (int o = 0; o < outDim; o++)
            {
                double s = b[o];
                for (int i = 0; i < inDim; i++) s += x[t, i] * w[i * outDim + o];
                y[t, o] = s;
            }
        return y;
    }

    static double[,] Cols(double[,] x, int from, int n)
    {
        var r = new double[x.GetLength(0), n];
        for (int t = 0; t < x.GetLength(0); t++) for (int e = 0; e < n; e++) r[t, e] = x[t, from + e];
        return r;
    }

    static double[,] Sum(double[,] a, double[,] b)
    {
        var r = (double[,])a.Clone();
        for (int t = 0; t < a.GetLength(0); t++) for (int e = 0; e < a.GetLength(1); e++) r[t, e] += b[t, e];
        return r;
    }
}
