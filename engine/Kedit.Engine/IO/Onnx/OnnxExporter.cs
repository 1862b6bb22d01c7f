using System.Globalization;
using System.Security.Cryptography;
using Kedit.Backends;
using Kedit.Models;

namespace Kedit.IO.Onnx;

/// <summary>What <see cref="OnnxExporter.Export"/> writes besides the graph.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Layers whose MLP down projection is a graph input named after its safetensors tensor instead of an initializer.</summary>
    public IReadOnlyList<int> EditedLayers { get; init; } = [];
    /// <summary>Initializers above this many bytes in total go to FILE.onnx.data (protobuf messages stop at 2 GiB).</summary>
    public long ExternalDataThreshold { get; init; } = (2L << 30) - (64L << 20);
    /// <summary>
    /// Store the model's weight initializers as float16 (half the file), each widened by a Cast node where the graph reads it;
    /// the computation stays float32. RoPE tables stay float32 (the engine's own, not weights), and bound edited layers are
    /// float32 inputs. A model stored in F16 exports exactly; F32 or BF16 weights are rounded to the nearest half.
    /// </summary>
    public bool Float16Weights { get; init; }
}

/// <summary>
/// Exports a loaded model's decoder as an ONNX graph (opset <see cref="Opset"/>) that computes what
/// <see cref="Transformer.Forward(TokenBatch, KvCache, ForwardOptions?)"/> computes: same norms, RoPE
/// tables (the engine's own, as initializers), attention scale and sliding windows, MLP and head.
/// Inputs follow Optimum's decoder-with-past layout: input_ids, attention_mask [batch, past + sequence],
/// position_ids, past_key_values.{i}.key/value [batch, kv_heads, past, head_dim]; outputs logits
/// [batch, sequence, vocab] and present.{i}.key/value. Weights keep their stored layout (a Transpose
/// node where nn.Linear stores [out, in]) so an edited tensor binds as the engine holds it.
/// </summary>
public static class OnnxExporter
{
    public const int Opset = 17, IrVersion = 8;

