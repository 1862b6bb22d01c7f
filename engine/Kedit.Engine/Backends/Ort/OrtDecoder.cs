using Kedit.IO.Onnx;
using Kedit.Models;
using Microsoft.ML.OnnxRuntime;

namespace Kedit.Backends.Ort;

/// <summary>
/// A set of weight tensors bound to graph inputs: OrtValues over the engine's own float arrays
/// (CreateTensorValueFromMemory pins them, no copy). Immutable once made; the arrays must not change
/// while a run uses the set, and the set must outlive every run that bound it.
/// </summary>
public sealed class OrtWeightSet : IDisposable
{
    readonly Dictionary<string, OrtValue> values = [];

    /// <param name="weights">graph input name (the safetensors tensor name) → (data, shape in stored layout)</param>
    public OrtWeightSet(IEnumerable<(string Name, float[] Data, long[] Shape)> weights)
    {
        foreach (var (name, data, shape) in weights)
            values[name] = OrtValue.CreateTensorValueFromMemory(data, shape);
    }

    public IReadOnlyDictionary<string, OrtValue> Values => values;

    /// <summary>The down projections of <paramref name="layers"/> as <paramref name="model"/> holds them now (its arrays, not copies).</summary>
    public static OrtWeightSet DownProjections(Transformer model, IEnumerable<int> layers) =>
        new(layers.Select(l =>
        {
            var lin = model.Weights.Layers[l].MlpOut;
            return (lin.Name, lin.Weight, lin.InputMajor ? new long[] { lin.In, lin.Out } : [lin.Out, lin.In]);
        }));

    public void Dispose()
    {
        foreach (var v in values.Values) v.Dispose();
    }
}

/// <summary>
/// The exported decoder (<see cref="OnnxExporter"/>) in an ONNX Runtime InferenceSession on the CPU
/// provider, run one sequence at a time with its KV cache. Graph inputs for edited layers are bound
/// from the current <see cref="OrtWeightSet"/>: <see cref="Publish"/> swaps the set, each run binds the
/// set current when it starts through its own OrtIoBinding, so a run sees all of an edit or none of it
/// and the session is never rebuilt.
/// </summary>
public sealed class OrtDecoder : IDisposable
{
    readonly InferenceSession session;
    readonly ModelConfig config;
    OrtWeightSet? weights;

    /// <param name="cuda">Run on ONNX Runtime's CUDA provider (<c>--device ort-cuda</c>); refused in one line where it cannot load.</param>
    public OrtDecoder(string onnxPath, ModelConfig config, OrtWeightSet? weights = null, bool cuda = false)
    {
        if (!File.Exists(onnxPath)) throw new KeditException($"{onnxPath}: ONNX model not found");
        this.config = config; this.weights = weights;
        using var options = new SessionOptions();
        if (cuda) AppendCuda(options);
        try { session = new InferenceSession(onnxPath, options); }
        catch (OnnxRuntimeException e) { throw new KeditException($"{onnxPath}: ONNX Runtime cannot load it: {e.Message.Split('\n')[0]}"); }
        var missing = session.InputMetadata.Keys.Where(n => n.EndsWith(".weight", StringComparison.Ordinal) && weights?.Values.ContainsKey(n) != true).ToList();
        if (missing.Count > 0) throw new KeditException($"{onnxPath}: graph inputs {string.Join(", ", missing)} have no bound weights");
    }

    /// <summary>Which ONNX Runtime package this build carries (the CPU one unless built with <c>-p:KeditOrtGpu=true</c>).</summary>
    public static bool IsGpuPackage => OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");

    static void AppendCuda(SessionOptions options)
    {
        if (!IsGpuPackage)
            throw new DeviceException("--device ort-cuda: this kedit carries ONNX Runtime's CPU package (Microsoft.ML.OnnxRuntime), which has no CUDA provider; " +
                                      "build it with `dotnet build -p:KeditOrtGpu=true` for Microsoft.ML.OnnxRuntime.Gpu (needs the CUDA 13 runtime and cuDNN on the host)");
        // ONNX Runtime logs the failed provider load itself; kedit says it in its one line instead.
        var env = OrtEnv.Instance();
        var level = env.EnvLogLevel;
        env.EnvLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL;
        try { options.AppendExecutionProvider_CUDA(0); }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
        {
            throw new DeviceException($"--device ort-cuda: ONNX Runtime's CUDA provider cannot start here: {e.Message.Split('\n')[0].Trim()}");
        }
        finally { env.EnvLogLevel = level; }
    }

