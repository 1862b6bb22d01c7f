using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;

namespace Kedit.Api;

/// <summary>How a <see cref="KnowledgeEditor"/> edits: method, hyperparameters, key statistics, PRUNE.</summary>
public sealed record EditorOptions
{
    /// <summary>The editing method (ROME, MEMIT or D4S).</summary>
    public required EditMethod Method { get; init; }
    /// <summary>Path of a kmeng01/memit-style hparams JSON file; give this or <see cref="HParamsJson"/>.</summary>
    public string? HParamsPath { get; init; }
    /// <summary>Hparams as JSON text; used when <see cref="HParamsPath"/> is null.</summary>
    public string? HParamsJson { get; init; }
    /// <summary>Key statistics (a safetensors file written by <c>kedit stats</c>); required for MEMIT, D4S and ROME with mom2_adjustment.</summary>
    public string? StatsPath { get; init; }
    /// <summary>PRUNE's restraint on the served weights, or null for none.</summary>
    public PruneMode? Prune { get; init; }
    /// <summary>Seed of the generated context templates (used only when the hparams fix none).</summary>
    public int TemplateSeed { get; init; }
    /// <summary>
    /// Generate through ONNX Runtime (CPU provider) over the model exported at load, its edited down projections
    /// bound from the engine's memory; edits are still computed by the engine and published by rebinding.
    /// </summary>
    public bool ServeWithOnnxRuntime { get; init; }
    /// <summary>With <see cref="ServeWithOnnxRuntime"/>: on ONNX Runtime's CUDA provider (<c>serve --device ort-cuda</c>).</summary>
    public bool OnnxRuntimeCuda { get; init; }
    /// <summary>
    /// Editing defaults from the model: hparams (when neither path nor JSON is given) from the model directory's
    /// hparams.json, statistics (when no path is given) from the statistics cache (<see cref="Kedit.Editing.KeyStatistics.FindCached"/>).
    /// What is still missing then disables editing instead of failing the load: generation and scoring work, and
    /// edits throw <see cref="EditingUnavailableException"/> saying what is missing.
    /// </summary>
    public bool UseModelDefaults { get; init; }
    /// <summary>
    /// A folder where the editor keeps its applied edits (state.json, rewritten atomically after every edit and
    /// rollback) and from which it replays them when loaded, so edits survive a restart; null keeps nothing.
    /// </summary>
    public string? StateDirectory { get; init; }

    /// <summary>Parses "rome", "memit", "d4s" or "alphaedit" (case-insensitive).</summary>
    /// <exception cref="KeditException">Any other name.</exception>
    public static EditMethod ParseMethod(string name) => name?.Trim().ToLowerInvariant() switch
    {
        "rome" => EditMethod.Rome,
        "memit" => EditMethod.Memit,
        "d4s" => EditMethod.D4S,
        "alphaedit" => EditMethod.AlphaEdit,
        _ => throw new KeditException($"unknown method '{name}': expected rome, memit, d4s or alphaedit"),
    };
}

/// <summary>One applied edit: an id, its requests and when / how long it took.</summary>
/// <param name="Id">Opaque id to pass to <see cref="KnowledgeEditor.Rollback"/>.</param>
/// <param name="Requests">The requests of the edit, in order.</param>
/// <param name="AppliedAt">When the edit was published to the served weights.</param>
/// <param name="Seconds">Wall time of the edit's computation.</param>
public sealed record EditRecord(string Id, IReadOnlyList<EditRequest> Requests, DateTimeOffset AppliedAt, double Seconds)
{
    /// <summary>The record as the service and the C ABI list it: id, applied_at, seconds, requests (prompt, subject, target_new).</summary>
    public System.Text.Json.Nodes.JsonObject ToJson() => new()
    {
        ["id"] = Id,
        ["applied_at"] = AppliedAt.ToString("O"),
        ["seconds"] = Seconds,
        ["requests"] = new System.Text.Json.Nodes.JsonArray(Requests.Select(q => (System.Text.Json.Nodes.JsonNode)new System.Text.Json.Nodes.JsonObject
        {
            ["prompt"] = q.Prompt, ["subject"] = q.Subject, ["target_new"] = q.TargetNew,
        }).ToArray()),
    };
}

/// <summary>
/// What an editor holds in memory, in bytes. Model and edit-state figures are the sizes of the arrays
/// held (exact for weights, statistics and running sums); the process figures come from the runtime.
/// </summary>
/// <param name="ModelWeights">The served model's weights as held in memory (F16/BF16 matrices stay 16-bit until an edit promotes them to float32).</param>
/// <param name="EditedLayerCopies">Per edited layer: the work copy the edits are computed on and the original W0 kept for rollback (plus PRUNE's unrestrained copy while restrained weights are served).</param>
/// <param name="Statistics">Key second-moment sums of the edited layers (float64, f² each).</param>
/// <param name="EditState">The method's solve state: factor of λC (+ the running sums S_KK, S_RK and Γ for D4S), float64.</param>
/// <param name="ManagedHeap">The .NET heap now (all of the process's managed objects).</param>
/// <param name="WorkingSet">The process's resident memory.</param>
public sealed record MemoryReport(long ModelWeights, long EditedLayerCopies, long Statistics, long EditState, long ManagedHeap, long WorkingSet)
{
    /// <summary>The editor's own arrays: weights, copies, statistics and edit state.</summary>
    public long Editor => ModelWeights + EditedLayerCopies + Statistics + EditState;
}
