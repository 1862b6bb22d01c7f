using System.Text.Json.Nodes;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Training;

/// <summary>One trainable tensor: its HF name, shape, values, and whether weight decay applies.</summary>
public sealed record NamedParameter(string Name, long[] Shape, float[] Values, bool Decay);

/// <summary>
/// Builds, lists and saves the parameters of a GPT-2 model in Hugging Face layout (Conv1D weights
/// stored [in, out], lm_head tied to wte), so the engine's loader reads what the trainer writes.
/// </summary>
public static class GptParameters
{
    /// <summary>The GPT-2 config a recipe describes (gelu_new, LayerNorm ε 1e-5, d_ff = 4d).</summary>
    public static ModelConfig Config(TrainingRecipe r, int vocabSize, int? eosId) => new()
    {
        ModelType = "gpt2", Architecture = Architecture.Gpt2, VocabSize = vocabSize, Hidden = r.Hidden, Layers = r.Layers,
        Heads = r.Heads, KvHeads = r.Heads, HeadDim = r.Hidden / r.Heads, Intermediate = 4 * r.Hidden, MaxPositions = r.Positions,
        NormEps = 1e-5f, Activation = Activation.GeluNew, Rope = RopeLayout.None, TieWordEmbeddings = true,
        AttentionBias = true, MlpBias = true, BosTokenId = eosId, EosTokenId = eosId,
    };

    /// <summary>
    /// GPT-2 initialisation from a seed: weights and embeddings ~ N(0, std²), the two residual
    /// projections (attn.c_proj, mlp.c_proj) ~ N(0, (std/√(2·layers))²), LayerNorm γ = 1, β = 0, biases 0.
    /// </summary>
    public static ModelWeights Initialize(ModelConfig c, int seed, double std)
    {
        var rng = new Random(seed);
        int d = c.Hidden, f = c.Intermediate, V = c.VocabSize;
        double residualStd = std / Math.Sqrt(2.0 * c.Layers);
        float[] Normal(long n, double s) { var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)(s * Gaussian(rng)); return a; }
        float[] Ones(int n) { var a = new float[n]; Array.Fill(a, 1f); return a; }

