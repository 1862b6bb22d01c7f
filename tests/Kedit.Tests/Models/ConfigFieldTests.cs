using System.Text.Json.Nodes;
using Kedit.Autodiff;
using Kedit.Backends;
using Kedit.Models;
using Kedit.Tests.Device;
using Xunit;

namespace Kedit.Tests.Models;

/// <summary>
/// Every config.json field that changes the forward is honoured or refused by name (issue #21). Each field set
/// on a two-layer <see cref="TinyModel"/> is checked against <see cref="Reference"/> (the Hugging Face forward
/// in float64, written independently) on the CPU backend and on ILGPU's CPU accelerator (and CUDA where present), whole-sequence and token by token through
/// the KV cache; the fields the backward pass depends on are checked against finite differences. The walk at the
/// end fails when a field of <see cref="ModelConfig.Fields"/> that changes the forward has no row here.
/// </summary>
public class ConfigFieldTests
{
    static readonly int[] Ids = [3, 17, 5, 29, 11, 0, 38, 7, 22, 14];
    const double RelTol = 2e-5, AbsTol = 2e-4;

    static readonly string[] LlamaFamily = ["llama", "mistral", "qwen2"];

    /// <summary>(model_type, fields set on the base config). The fields it covers are the object's keys.</summary>
    public static TheoryData<string, string> Implemented
    {
        get
        {
            var rows = new TheoryData<string, string>();
            foreach (var type in new[] { "gpt2", "gptj" })
            {
                rows.Add(type, """{"activation_function": "gelu"}""");
                rows.Add(type, """{"activation_function": "silu"}""");
                rows.Add(type, """{"layer_norm_epsilon": 0.3}""");
                rows.Add(type, """{"n_inner": 20}""");
                rows.Add(type, """{"vocab_size": 37}""");
                rows.Add(type, """{"n_positions": 12}""");
                rows.Add(type, """{"n_embd": 16}""");
                rows.Add(type, """{"n_layer": 1}""");
                rows.Add(type, """{"n_head": 2}""");
            }
            rows.Add("gpt2", """{"scale_attn_weights": false}""");
            rows.Add("gpt2", """{"scale_attn_by_inverse_layer_idx": true}""");
            rows.Add("gpt2", """{"scale_attn_weights": false, "scale_attn_by_inverse_layer_idx": true, "reorder_and_upcast_attn": true}""");
            rows.Add("gpt2", """{"tie_word_embeddings": false}""");
            rows.Add("gptj", """{"tie_word_embeddings": true}""");
            rows.Add("gptj", """{"rotary_dim": 6}""");
            rows.Add("gptj", """{"rotary_dim": 0}""");
            foreach (var type in LlamaFamily)
            {
                rows.Add(type, """{"hidden_act": "gelu"}""");
                rows.Add(type, """{"hidden_act": "gelu_pytorch_tanh"}""");
                rows.Add(type, """{"rms_norm_eps": 0.3}""");
                rows.Add(type, """{"rope_theta": 50.0}""");
                rows.Add(type, """{"rope_scaling": {"type": "linear", "factor": 3.0}}""");
                rows.Add(type, """{"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8}}""");
                rows.Add(type, """{"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}""");
                rows.Add(type, """{"tie_word_embeddings": true}""");
                rows.Add(type, """{"partial_rotary_factor": 1.0}""");
                rows.Add(type, """{"head_dim": 8}""");
                rows.Add(type, """{"num_key_value_heads": 1}""");
                rows.Add(type, """{"num_key_value_heads": 4}""");
                rows.Add(type, """{"max_position_embeddings": 12}""");
                rows.Add(type, """{"vocab_size": 37}""");
                rows.Add(type, """{"hidden_size": 16}""");
                rows.Add(type, """{"intermediate_size": 12}""");
                rows.Add(type, """{"num_hidden_layers": 1}""");
                rows.Add(type, """{"num_attention_heads": 2, "num_key_value_heads": 1}""");
            }
            rows.Add("llama", """{"attention_bias": true}""");
            rows.Add("llama", """{"mlp_bias": true}""");
            rows.Add("mistral", """{"sliding_window": 3}""");
            rows.Add("mistral", """{"sliding_window": null}""");
            rows.Add("qwen2", """{"use_sliding_window": true, "sliding_window": 3, "max_window_layers": 1}""");
            rows.Add("qwen2", """{"use_sliding_window": true, "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"]}""");
            return rows;
        }
    }