    /// <summary>Makes <paramref name="next"/> the set later runs bind; returns the previous one (the caller owns it and may republish it to roll back).</summary>
    public OrtWeightSet? Publish(OrtWeightSet? next) => Interlocked.Exchange(ref weights, next);

    /// <summary>A KV cache of one sequence: per layer present key and value [1, kv_heads, length, head_dim].</summary>
    public sealed class Cache : IDisposable
    {
        internal OrtValue[] Keys = [], Values = [];
        public int Length { get; internal set; }

        public void Dispose()
        {
            foreach (var v in Keys.Concat(Values)) v.Dispose();
            Keys = []; Values = [];
        }
    }

    public Cache CreateCache()
    {
        var shape = new long[] { 1, config.KvHeads, 0, config.HeadDim };
        var cache = new Cache
        {
            Keys = Enumerable.Range(0, config.Layers).Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape)).ToArray(),
            Values = Enumerable.Range(0, config.Layers).Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), shape)).ToArray(),
        };
        return cache;
    }

    /// <summary>Runs <paramref name="ids"/> after what the cache holds and appends them; returns logits [ids.Length, vocab].</summary>
    public float[] Forward(IReadOnlyList<int> ids, Cache cache)
    {
        int T = ids.Count, P = cache.Length, L = config.Layers;
        // The graph's Gather would fail mid-run on a position past the tables; refuse as the engine does.
        if (P + T > config.MaxPositions) throw new KeditException($"position {P + T - 1} exceeds the model's {config.MaxPositions} positions (max_position_embeddings / n_positions)");
        var idData = ids.Select(i => (long)i).ToArray();
        var posData = Enumerable.Range(P, T).Select(p => (long)p).ToArray();
        var maskData = Enumerable.Repeat(1L, P + T).ToArray();
        var set = weights; // the set current when the run starts, for the whole run
        using var binding = session.CreateIoBinding();
        using var idValue = OrtValue.CreateTensorValueFromMemory(idData, [1, T]);
        using var posValue = OrtValue.CreateTensorValueFromMemory(posData, [1, T]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(maskData, [1, P + T]);
        binding.BindInput("input_ids", idValue);
        binding.BindInput("position_ids", posValue);
        binding.BindInput("attention_mask", maskValue);
        for (int l = 0; l < L; l++)
        {
            binding.BindInput(OnnxExporter.PastName(l, false), cache.Keys[l]);
            binding.BindInput(OnnxExporter.PastName(l, true), cache.Values[l]);
        }
        if (set != null) foreach (var (name, v) in set.Values) binding.BindInput(name, v);
        var cpu = OrtMemoryInfo.DefaultInstance;
        binding.BindOutputToDevice("logits", cpu);
        for (int l = 0; l < L; l++)
        {
            binding.BindOutputToDevice(OnnxExporter.PresentName(l, false), cpu);
            binding.BindOutputToDevice(OnnxExporter.PresentName(l, true), cpu);
        }
        using var runOptions = new RunOptions();
        try { session.RunWithBinding(runOptions, binding); }
        catch (OnnxRuntimeException e) { throw new KeditException($"ONNX Runtime: {e.Message.Split('\n')[0]}"); }
        var outputs = binding.GetOutputValues().ToArray(); // in binding order: logits, then present key/value per layer
        var logits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        outputs[0].Dispose();
        var old = (cache.Keys, cache.Values);
        cache.Keys = Enumerable.Range(0, L).Select(l => outputs[1 + 2 * l]).ToArray();
        cache.Values = Enumerable.Range(0, L).Select(l => outputs[2 + 2 * l]).ToArray();
        foreach (var v in old.Keys.Concat(old.Values)) v.Dispose();
        cache.Length = P + T;
        return logits;
    }

    public void Dispose() => session.Dispose();
}