        var wte = Normal((long)V * d, std);
        var wpe = Normal((long)c.MaxPositions * d, std);
        var layers = new LayerWeights[c.Layers];
        for (int i = 0; i < c.Layers; i++)
        {
            string p = $"transformer.h.{i}.";
            layers[i] = new LayerWeights
            {
                Norm1Gamma = Ones(d), Norm1Beta = new float[d], Norm2Gamma = Ones(d), Norm2Beta = new float[d],
                Qkv = new Linear(p + "attn.c_attn.weight", Normal((long)d * 3 * d, std), new float[3 * d], d, 3 * d, true),
                AttnOut = new Linear(p + "attn.c_proj.weight", Normal((long)d * d, residualStd), new float[d], d, d, true),
                MlpIn = new Linear(p + "mlp.c_fc.weight", Normal((long)d * f, std), new float[f], d, f, true),
                MlpOut = new Linear(p + "mlp.c_proj.weight", Normal((long)f * d, residualStd), new float[d], f, d, true),
            };
        }
        return Assemble(c, wte, wpe, layers, Ones(d), new float[d]);
    }

    /// <summary>Wraps parameter arrays as <see cref="ModelWeights"/> (lm_head shares wte's array).</summary>
    internal static ModelWeights Assemble(ModelConfig c, float[] wte, float[] wpe, LayerWeights[] layers, float[] lnfG, float[] lnfB)
    {
        var w = new ModelWeights
        {
            TokenEmbedding = wte, PositionEmbedding = wpe, Layers = layers, FinalNormGamma = lnfG, FinalNormBeta = lnfB,
            LmHead = new Linear("lm_head.weight", wte, null, c.Hidden, c.VocabSize, false),
            StoredDTypes = new Dictionary<string, DType>(),
        };
        long count = List(c, w).Sum(p => (long)p.Values.Length);
        return new ModelWeights
        {
            TokenEmbedding = wte, PositionEmbedding = wpe, Layers = layers, FinalNormGamma = lnfG, FinalNormBeta = lnfB, LmHead = w.LmHead,
            StoredDTypes = List(c, w).ToDictionary(p => p.Name, _ => DType.F32),
            ParameterCount = count, StoredBytes = count * 4,
        };
    }

    /// <summary>Every distinct parameter with its HF GPT-2 name; the tied lm_head is not listed twice.</summary>
    public static IReadOnlyList<NamedParameter> List(ModelConfig c, ModelWeights w)
    {
        int d = c.Hidden, f = c.Intermediate;
        if (w.PositionEmbedding == null) throw new KeditException("a GPT-2 model needs position embeddings (transformer.wpe.weight)");
        if (!ReferenceEquals(w.LmHead.Weight, w.TokenEmbedding)) throw new KeditException("training supports only a tied lm_head (GPT-2 layout)");
        var list = new List<NamedParameter>
        {
            new("transformer.wte.weight", [c.VocabSize, d], w.TokenEmbedding, true),
            new("transformer.wpe.weight", [c.MaxPositions, d], w.PositionEmbedding, true),
        };
        for (int i = 0; i < c.Layers; i++)
        {
            var l = w.Layers[i]; string p = $"transformer.h.{i}.";
            list.Add(new(p + "ln_1.weight", [d], l.Norm1Gamma, false));
            list.Add(new(p + "ln_1.bias", [d], l.Norm1Beta!, false));
            list.Add(new(p + "attn.c_attn.weight", [d, 3 * d], l.Qkv.Weight, true));
            list.Add(new(p + "attn.c_attn.bias", [3 * d], l.Qkv.Bias!, false));
            list.Add(new(p + "attn.c_proj.weight", [d, d], l.AttnOut.Weight, true));
            list.Add(new(p + "attn.c_proj.bias", [d], l.AttnOut.Bias!, false));
            list.Add(new(p + "ln_2.weight", [d], l.Norm2Gamma!, false));
            list.Add(new(p + "ln_2.bias", [d], l.Norm2Beta!, false));
            list.Add(new(p + "mlp.c_fc.weight", [d, f], l.MlpIn.Weight, true));
            list.Add(new(p + "mlp.c_fc.bias", [f], l.MlpIn.Bias!, false));
            list.Add(new(p + "mlp.c_proj.weight", [f, d], l.MlpOut.Weight, true));
            list.Add(new(p + "mlp.c_proj.bias", [d], l.MlpOut.Bias!, false));
        }
        list.Add(new("transformer.ln_f.weight", [d], w.FinalNormGamma, false));
        list.Add(new("transformer.ln_f.bias", [d], w.FinalNormBeta!, false));
        return list;
    }

    /// <summary>Writes model.safetensors (atomically) and config.json into <paramref name="dir"/>.</summary>
    public static void Save(string dir, ModelConfig c, ModelWeights w, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(dir);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        SafetensorsWriter.Write(Path.Combine(dir, TensorStore.SingleFileName),
            List(c, w).Select(p => SafetensorsWriter.Entry.F32(p.Name, p.Shape, p.Values)), meta);
        WriteConfig(dir, c);
    }

    /// <summary>Writes a Hugging Face GPT-2 config.json.</summary>
    public static void WriteConfig(string dir, ModelConfig c)
    {
        var j = new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["model_type"] = "gpt2",
            ["vocab_size"] = c.VocabSize,
            ["n_embd"] = c.Hidden,
            ["n_layer"] = c.Layers,
            ["n_head"] = c.Heads,
            ["n_positions"] = c.MaxPositions,
            ["n_ctx"] = c.MaxPositions,
            ["n_inner"] = null,
            ["activation_function"] = "gelu_new",
            ["layer_norm_epsilon"] = 1e-5,
            ["initializer_range"] = 0.02,
            ["resid_pdrop"] = 0.0,
            ["embd_pdrop"] = 0.0,
            ["attn_pdrop"] = 0.0,
            ["scale_attn_weights"] = true,
            ["tie_word_embeddings"] = true,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["torch_dtype"] = "float32",
        };
        AtomicOutput.WriteAllText(Path.Combine(dir, "config.json"), j.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Standard normal by Box–Muller (deterministic for a seeded <see cref="Random"/>).</summary>
    internal static double Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