    public static void Export(Transformer model, string outPath, OnnxExportOptions? options = null)
    {
        options ??= new OnnxExportOptions();
        var c = model.Config;
        foreach (int l in options.EditedLayers)
            if (l < 0 || l >= c.Layers) throw new KeditException($"--edited-layers: layer {l} does not exist ({model.Directory ?? "the model"} has layers 0..{c.Layers - 1})");

        var g = Build(model, options.EditedLayers.ToHashSet(), options.Float16Weights);
        var metadata = new Dictionary<string, string>
        {
            ["kedit.architecture"] = c.ModelType, ["kedit.opset"] = Opset.ToString(CultureInfo.InvariantCulture),
            ["kedit.weights_dtype"] = options.Float16Weights ? "f16" : "f32",
        };
        if (model.Directory != null)
        {
            metadata["kedit.source_model_sha256"] = ModelHash(model.Directory);
            string journal = Path.Combine(model.Directory, "journal.json");
            if (File.Exists(journal)) metadata["kedit.edit_journal_id"] = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(journal))).ToLowerInvariant();
        }
        if (options.EditedLayers.Count > 0) metadata["kedit.edited_layers"] = string.Join(",", options.EditedLayers.Order());

        // Written beside the target under temporary names and renamed at the end: a failure leaves no partial file.
        string full = Path.GetFullPath(outPath);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new KeditException($"{outPath}: directory {dir} does not exist");
        bool external = g.WeightBytes > options.ExternalDataThreshold;
        string dataName = Path.GetFileName(full) + ".data";
        string tmpModel = Path.Combine(dir, $".{Path.GetFileName(full)}.kedit-tmp-{Guid.NewGuid():N}");
        string tmpData = tmpModel + ".data";
        try
        {
            using (var ms = new FileStream(tmpModel, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            using (var ds = external ? new FileStream(tmpData, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20) : null)
                g.Write(ms, ds, external ? dataName : null, IrVersion, Opset, $"kedit_{c.ModelType}_decoder", metadata);
            if (external) File.Move(tmpData, Path.Combine(dir, dataName), overwrite: true);
            File.Move(tmpModel, full, overwrite: true);
        }
        finally
        {
            File.Delete(tmpModel);
            File.Delete(tmpData);
        }
    }

    /// <summary>SHA-256 over config.json and the model's safetensors files (name-sorted), the identity of the exported weights.</summary>
    public static string ModelHash(string dir)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = Directory.GetFiles(dir, "model*.safetensors").Order(StringComparer.Ordinal).Prepend(Path.Combine(dir, "config.json"));
        var buf = new byte[1 << 20];
        foreach (var f in files)
        {
            using var s = File.OpenRead(f);
            int n;
            while ((n = s.Read(buf)) > 0) h.AppendData(buf, 0, n);
        }
        return Convert.ToHexString(h.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The name of layer <paramref name="l"/>'s present key (value) output; the past input is past_key_values.{l}.key.</summary>
    public static string PresentName(int l, bool value) => $"present.{l}.{(value ? "value" : "key")}";
    public static string PastName(int l, bool value) => $"past_key_values.{l}.{(value ? "value" : "key")}";

    static OnnxGraph Build(Transformer model, HashSet<int> edited, bool float16)
    {
        var c = model.Config; var w = model.Weights; var g = new OnnxGraph(float16);
        int H = c.Heads, KV = c.KvHeads, hd = c.HeadDim, qd = H * hd, kvd = KV * hd, d = c.Hidden;
        g.Input("input_ids", OnnxType.Int64, "batch", "sequence");
        g.Input("attention_mask", OnnxType.Int64, "batch", "total_sequence");
        g.Input("position_ids", OnnxType.Int64, "batch", "sequence");
        for (int l = 0; l < c.Layers; l++)
            for (int v = 0; v < 2; v++) g.Input(PastName(l, v == 1), OnnxType.Float, "batch", KV, "past_sequence", hd);
        foreach (int l in edited.Order())
        {
            var lin = w.Layers[l].MlpOut;
            g.Input(lin.Name, OnnxType.Float, lin.InputMajor ? lin.In : lin.Out, lin.InputMajor ? lin.Out : lin.In);
        }

        // Positions of this call's queries (past .. past+T-1) and of every key (0 .. past+T-1): the causal mask, and the padding mask.
        string T = g.Node("Shape", ["input_ids"], [OnnxAttr.I("start", 1), OnnxAttr.I("end", 2)]);
        string P = g.Node("Shape", [PastName(0, false)], [OnnxAttr.I("start", 2), OnnxAttr.I("end", 3)]);
        string S = g.Node("Add", [P, T]);
        string Ps = g.Node("Squeeze", [P]), Ss = g.Node("Squeeze", [S]);
        string keyPos = g.Node("Range", [g.Scalar(0), Ss, g.Scalar(1)]);
        string queryPos = g.Node("Unsqueeze", [g.Node("Range", [Ps, Ss, g.Scalar(1)]), g.Ints(1)]);
        string causal = g.Node("LessOrEqual", [keyPos, queryPos]);                                               // [T, S]
        string padding = g.Node("Unsqueeze", [g.Node("Cast", ["attention_mask"], [OnnxAttr.I("to", (int)OnnxType.Bool)]), g.Ints(1, 2)]); // [B, 1, 1, S]
        string fullMask = g.Node("And", [causal, padding]);                                                      // [B, 1, T, S]
        var masks = new Dictionary<int, string>();
        string MaskFor(int window)
        {
            if (window == int.MaxValue) return fullMask;
            if (masks.TryGetValue(window, out var m)) return m;
            // query i sees key j only when i − j < window
            string near = g.Node("Less", [g.Node("Sub", [queryPos, keyPos]), g.Scalar(window)]);
            return masks[window] = g.Node("And", [fullMask, near]);
        }

        string x = g.Node("Gather", [g.Weight(EmbeddingName(c), w.TokenEmbedding, c.VocabSize, d), "input_ids"], [OnnxAttr.I("axis", 0)]);
        if (w.PositionEmbedding != null)
            x = g.Node("Add", [x, g.Node("Gather", [g.Weight("transformer.wpe.weight", w.PositionEmbedding, c.MaxPositions, d), "position_ids"], [OnnxAttr.I("axis", 0)])]);

        string? cos = null, sin = null;
        if (c.Rope != RopeLayout.None)
        {
            var tables = new RopeTables(c.MaxPositions, c.RotaryDim, c.RopeTheta, c.RopeScaling);
            // [B, T, 1, half] (rotate-half) or [B, T, 1, half, 1] (interleaved pairs): broadcast over heads (and the pair).
            var axes = c.Rope == RopeLayout.Interleaved ? g.Ints(2, 4) : g.Ints(2);
            cos = g.Node("Unsqueeze", [g.Node("Gather", [g.Table("rope.cos", tables.Cos, c.MaxPositions, tables.Half), "position_ids"], [OnnxAttr.I("axis", 0)]), axes]);
            sin = g.Node("Unsqueeze", [g.Node("Gather", [g.Table("rope.sin", tables.Sin, c.MaxPositions, tables.Half), "position_ids"], [OnnxAttr.I("axis", 0)]), axes]);
        }

        for (int l = 0; l < c.Layers; l++)
        {
            var lw = w.Layers[l];
            string h = Norm(g, c, x, lw.Norm1Gamma, lw.Norm1Beta, $"layer{l}.norm1");
            var qkv = g.Nodes("Split", [Linear(g, h, lw.Qkv), g.Ints(qd, kvd, kvd)], 3, [OnnxAttr.I("axis", -1)]);
            string q = g.Node("Reshape", [qkv[0], g.Ints(0, 0, H, hd)]);
            string k = g.Node("Reshape", [qkv[1], g.Ints(0, 0, KV, hd)]);
            string v = g.Node("Reshape", [qkv[2], g.Ints(0, 0, KV, hd)]);
            if (cos != null) { q = Rope(g, c, q, cos, sin!); k = Rope(g, c, k, cos, sin!); }
            q = g.Node("Transpose", [q], [OnnxAttr.Is("perm", 0, 2, 1, 3)]);                                       // [B, H, T, hd]
            k = g.Node("Concat", [PastName(l, false), g.Node("Transpose", [k], [OnnxAttr.Is("perm", 0, 2, 1, 3)])], [OnnxAttr.I("axis", 2)], PresentName(l, false));
            v = g.Node("Concat", [PastName(l, true), g.Node("Transpose", [v], [OnnxAttr.Is("perm", 0, 2, 1, 3)])], [OnnxAttr.I("axis", 2)], PresentName(l, true));
            g.Output(PresentName(l, false), OnnxType.Float, "batch", KV, "total_sequence", hd);
            g.Output(PresentName(l, true), OnnxType.Float, "batch", KV, "total_sequence", hd);

            // Grouped queries: heads h = kv·group + i share kv head kv, so [B, H, T, hd] read as [B, KV, group·T, hd] meets K directly.
            bool grouped = H != KV;
            if (grouped) q = g.Node("Reshape", [q, g.Ints(0, KV, -1, hd)]);
            string scores = g.Node("Mul", [g.Node("MatMul", [q, g.Node("Transpose", [k], [OnnxAttr.Is("perm", 0, 1, 3, 2)])]), g.Float(c.AttentionScale(l))]);
            if (grouped) scores = g.Node("Reshape", [scores, g.Ints(0, H, -1, 0)]);
            scores = g.Node("Where", [MaskFor(c.AttentionWindow(l)), scores, g.Float(-1e30f)]);
            string probs = g.Node("Softmax", [scores], [OnnxAttr.I("axis", -1)]);
            if (grouped) probs = g.Node("Reshape", [probs, g.Ints(0, KV, -1, 0)]);
            string att = g.Node("MatMul", [probs, v]);
            if (grouped) att = g.Node("Reshape", [att, g.Ints(0, H, -1, hd)]);
            att = g.Node("Reshape", [g.Node("Transpose", [att], [OnnxAttr.Is("perm", 0, 2, 1, 3)]), g.Ints(0, 0, qd)]);
            string attOut = Linear(g, att, lw.AttnOut);

            // GPT-J runs the MLP in parallel on the same normed input; the others on the post-attention residual.
            if (c.Architecture != Architecture.GptJ)
            {
                x = g.Node("Add", [x, attOut]);
                h = Norm(g, c, x, lw.Norm2Gamma!, lw.Norm2Beta, $"layer{l}.norm2");
            }
            string mlpIn = Linear(g, h, lw.MlpIn);
            string key;
            if (c.Architecture == Architecture.Llama)
            {
                var gateUp = g.Nodes("Split", [mlpIn, g.Ints(c.Intermediate, c.Intermediate)], 2, [OnnxAttr.I("axis", -1)]);
                key = g.Node("Mul", [Activate(g, gateUp[0], c.Activation), gateUp[1]]);
            }
            else key = Activate(g, mlpIn, c.Activation);
            string val = Linear(g, key, lw.MlpOut, edited.Contains(l));
            if (c.Architecture == Architecture.GptJ) x = g.Node("Add", [x, attOut]);
            x = g.Node("Add", [x, val]);
        }

        string final = Norm(g, c, x, w.FinalNormGamma, w.FinalNormBeta, c.Architecture == Architecture.Llama ? "model.norm" : "transformer.ln_f");
        Linear(g, final, w.LmHead, output: "logits");
        g.Output("logits", OnnxType.Float, "batch", "sequence", c.VocabSize);
        return g;
    }

    static string EmbeddingName(ModelConfig c) => c.Architecture == Architecture.Llama ? "model.embed_tokens.weight" : "transformer.wte.weight";

    /// <summary>Fused weights carry descriptive names (q,k,v in braces); initializer names get plain ones.</summary>
    static string InitializerName(string name) => name.Replace("{q,k,v}_proj", "qkv_proj").Replace("{gate,up}_proj", "gate_up_proj");

    /// <summary>y = x·W (+ b), W in its stored layout: Conv1D [in, out] multiplies directly, nn.Linear [out, in] through a Transpose.</summary>
    static string Linear(OnnxGraph g, string x, Linear lin, bool asInput = false, string? output = null)
    {
        long rows = lin.InputMajor ? lin.In : lin.Out, cols = lin.InputMajor ? lin.Out : lin.In;
        string wName = asInput ? lin.Name : g.Weight(InitializerName(lin.Name), lin.Weight, rows, cols);
        if (!lin.InputMajor) wName = g.Node("Transpose", [wName], [OnnxAttr.Is("perm", 1, 0)]);
        if (lin.Bias == null) return g.Node("MatMul", [x, wName], output: output);
        string bias = g.Weight(InitializerName(lin.Name).Replace(".weight", ".bias"), lin.Bias, lin.Out);
        return g.Node("Add", [g.Node("MatMul", [x, wName]), bias], output: output);
    }

    static string Norm(OnnxGraph g, ModelConfig c, string x, float[] gamma, float[]? beta, string name)
    {
        string gName = g.Weight(name + ".weight", gamma, gamma.Length);
        if (c.Architecture != Architecture.Llama)
        {
            var inputs = beta == null ? new[] { x, gName } : [x, gName, g.Weight(name + ".bias", beta, beta.Length)];
            return g.Node("LayerNormalization", inputs, [OnnxAttr.I("axis", -1), OnnxAttr.F("epsilon", c.NormEps)]);
        }
        // RMSNorm: x / √(mean(x²) + ε) · γ (RMSNormalization is opset 23; ORT 1.32 runs opset 17 everywhere).
        string ms = g.Node("ReduceMean", [g.Node("Mul", [x, x])], [OnnxAttr.Is("axes", -1), OnnxAttr.I("keepdims", 1)]);
        string rms = g.Node("Sqrt", [g.Node("Add", [ms, g.Float(c.NormEps)])]);
        return g.Node("Mul", [g.Node("Div", [x, rms]), gName]);
    }

    static string Activate(OnnxGraph g, string x, Activation act)
    {
        switch (act)
        {
            case Activation.GeluNew:
            {
                // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (the Gelu op's tanh form is opset 20)
                string x3 = g.Node("Mul", [g.Node("Mul", [x, x]), x]);
                string inner = g.Node("Mul", [g.Node("Add", [x, g.Node("Mul", [x3, g.Float(0.044715f)])]), g.Float(0.7978845608028654f)]);
                return g.Node("Mul", [g.Node("Mul", [x, g.Float(0.5f)]), g.Node("Add", [g.Node("Tanh", [inner]), g.Float(1f)])]);
            }
            case Activation.GeluExact:
                return g.Node("Mul", [g.Node("Mul", [x, g.Float(0.5f)]), g.Node("Add", [g.Node("Erf", [g.Node("Mul", [x, g.Float((float)(1 / Math.Sqrt(2)))])]), g.Float(1f)])]);
            default:
                return g.Node("Mul", [x, g.Node("Sigmoid", [x])]);
        }
    }

    /// <summary>
    /// RoPE on x [B, T, heads, hd] over its first rotary_dim channels, as CpuMath.RotateHead: pairs (i, i + half)
    /// (rotate-half) or (2i, 2i+1) (GPT-J), a' = a·cos − b·sin, b' = b·cos + a·sin.
    /// </summary>
    static string Rope(OnnxGraph g, ModelConfig c, string x, string cos, string sin)
    {
        int rd = c.RotaryDim, half = rd / 2, hd = c.HeadDim;
        string Slice(string t, long from, long to, long axis) => g.Node("Slice", [t, g.Ints(from), g.Ints(to), g.Ints(axis)]);
        string rot = rd == hd ? x : Slice(x, 0, rd, 3);
        string rotated;
        if (c.Rope == RopeLayout.Interleaved)
        {
            string pairs = g.Node("Reshape", [rot, g.Ints(0, 0, 0, half, 2)]);
            string a = Slice(pairs, 0, 1, 4), b = Slice(pairs, 1, 2, 4);
            string a2 = g.Node("Sub", [g.Node("Mul", [a, cos]), g.Node("Mul", [b, sin])]);
            string b2 = g.Node("Add", [g.Node("Mul", [b, cos]), g.Node("Mul", [a, sin])]);
            rotated = g.Node("Reshape", [g.Node("Concat", [a2, b2], [OnnxAttr.I("axis", 4)]), g.Ints(0, 0, 0, rd)]);
        }
        else
        {
            string a = Slice(rot, 0, half, 3), b = Slice(rot, half, rd, 3);
            string a2 = g.Node("Sub", [g.Node("Mul", [a, cos]), g.Node("Mul", [b, sin])]);
            string b2 = g.Node("Add", [g.Node("Mul", [b, cos]), g.Node("Mul", [a, sin])]);
            rotated = g.Node("Concat", [a2, b2], [OnnxAttr.I("axis", 3)]);
        }
        return rd == hd ? rotated : g.Node("Concat", [rotated, Slice(x, rd, hd, 3)], [OnnxAttr.I("axis", 3)]);
    }
}
