using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>What a memory plan is for: one of the edit methods, or computing key statistics.</summary>
public enum PlannedWork { Rome, Memit, D4S, AlphaEdit, Prune, Stats }

/// <summary>The shape of the work a <see cref="MemoryPlan"/> predicts.</summary>
public sealed record PlanInput
{
    public required ModelConfig Config { get; init; }
    /// <summary>
    /// Bytes the weights take resident on the CPU, as stored: F16/BF16 matrices 2 bytes a value, every other tensor float32
    /// (see <see cref="ModelWeights"/>).
    /// </summary>
    public required long WeightBytes { get; init; }
    /// <summary>Bytes of the weights all as float32 (tells whether the checkpoint is 16-bit, so that an edit's matrices grow); 0: <see cref="WeightBytes"/>.</summary>
    public long Float32WeightBytes { get; init; }
    /// <summary>Bytes of the model's weight files (copied into an edit's output).</summary>
    public required long FileBytes { get; init; }
    public required PlannedWork Work { get; init; }
    public required IReadOnlyList<int> Layers { get; init; }
    /// <summary>Requests in all (edits), ignored for statistics.</summary>
    public int Requests { get; init; } = 1;
    public bool Sequential { get; init; }
    public int BatchSize { get; init; } = 1;
    /// <summary>
    /// <c>mom2_dtype</c> is float64: statistics keep float64 products while accumulating, and an edit holds them as float64
    /// (otherwise as float32, read a float64 layer at a time).
    /// </summary>
    public bool Float64Products { get; init; }
    /// <summary>"cpu" or a device name; on a device the weights, activations and one layer's factorisation live there.</summary>
    public string Device { get; init; } = "cpu";
}

/// <summary>
/// Predicted peak host and device bytes of an edit or of <c>kedit stats</c>, part by part, from the model's config and
/// tensor headers alone (nothing is loaded). The parts are what the engine holds at its peak: the runtime itself, the
/// weights (as stored on the CPU: F16/BF16 matrices 16-bit, the matrices an edit lands on promoted to float32), the key statistics (float64 sums, one f×f matrix per layer), the method's state kept across steps,
/// the workspace of the one layer being solved, activations, and the buffers of the output being written. The runtime
/// and the collector's slack (garbage of short-lived f×f matrices that the collector returns late) are measured constants,
/// calibrated on the GPT-2-small-sized bench model (bench memory) and checked against a child process's VmHWM in the tests.
/// </summary>
public sealed class MemoryPlan
{
    /// <summary>The .NET runtime, JIT'd code, tokenizer and small buffers of a kedit process that loaded a model (measured).</summary>
    public const long RuntimeBytes = 90L << 20;

    public MemoryPlan(IReadOnlyDictionary<string, long> hostParts, IReadOnlyDictionary<string, long> deviceParts)
    {
        HostParts = hostParts; DeviceParts = deviceParts;
    }

    /// <summary>Host parts by name (bytes); their sum is <see cref="HostPeakBytes"/>.</summary>
    public IReadOnlyDictionary<string, long> HostParts { get; }
    /// <summary>Device parts by name (bytes); empty on the CPU.</summary>
    public IReadOnlyDictionary<string, long> DeviceParts { get; }
    public long HostPeakBytes => HostParts.Values.Sum();
    public long DevicePeakBytes => DeviceParts.Values.Sum();

    /// <summary>The plan of one run (see the class remarks for what each part holds).</summary>
    public static MemoryPlan For(PlanInput p)
    {
        var c = p.Config;
        long f = c.Intermediate, d = c.Hidden, L = p.Layers.Count, V = c.VocabSize;
        long ff8 = f * f * sizeof(double), df8 = d * f * sizeof(double), df4 = d * f * sizeof(float);
        long factor = f * (f + 1) / 2 * sizeof(double);   // a host Cholesky factor, packed (CholeskyFactor)
        bool device = p.Device is not ("cpu" or "ort");
        bool sixteenBit = p.Float32WeightBytes > p.WeightBytes;
        // 16-bit matrices stay 16-bit on the host and on a device (the device kernels widen them as they load them).
        var host = new Dictionary<string, long> { ["runtime"] = RuntimeBytes, ["weights"] = p.WeightBytes };
        var dev = new Dictionary<string, long>();
        if (device) dev["weights"] = p.WeightBytes;

        if (p.Work == PlannedWork.Stats)
        {
            host["statistics"] = L * ff8;                                        // float64 sums
            host["output"] = f * f * sizeof(float);                              // one layer's mom2 (float32) at a time, as it is written
            long tokens = Covariance.BatchTokens;
            long batchActs = tokens * (6 * d + 2 * f) * sizeof(float) + (p.Float64Products ? tokens * f * sizeof(double) : 0);
            if (device) dev["activations"] = batchActs + L * ff8; else host["activations"] = batchActs;
            return new MemoryPlan(host, dev);
        }

        // An edit promotes the matrices it lands on to float32 (2 more bytes a value where they were 16-bit), on the
        // host and, uploaded again, on the device.
        if (sixteenBit)
        {
            host["weights"] += L * df4 / 2;
            if (device) dev["weights"] += L * df4 / 2;
        }
        bool rome = p.Work == PlannedWork.Rome;
        int perStep = rome ? 1 : p.Sequential ? Math.Max(1, p.BatchSize) : Math.Max(1, p.Requests);
        bool manySteps = p.Requests > perStep;
        long n = perStep;
        // Held as mom2_dtype while editing (float32 by default), plus one float64 layer while they are read.
        host["statistics"] = p.Float64Products ? L * ff8 : L * f * f * sizeof(float) + ff8;
        // Per layer across steps: MEMIT/PRUNE keep λC's factor when there is more than one step; D4S keeps the factor of
        // λC + S_KK and Γ (d·f), and S_KK, S_RK as the keys and residuals added (dense, f² and d·f, past f/8 keys;
        // λC is rebuilt when needed); AlphaEdit its null-space projector (f²) and a factor.
        long state = p.Work switch
        {
            PlannedWork.Memit or PlannedWork.Prune => manySteps ? L * factor : 0,
            PlannedWork.D4S => L * (factor + df8 + (p.Requests > f / 8 ? ff8 + df8 : p.Requests * (f + d) * sizeof(double))),
            PlannedWork.AlphaEdit => L * (ff8 + factor),
            _ => manySteps ? L * factor : 0,   // ROME: C's factor per layer
        };
        if (p.Work == PlannedWork.Prune) state += L * (df4 + (long)p.Requests * (d + f) * sizeof(double));   // restraint factors, materialised ΔW
        host["method state"] = state;
        // The layer being solved: λC (or M), the factorisation's n×n workspace and the packed factor, plus the collector's slack.
        long workspace = (p.Work == PlannedWork.AlphaEdit ? 4 : 3) * ff8 + n * f * 2 * sizeof(double);
        host["workspace"] = workspace;
        // z-optimisation: logits, their gradient and softmax over the rows of n requests (≈ 100 tokens each), in float32.
        long rows = 100 * n;
        long acts = rows * (3 * V + 8 * d + 2 * f) * sizeof(float);
        if (device) { dev["activations"] = acts; dev["workspace"] = 2 * ff8; } else host["activations"] = acts;
        // Output: W0 kept per edited layer and one layer's ΔW buffer (the edited matrices and the originals are written
        // from the model and the mapping); D4S's journal writes its sums through one buffer of each shape.
        host["output"] = L * df4 + df4 + (p.Work == PlannedWork.D4S ? ff8 + df8 : 0);
        return new MemoryPlan(host, dev);
    }