    /// <summary>(model_type, fields, what the one-line error must say).</summary>
    public static TheoryData<string, string, string> Refused
    {
        get
        {
            var rows = new TheoryData<string, string, string>();
            foreach (var type in LlamaFamily)
            {
                rows.Add(type, """{"partial_rotary_factor": 0.5}""", "partial_rotary_factor 0.5 is not supported");
                rows.Add(type, """{"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}""", "rope_scaling type \"yarn\" is not supported");
                rows.Add(type, """{"rope_parameters": {"rope_type": "dynamic", "factor": 2.0}}""", "rope_parameters type \"dynamic\" is not supported");
                rows.Add(type, """{"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 0.25}}""", "partial_rotary_factor 0.25 is not supported");
                rows.Add(type, """{"rope_parameters": {"rope_type": "default"}, "rope_theta": 500.0}""", "both rope_parameters and rope_theta");
                rows.Add(type, """{"hidden_act": "relu"}""", "hidden_act \"relu\" is not supported");
            }
            rows.Add("gpt2", """{"activation_function": "relu"}""", "activation_function \"relu\" is not supported");
            rows.Add("qwen2", """{"use_sliding_window": true, "sliding_window": 3, "layer_types": ["full_attention", "chunked_attention"]}""", "layer_types[1] \"chunked_attention\" is not supported");
            return rows;
        }
    }

    /// <summary>(model_type, config fields, weights from these fields instead (or null), what the error must name): issue #13's hardening.</summary>
    public static TheoryData<string, string, string?, string> OutOfRange => new()
    {
        { "llama", """{"num_attention_heads": 0}""", null, "num_attention_heads is 0; it must be between 1 and" },
        { "llama", """{"max_position_embeddings": -1}""", null, "max_position_embeddings is -1" },
        { "llama", """{"max_position_embeddings": 1073741824}""", null, "max_position_embeddings 1073741824 with rotary dimension 6 needs RoPE tables of 24576 MiB" },
        { "gpt2", """{"n_layer": 2147483647}""", null, "n_layer is 2147483647; it must be between 1 and 4096" },
        { "gpt2", """{"n_layer": 3}""", "{}", "n_layer is 3 but the checkpoint stores 2 layer(s)" },
        { "llama", """{"num_hidden_layers": 1}""", "{}", "num_hidden_layers is 1 but the checkpoint stores 2 layer(s)" },
        { "gpt2", """{"n_head": 5}""", "{}", "n_embd (24) must be divisible by n_head (5)" },
        { "gpt2", """{"vocab_size": -3}""", "{}", "vocab_size is -3" },
        { "gpt2", """{"n_positions": 0}""", "{}", "n_positions is 0" },
        { "llama", """{"hidden_size": 131072, "vocab_size": 16777216}""", "{}", "the embedding (vocab_size) would be [16777216, 131072]" },
        { "llama", """{"num_key_value_heads": 3}""", "{}", "num_key_value_heads (3) must divide num_attention_heads (4)" },
        { "llama", """{"head_dim": 5}""", "{}", "head_dim 5 must be even" },
        { "gpt2", """{"layer_norm_epsilon": -1}""", "{}", "layer_norm_epsilon is -1; it must be a positive finite number" },
        { "llama", """{"rope_theta": 0}""", "{}", "rope_theta is 0" },
        { "llama", """{"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8}}""", "{}", "high_freq_factor (4) must exceed low_freq_factor (4)" },
        { "gpt2", """{"eos_token_id": 40}""", "{}", "eos_token_id 40 is outside the vocabulary" },
        { "gpt2", """{"bos_token_id": -1}""", "{}", "bos_token_id -1 is outside the vocabulary" },
        { "gpt2", """{"scale_attn_weights": "yes"}""", "{}", "\"scale_attn_weights\" must be true or false" },
        { "gptj", """{"rotary_dim": 7}""", "{}", "rotary_dim 7 must be even" },
        { "mistral", """{"sliding_window": 0}""", "{}", "sliding_window is 0" },
        { "qwen2", """{"use_sliding_window": true, "sliding_window": 3, "max_window_layers": -2}""", "{}", "max_window_layers -2 must be ≥ 0" },
        { "qwen2", """{"use_sliding_window": true, "layer_types": ["full_attention"]}""", "{}", "layer_types lists 1 layers, num_hidden_layers is 2" },
        { "gpt2", """{"n_embd": 3000000}""", "{}", "n_embd is 3000000; it must be between 1 and 131072" },
    };

