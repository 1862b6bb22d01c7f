using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;

namespace Kedit.Editing;

/// <summary>
/// The record of an edit run, written into its output directory next to the edited model:
/// journal.json (requests, hparams, templates, method, per-step losses and timings, metrics),
/// deltas.safetensors (the served total ΔW of each edited weight under its HF name and stored
/// orientation), original.safetensors (the edited tensors' original bytes, for a bit-exact
/// rollback) and steps.safetensors (each step's low-rank factors and, for D4S, keys, residuals and
/// running sums), so any prefix of the sequence can be replayed.
/// </summary>
public static class EditJournal
{
    public const string FileName = "journal.json";
    public const int Version = 1;
    /// <summary>Metadata key an edited model.safetensors carries (removed again by rollback).</summary>
    public const string EditMetadataKey = "kedit_edit";

    public static void Write(string dir, EditSession session, string sourceModel, TensorStore source,
        IReadOnlyList<EditRequest> requests, JsonObject extra)
    {
        var layers = session.Context.Layers;
        // Original bytes of each edited tensor in its stored dtype.
        var originals = layers.Select(l => { var i = source.GetInfo(l.Name); return new SafetensorsWriter.Entry(l.Name, i.DType, i.Shape, source.GetBytes(l.Name).ToArray()); }).ToList();
        SafetensorsWriter.Write(Path.Combine(dir, "original.safetensors"), originals, new Dictionary<string, string> { ["source"] = sourceModel });

        var deltas = new List<SafetensorsWriter.Entry>();
        foreach (var l in layers)
        {
            deltas.Add(SafetensorsWriter.Entry.F32(l.Name, l.StoredShape, l.ToStored(l.CurrentDelta())));
            if (session.Restraint?.IsMaterialised == true)
            {
                var (x, y) = session.Restraint.Factors(l.Layer);
                deltas.Add(SafetensorsWriter.Entry.F32("unrestrained." + l.Name, l.StoredShape, l.ToStored(MatrixD.Multiply(x, y, false, true))));
            }
        }
        SafetensorsWriter.Write(Path.Combine(dir, "deltas.safetensors"), deltas, new Dictionary<string, string> { ["method"] = session.HParams.Method.ToString() });

        var steps = new List<SafetensorsWriter.Entry>();
        foreach (var s in session.Steps)
            foreach (var u in s.Step.Layers)
            {
                string p = $"step{s.Index}.L{u.Layer}";
                steps.Add(Mat($"{p}.x", u.X)); steps.Add(Mat($"{p}.y", u.Y));
                steps.Add(Mat($"{p}.keys", u.Keys)); steps.Add(Mat($"{p}.residual", u.Residual));
            }
        if (session.D4s != null)
            foreach (var l in layers)
            {
                var st = session.D4s.State(l.Layer);
                steps.Add(Mat($"d4s.L{l.Layer}.sum_kk", st.SumKK)); steps.Add(Mat($"d4s.L{l.Layer}.sum_rk", st.SumRK));
            }
        if (steps.Count > 0) SafetensorsWriter.Write(Path.Combine(dir, "steps.safetensors"), steps);

        var journal = new JsonObject
        {
            ["version"] = Version,
            ["tool"] = "kedit",
            ["created_utc"] = DateTime.UtcNow.ToString("o"),
            ["source_model"] = Path.GetFullPath(sourceModel),
            ["method"] = session.HParams.Method.ToString().ToLowerInvariant(),
            ["prune"] = session.Restraint == null ? null : Prune.ModeName(session.Restraint.Mode),
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)l.Layer).ToArray()),
            ["edited_tensors"] = new JsonArray(layers.Select(l => (JsonNode)new JsonObject { ["name"] = l.Name, ["shape"] = new JsonArray(l.StoredShape.Select(v => (JsonNode)v).ToArray()) }).ToArray()),
            ["hparams"] = JsonNode.Parse(session.HParams.ToJson()),
            ["context_templates"] = JsonNode.Parse(session.Templates.ToJson()),
            ["requests"] = new JsonArray(requests.Select(r => (JsonNode)RequestJson(r)).ToArray()),
            ["steps"] = new JsonArray(session.Steps.Select(s => (JsonNode)StepJson(s, session.Regime.StepRatios(s.Index))).ToArray()),
        };
        var regime = session.RegimeNow();
        journal["regime"] = EditRegime.ToJson(regime);
        if (session.Restraint != null && EditRegime.PruneWarning(regime) is string warning) journal["warning"] = warning;
        foreach (var kv in extra) journal[kv.Key] = kv.Value?.DeepClone();
        File.WriteAllText(Path.Combine(dir, FileName), journal.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static SafetensorsWriter.Entry Mat(string name, MatrixD m) => SafetensorsWriter.Entry.F64(name, new long[] { m.Rows, m.Cols }, m.Data);

    public static JsonObject RequestJson(EditRequest r) => new()
    {
        ["case_id"] = r.CaseId,
        ["prompt"] = r.Prompt,
        ["subject"] = r.Subject,
        ["target_new"] = r.TargetNew,
        ["target_true"] = r.TargetTrue,
    };

    static JsonObject StepJson(JournalStep s, IReadOnlyList<double> sigmaRatios) => new()
    {
        ["index"] = s.Index,
        ["requests"] = new JsonArray(s.RequestIndices.Select(i => (JsonNode)i).ToArray()),
        ["seconds"] = new JsonObject { ["targets"] = s.Timings.Targets, ["keys_and_solve"] = s.Timings.KeysAndSolve, ["total"] = s.Timings.Total },
        ["z"] = new JsonArray(s.Step.ZRuns.Select(z => (JsonNode)new JsonObject
        {
            ["iterations"] = z.Trace.Count,
            ["first_loss"] = z.Trace[0].Loss,
            ["final_loss"] = z.Trace[^1].Loss,
            ["final_avg_prob"] = z.Trace[^1].AvgProb,
            ["delta_norm"] = ComputeZ.Norm(z.Delta),
        }).ToArray()),
        ["sigma_ratio"] = new JsonArray(sigmaRatios.Select(r => (JsonNode)r).ToArray()),   // σ₁ of the step's change / σ_max(W0), per edited layer
    };

    /// <summary>Reads and checks a journal; a clear error when the directory is not a kedit output.</summary>
    public static JsonObject Read(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new KeditException($"{dir}: no {FileName} (not a kedit edit output)");
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new KeditException($"{path}: invalid JSON ({e.Message})"); }
        if (node is not JsonObject o || o["tool"]?.GetValue<string>() != "kedit") throw new KeditException($"{path}: not a kedit journal");
        if (o["version"]?.GetValue<int>() is not int v || v > Version) throw new KeditException($"{path}: journal version {o["version"]} is not supported (this kedit reads up to {Version})");
        return o;
    }

    /// <summary>
    /// Writes the original model into outDir: the edit output's tensors with every edited tensor's
    /// original bytes put back (bit-exact), plus the companion files.
    /// </summary>
    public static void Rollback(string editDir, string outDir)
    {
        Read(editDir);
        string orig = Path.Combine(editDir, "original.safetensors");
        if (!File.Exists(orig)) throw new KeditException($"{editDir}: original.safetensors is missing; cannot roll back");
        using var edited = TensorStore.OpenDirectory(editDir);
        using var originals = SafetensorsFile.Open(orig);
        var replaced = originals.Tensors.ToDictionary(t => t.Name, t => new ModelDirectory.Replacement(t.DType, t.Shape, originals.GetBytes(t.Name).ToArray()));
        string staging = ModelDirectory.CreateStaging(outDir);
        try
        {
            // The original file's metadata as it was: drop the key the edit added.
            ModelDirectory.WriteModel(editDir, edited, staging, replaced, dropMetadata: new[] { EditMetadataKey });
            ModelDirectory.Commit(staging, outDir);
        }
        catch { ModelDirectory.Abandon(staging); throw; }
    }
}