    /// <summary>The plan of an edit or statistics run on a model directory (headers only: nothing is loaded).</summary>
    public static MemoryPlan ForModel(string modelDir, PlannedWork work, IReadOnlyList<int> layers, int requests, bool sequential, int batchSize,
        bool float64Products, string device)
    {
        var config = ModelConfig.Load(modelDir);
        using var store = TensorStore.OpenDirectory(modelDir);
        long weights = 0, f32 = 0, file = 0;
        foreach (var t in store.All)
        {
            file += t.ByteLength;
            if (!DTypes.IsFloat(t.DType)) continue;
            f32 += t.ElementCount * sizeof(float);
            // Matrices stay 16-bit (position embeddings aside, a rounding error here); vectors are widened.
            weights += t.ElementCount * (t.Shape.Length == 2 && t.DType is DType.F16 or DType.BF16 ? 2 : sizeof(float));
        }
        return For(new PlanInput
        {
            Config = config, WeightBytes = weights, Float32WeightBytes = f32, FileBytes = file, Work = work, Layers = layers, Requests = requests,
            Sequential = sequential, BatchSize = batchSize, Float64Products = float64Products, Device = device,
        });
    }

    /// <summary>MemAvailable from /proc/meminfo (bytes), or null where there is none; <see cref="BudgetVariable"/> overrides it.</summary>
    public static long? AvailableHostBytes()
    {
        if (Environment.GetEnvironmentVariable(BudgetVariable) is string b)
            return long.TryParse(b, out long v) && v > 0 ? v : throw new KeditException($"{BudgetVariable} is \"{b}\"; expected a positive number of bytes");
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:"))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>Plan against this many bytes instead of MemAvailable (a service sharing its machine with other work).</summary>
    public const string BudgetVariable = "KEDIT_MEMORY_BUDGET";

    /// <summary>
    /// Refuses (one line) when the host peak exceeds <paramref name="available"/>: names the largest parts and what shrinks
    /// them. Nothing has been loaded or written when this runs.
    /// </summary>
    public void Check(long? available, string command)
    {
        if (available is not long avail || HostPeakBytes <= avail) return;
        var largest = HostParts.Where(kv => kv.Value > 0).OrderByDescending(kv => kv.Value).Take(3).Select(kv => $"{kv.Key} {Gb(kv.Value)}");
        throw new KeditException($"{command} would need about {Gb(HostPeakBytes)} of memory and {Gb(avail)} is available " +
            $"(largest: {string.Join(", ", largest)}); edit fewer layers (hparams \"layers\", or --layers), take fewer requests a step (--sequential --batch-size), " +
            "run where more memory is free, or pass --force to run anyway");
    }

    static string Gb(long b) => b >= 1L << 30 ? $"{b / (double)(1L << 30):F1} GiB" : $"{b / (double)(1L << 20):F0} MiB";

    /// <summary>The plan as kedit plan --json prints it.</summary>
    public Dictionary<string, object> ToJson() => new()
    {
        ["host_peak_bytes"] = HostPeakBytes,
        ["device_peak_bytes"] = DevicePeakBytes,
        ["parts"] = HostParts.Select(kv => ("host " + kv.Key, kv.Value)).Concat(DeviceParts.Select(kv => ("device " + kv.Key, kv.Value)))
            .ToDictionary(x => x.Item1, x => x.Value),
    };

    /// <summary>The method named as kedit edit --method names it, or "stats".</summary>
    public static PlannedWork ParseWork(string s) => s.ToLowerInvariant() switch
    {
        "rome" => PlannedWork.Rome, "memit" => PlannedWork.Memit, "d4s" => PlannedWork.D4S, "alphaedit" => PlannedWork.AlphaEdit,
        "prune" => PlannedWork.Prune, "stats" => PlannedWork.Stats,
        _ => throw new KeditException($"--method is \"{s}\"; expected rome, memit, d4s, alphaedit, prune or stats"),
    };
}