    static JsonObject Json(string s) => JsonNode.Parse(s)!.AsObject();

    static float[] Run(Transformer model, int[] ids) => model.Forward(TokenBatch.Single(ids)).Logits;

    /// <summary>One token at a time through the KV cache: the logits of every position.</summary>
    static float[] RunCached(Transformer model, int[] ids)
    {
        using var cache = model.CreateCache(1, ids.Length);
        var all = new List<float>();
        foreach (int id in ids) all.AddRange(model.Forward(TokenBatch.Single([id]), cache).Logits);
        return all.ToArray();
    }

    static void MatchesReference(string type, string fields, IBackend? backend)
    {
        using var tiny = TinyModel.Create(type, Json(fields));
        using var model = Transformer.Load(tiny.Dir, backend);
        int T = Math.Min(Ids.Length, model.Config.MaxPositions);
        var ids = Ids[..T].Select(i => i % model.Config.VocabSize).ToArray();
        var expected = Reference.Logits(tiny, ids);
        string where = $"{type} {fields} on {model.Backend.Name}";
        Compare.Close($"{where}: logits", Run(model, ids), expected, RelTol, AbsTol);
        Compare.Close($"{where}: cached decoding", RunCached(model, ids), expected, RelTol, AbsTol);
        // Positions past the configured length are refused, not read out of range.
        var tooLong = Enumerable.Range(0, model.Config.MaxPositions + 1).Select(i => i % model.Config.VocabSize).ToArray();
        var e = Assert.Throws<KeditException>(() => model.Forward(TokenBatch.Single(tooLong)));
        Assert.Contains($"exceeds the model's {model.Config.MaxPositions} positions", e.Message);
    }

    [Theory, MemberData(nameof(Implemented))]
    public void FieldMatchesTheReferenceForwardOnTheCpu(string type, string fields)
    {
        MatchesReference(type, fields, null);

        // The field is not ignored: where the weights keep their shapes, the same weights without it give other logits.
        using var with = TinyModel.Create(type, Json(fields));
        using var without = TinyModel.Create(type);
        if (!with.Tensors.All(t => without.Tensors.TryGetValue(t.Key, out var u) && u.Shape.SequenceEqual(t.Value.Shape))
            || with.Tensors.Count != without.Tensors.Count || fields.Contains("max_position_embeddings") || fields.Contains("n_positions") || fields.Contains("\"partial_rotary_factor\": 1.0")
            || fields.Contains("\"sliding_window\": null"))
            return; // sizes and position limits (checked by the reference and the refusal above), and rows whose value behaves as the default
        var ids = Ids.Select(i => i % 37).ToArray();
        using var model = Transformer.Load(with.Dir);
        double diff = Compare.MaxAbs(Run(model, ids), Reference.Logits(without, ids));
        Assert.True(diff > 1e-3, $"{type} {fields}: logits move by only {diff:E2} against the base config");
    }

    [Theory, MemberData(nameof(Implemented))]
    public void FieldMatchesTheReferenceForwardOnIlgpuCpu(string type, string fields) =>
        MatchesReference(type, fields, IlgpuCpuDevice.RequireFresh());

    [SkippableTheory, MemberData(nameof(Implemented))]
    public void FieldMatchesTheReferenceForwardOnCuda(string type, string fields) =>
        MatchesReference(type, fields, IlgpuCudaDevice.RequireFresh());

    [Theory, MemberData(nameof(Refused))]
    public void UnimplementedValuesAreRefusedByName(string type, string fields, string message)
    {
        using var tiny = TinyModel.Create(type, Json(fields));
        var e = Assert.Throws<KeditException>(() => Transformer.Load(tiny.Dir));
        Assert.Contains(Path.Combine(tiny.Dir, "config.json"), e.Message);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory, MemberData(nameof(OutOfRange))]
    public void OutOfRangeIntegersAreRefusedBeforeAnythingIsSized(string type, string fields, string? weightsFields, string message)
    {
        var config = TinyModel.Merge(TinyModel.BaseConfig(type), Json(fields));
        string dir = Directory.CreateTempSubdirectory("kedit-range-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
            if (weightsFields != null)
            {
                // A checkpoint of the base sizes beside the bad config.
                using var tiny = TinyModel.Create(type, Json(weightsFields));
                File.Copy(Path.Combine(tiny.Dir, "model.safetensors"), Path.Combine(dir, "model.safetensors"));
            }
            // This thread's allocations only: tests of other classes run in parallel.
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<KeditException>(() => Transformer.Load(dir));
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 << 20, "refusing the config allocated more than 64 MiB");
            Assert.Contains(Path.Combine(dir, "config.json"), e.Message);
            Assert.Contains(message, e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>Fields the backward pass of compute_z depends on, against central finite differences of the forward.</summary>
    public static TheoryData<string, string> BackwardCases => new()
    {
        { "gpt2", """{"scale_attn_weights": false, "scale_attn_by_inverse_layer_idx": true}""" },
        { "mistral", """{"sliding_window": 3, "hidden_act": "gelu"}""" },
        { "qwen2", """{"use_sliding_window": true, "sliding_window": 2, "max_window_layers": 1, "hidden_act": "gelu_pytorch_tanh"}""" },
        { "llama", """{"tie_word_embeddings": true}""" },
    };

    static (float[] Grad, double[] Fd) TapeGradient(Transformer model, TokenBatch batch)
    {
        var rng = new Random(3);
        int d = model.Config.Hidden, rows = batch.Size * batch.Length;
        var x = Enumerable.Range(0, rows * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] logitRows = [batch.Length - 1, 4, batch.Length + 2];
        var r = Enumerable.Range(0, logitRows.Length * model.Config.VocabSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        using var tape = new TransformerTape(model, batch, 0);
        tape.Forward(x, logitRows);
        var grad = tape.Backward(r);
        double Loss(float[] at)
        {
            var logits = tape.Forward(at, logitRows);
            return logits.Select((v, i) => (double)v * r[i]).Sum();
        }
        // Directional derivatives along the gradient and along two random directions.
        var fd = new double[3];
        double gNorm = Math.Sqrt(grad.Sum(v => (double)v * v));
        for (int trial = 0; trial < 3; trial++)
        {
            var dir = trial == 0 ? grad.Select(v => (float)(v / gNorm)).ToArray() : x.Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            const float h = 2.5e-3f;
            fd[trial] = (Loss(x.Select((v, i) => v + h * dir[i]).ToArray()) - Loss(x.Select((v, i) => v - h * dir[i]).ToArray())) / (2 * h)
                        - grad.Select((g, i) => (double)g * dir[i]).Sum();
            fd[trial] /= gNorm * Math.Sqrt(dir.Sum(v => (double)v * v));
        }
        return (grad, fd);
    }

    static TokenBatch GradientBatch(int vocab) =>
        TokenBatch.RightPadded([Ids.Select(i => i % vocab).ToArray(), Ids[..6].Select(i => i % vocab).ToArray()]);

    [Theory, MemberData(nameof(BackwardCases))]
    public void BackwardMatchesFiniteDifferences(string type, string fields)
    {
        using var tiny = TinyModel.Create(type, Json(fields));
        using var model = Transformer.Load(tiny.Dir);
        var (_, errors) = TapeGradient(model, GradientBatch(model.Config.VocabSize));
        // Error relative to ‖g‖·‖dir‖, the scale float32 rounding and the O(h²) term live on.
        for (int i = 0; i < errors.Length; i++) Assert.True(Math.Abs(errors[i]) < 2e-3, $"{type} {fields} trial {i}: FD − analytic = {errors[i]:E2} of ‖g‖‖dir‖");
    }

    [Theory, MemberData(nameof(BackwardCases))]
    public void BackwardOnIlgpuCpuMatchesTheCpu(string type, string fields) => BackwardMatchesTheCpu(type, fields, IlgpuCpuDevice.RequireFresh());

    [SkippableTheory, MemberData(nameof(BackwardCases))]
    public void BackwardOnCudaMatchesTheCpu(string type, string fields) => BackwardMatchesTheCpu(type, fields, IlgpuCudaDevice.RequireFresh());

    static void BackwardMatchesTheCpu(string type, string fields, IBackend backend)
    {
        using var tiny = TinyModel.Create(type, Json(fields));
        using var cpu = Transformer.Load(tiny.Dir);
        using var dev = Transformer.Load(tiny.Dir, backend);
        var batch = GradientBatch(cpu.Config.VocabSize);
        var (expected, _) = TapeGradient(cpu, batch);
        var (actual, _) = TapeGradient(dev, batch);
        Compare.Close($"{type} {fields}: residual gradient on {backend.Name}", actual, expected.Select(v => (double)v).ToArray(), 1e-4);
    }

    [Theory]
    [InlineData("mistral", "{}", 4096, 4096)]                                     // MistralConfig's default when the key is absent
    [InlineData("mistral", """{"sliding_window": null}""", int.MaxValue, int.MaxValue)]
    [InlineData("qwen2", """{"sliding_window": 3}""", int.MaxValue, int.MaxValue)] // use_sliding_window defaults to false
    [InlineData("qwen2", """{"use_sliding_window": true}""", int.MaxValue, int.MaxValue)] // max_window_layers defaults to 28
    [InlineData("qwen2", """{"use_sliding_window": true, "max_window_layers": 0}""", 4096, 4096)]
    [InlineData("qwen2", """{"use_sliding_window": true, "sliding_window": null, "max_window_layers": 0}""", int.MaxValue, int.MaxValue)]
    [InlineData("llama", """{"sliding_window": 3}""", int.MaxValue, int.MaxValue)]  // Llama's code reads no window
    public void SlidingWindowDefaultsFollowTheConfigurationClasses(string type, string fields, int layer0, int layer1)
    {
        var c = ModelConfig.Parse(System.Text.Json.JsonDocument.Parse(TinyModel.Merge(TinyModel.BaseConfig(type), Json(fields)).ToJsonString()).RootElement, "config.json");
        Assert.Equal([layer0, layer1], new[] { c.AttentionWindow(0), c.AttentionWindow(1) });
    }

    [Fact]
    public void InfoListsTheMathFieldsItRead()
    {
        using var tiny = TinyModel.Create("qwen2", Json("""{"use_sliding_window": true, "sliding_window": 3, "hidden_act": "gelu"}"""));
        var o = new StringWriter(); var err = new StringWriter();
        Assert.Equal(0, Cli.Cli.Run(["info", "--model", tiny.Dir, "--json"], o, err));
        var fieldsRead = JsonNode.Parse(o.ToString())!["config_fields"]!.AsObject();
        Assert.Equal("true", fieldsRead["use_sliding_window"]!.GetValue<string>());
        Assert.Equal("3", fieldsRead["sliding_window"]!.GetValue<string>());
        Assert.Equal("\"gelu\"", fieldsRead["hidden_act"]!.GetValue<string>());
        Assert.Equal("default (28)", fieldsRead["max_window_layers"]!.GetValue<string>());
        // Exactly the fields that change the math, none that do not.
        var expected = ModelConfig.Fields["qwen2"].Where(f => f.Role != FieldRole.NoEffect).Select(f => f.Name);
        Assert.Equal(expected.Order(), fieldsRead.Select(f => f.Key).Order());
    }

    [Fact]
    public void EveryFieldThatChangesTheForwardHasAnImplementationOrARefusalTest()
    {
        var implemented = Implemented.Select(r => ((string)r[0], Json((string)r[1]))).SelectMany(r => r.Item2.Select(f => (r.Item1, f.Key))).ToHashSet();
        var refused = Refused.Select(r => ((string)r[0], Json((string)r[1]))).SelectMany(r => r.Item2.Select(f => (r.Item1, f.Key))).ToHashSet();
        var missing = new List<string>();
        foreach (var (type, fields) in ModelConfig.Fields)
            foreach (var f in fields)
            {
                if (f.Role == FieldRole.Forward && !implemented.Contains((type, f.Name))) missing.Add($"{type}.{f.Name} (implemented, no test against the reference)");
                if (f.Role == FieldRole.Refused && !refused.Contains((type, f.Name))) missing.Add($"{type}.{f.Name} (refused, no refusal test)");
                if (f.Role == FieldRole.NoEffect && string.IsNullOrWhiteSpace(f.Note)) missing.Add($"{type}.{f.Name} (said to have no effect, without saying why)");
            }
        Assert.True(missing.Count == 0, "config fields without a test: " + string.Join("; ", missing));
        // And the tables name only fields the engine lists: a misspelt row would test nothing.
        foreach (var (type, name) in implemented.Concat(refused))
            Assert.True(ModelConfig.Fields[type].Any(f => f.Name == name), $"{type}.{name} is tested but not in ModelConfig.Fields[{type}]");
    }
}
