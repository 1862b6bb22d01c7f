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
        var originals = layers.Select(l => { var i = source.GetInfo(l.Name); return new SafetensorsWriter.Entry(l.Name, i.DType, i.Shape, source.GetMappedMemory(l.Name)); }).ToList();
        SafetensorsWriter.Write(Path.Combine(dir, "original.safetensors"), originals, SourceLayout(sourceModel, source));

        // Each layer's ΔW is computed as the file is written, through one buffer (every edited matrix has the same shape).
        var deltas = new List<SafetensorsWriter.Entry>();
        var buffer = new float[layers.Count > 0 ? layers.Max(l => (long)l.D * l.F) : 0];
        foreach (var l in layers)
        {
            deltas.Add(SafetensorsWriter.Entry.F32Computed(l.Name, l.StoredShape, buffer, l.WriteCurrentDelta));
            if (session.Restraint?.IsMaterialised == true)
            {
                var (x, y) = session.Restraint.Factors(l.Layer);
                deltas.Add(SafetensorsWriter.Entry.F32Computed("unrestrained." + l.Name, l.StoredShape, buffer, into => l.WriteStored(MatrixD.Multiply(x, y, false, true), into)));
            }
        }
        SafetensorsWriter.Write(Path.Combine(dir, "deltas.safetensors"), deltas, new Dictionary<string, string>
        {
            ["method"] = session.HParams.Method.ToString(),
            // So that `kedit apply` refuses these deltas on any other model (one with the same shapes included).
            [DeltaApplier.SourceDigestKey] = DeltaApplier.SourceDigest(source, layers.Select(l => l.Name)),
        });

        var steps = new List<SafetensorsWriter.Entry>();
        foreach (var s in session.Steps)
            foreach (var u in s.Step.Layers)
            {
                string p = $"step{s.Index}.L{u.Layer}";
                steps.Add(Mat($"{p}.x", u.X)); steps.Add(Mat($"{p}.y", u.Y));
                steps.Add(Mat($"{p}.keys", u.Keys)); steps.Add(Mat($"{p}.residual", u.Residual));
            }
        if (session.D4s != null && layers.Count > 0)
        {
            // Each layer's sums are written from its state as the file is written, through one buffer of each shape.
            int f = session.D4s.State(layers[0].Layer).KeyDim, d = session.D4s.State(layers[0].Layer).OutputDim;
            var kk = new double[(long)f * f]; var rk = new double[(long)d * f];
            foreach (var l in layers)
            {
                var st = session.D4s.State(l.Layer);
                steps.Add(SafetensorsWriter.Entry.F64Computed($"d4s.L{l.Layer}.sum_kk", [f, f], kk, _ => st.WriteSumKK(new MatrixD(f, f, kk))));
                steps.Add(SafetensorsWriter.Entry.F64Computed($"d4s.L{l.Layer}.sum_rk", [d, f], rk, _ => st.WriteSumRK(new MatrixD(d, f, rk))));
            }
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
            ["prune_in_loop"] = session.Restraint == null ? null : session.InLoop,
            ["layers"] = new JsonArray(layers.Select(l => (JsonNode)l.Layer).ToArray()),
            ["edited_tensors"] = new JsonArray(layers.Select(l => (JsonNode)new JsonObject { ["name"] = l.Name, ["shape"] = new JsonArray(l.StoredShape.Select(v => (JsonNode)v).ToArray()) }).ToArray()),
            ["hparams"] = JsonNode.Parse(session.HParams.ToJson()),
            ["context_templates"] = JsonNode.Parse(session.Templates.ToJson()),
            ["requests"] = new JsonArray(requests.Select(r => (JsonNode)RequestJson(r)).ToArray()),
            ["steps"] = new JsonArray(session.Steps.Select(s => (JsonNode)StepJson(s, session.Regime.StepRatios(s.Index))).ToArray()),
        };
        var regime = session.RegimeNow();
        journal["regime"] = EditRegime.ToJson(regime);
        if (session.Restraint != null && EditRegime.PruneWarning(regime, session.Restraint.Mode) is string warning) journal["warning"] = warning;
        foreach (var kv in extra) journal[kv.Key] = kv.Value?.DeepClone();
        File.WriteAllText(Path.Combine(dir, FileName), journal.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Metadata key of original.safetensors: the source's weight files, each its name and its header exactly as stored.</summary>
    public const string SourceFilesKey = "source_files";
    /// <summary>Metadata key of original.safetensors: the source's shard index, base64 of its bytes (sharded sources only).</summary>
    public const string SourceIndexKey = "source_index";

    /// <summary>
    /// What rollback needs to write the source's weight files back byte for byte: each file's name and header
    /// (tensor order, offsets, metadata, padding) and the shard index; the tensor bytes are the edit output's
    /// plus original.safetensors'.
    /// </summary>
    static Dictionary<string, string> SourceLayout(string sourceModel, TensorStore source)
    {
        var files = new JsonArray(source.Files.Select(f => (JsonNode)new JsonObject
        {
            ["name"] = Path.GetFileName(f.Path),
            ["header"] = System.Text.Encoding.UTF8.GetString(f.RawHeader),
        }).ToArray());
        var meta = new Dictionary<string, string> { ["source"] = sourceModel, [SourceFilesKey] = files.ToJsonString() };
        string index = Path.Combine(sourceModel, TensorStore.IndexFileName);
        if (source.Files.Count > 1 && File.Exists(index)) meta[SourceIndexKey] = Convert.ToBase64String(File.ReadAllBytes(index));
        return meta;
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

    /// <summary>What replay and rollback need from a journal, every field type- and range-checked.</summary>
    /// <param name="Steps">the number of requests each step edited</param>
    /// <param name="Regime">the run's regime per edited layer (<see cref="EditRegime"/>), and <paramref name="Warning"/> its PRUNE warning; null in older journals</param>
    /// <param name="PruneInLoop">hparams <c>prune.in_loop</c> on a method whose edits start from the current weights (not D4S): replay restrains before each step</param>
    /// <param name="SigmaRatios">per step, σ₁ of its change / σ_max(W0) for each edited layer; null for journals written before the regime was recorded</param>
    public sealed record Info(string Path, string Method, string? Prune, IReadOnlyList<int> Layers,
        IReadOnlyList<(string Name, long[] Shape)> EditedTensors, double Lambda, string? Stats, bool RestoreBetweenEdits, bool PruneInLoop, IReadOnlyList<int> Steps,
        IReadOnlyList<double[]>? SigmaRatios, IReadOnlyList<LayerRegime>? Regime, string? Warning);

    static readonly string[] Methods = { "rome", "memit", "d4s", "alphaedit" };

    /// <summary>Reads and checks a journal; a clear error naming the field when it is not a kedit journal this kedit can read.</summary>
    public static Info Read(string dir)
    {
        string path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new KeditException($"{dir}: no {FileName} (not a kedit edit output)");
        using var doc = StrictJson.ReadFile(path, "journal");
        var f = new JsonFields(path);
        var o = f.Object(doc.RootElement, "(top level)");
        if (!o.TryGetProperty("tool", out var tool) || tool.ValueKind != JsonValueKind.String || tool.GetString() != "kedit") throw new KeditException($"{path}: not a kedit journal (field 'tool' is not \"kedit\")");
        int version = f.RequiredInt(o, "version");
        if (version < 1 || version > Version) throw f.Fail("version", $"is {version}; this kedit reads journal versions 1..{Version}");
        string method = f.RequiredString(o, "method");
        if (!Methods.Contains(method)) throw f.Fail("method", $"is {JsonFields.Quote(method)}; expected one of {string.Join(", ", Methods)}");
        string? prune = f.OptionalString(o, "prune");
        if (prune != null) Prune.ParseMode(prune);
        var layers = f.IntList(f.Required(o, "layers"), "layers");
        if (layers.Count == 0 || layers.Any(l => l < 0) || layers.Distinct().Count() != layers.Count) throw f.Fail("layers", "must list distinct non-negative layer indices");
        var tensors = new List<(string, long[])>();
        var list = f.Array(f.Required(o, "edited_tensors"), "edited_tensors");
        int i = 0;
        foreach (var t in list.EnumerateArray())
        {
            string p = $"edited_tensors[{i++}]";
            f.Object(t, p);
            var shape = f.IntList(f.Required(t, "shape", p), p + ".shape");
            if (shape.Count != 2 || shape.Any(s => s <= 0)) throw f.Fail(p + ".shape", "must be two positive sizes");
            tensors.Add((f.RequiredString(t, "name", p), shape.Select(s => (long)s).ToArray()));
        }
        if (tensors.Count != layers.Count) throw f.Fail("edited_tensors", $"lists {tensors.Count} tensors for {layers.Count} layers");
        double lambda = f.OptionalDouble(o, "lambda") ?? 0;
        if (lambda < 0) throw f.Fail("lambda", $"is {lambda}; it must be ≥ 0");
        bool restore = true, inLoop = false;
        if (f.Has(o, "hparams") && f.Object(o.GetProperty("hparams"), "hparams") is var h)
        {
            restore = f.OptionalBool(h, "restore_between_edits", "hparams") ?? true;
            if (f.Has(h, "prune") && f.Object(h.GetProperty("prune"), "hparams.prune") is var hp)
                inLoop = prune != null && method != "d4s" && (f.OptionalBool(hp, "in_loop", "hparams.prune") ?? false);
        }
        var steps = new List<int>();
        var ratios = new List<double[]>();
        i = 0;
        foreach (var s in f.Array(f.Required(o, "steps"), "steps").EnumerateArray())
        {
            string p = $"steps[{i++}]";
            var requests = f.IntList(f.Required(f.Object(s, p), "requests", p), p + ".requests");
            if (requests.Count == 0 || requests.Any(r => r < 0)) throw f.Fail(p + ".requests", "must list the indices of the requests the step edited");
            steps.Add(requests.Count);
            if (!f.Has(s, "sigma_ratio")) continue;
            var sr = f.Array(s.GetProperty("sigma_ratio"), p + ".sigma_ratio");
            if (sr.GetArrayLength() != layers.Count) throw f.Fail(p + ".sigma_ratio", $"lists {sr.GetArrayLength()} ratios for {layers.Count} layers");
            var r = sr.EnumerateArray().Select((v, k) => f.Double(v, $"{p}.sigma_ratio[{k}]")).ToArray();
            if (r.Any(x => x < 0)) throw f.Fail(p + ".sigma_ratio", "must hold non-negative ratios");
            ratios.Add(r);
        }
        // Regime ratios are all-or-nothing: older journals have none.
        if (ratios.Count != 0 && ratios.Count != steps.Count) throw f.Fail("steps", $"{ratios.Count} of {steps.Count} steps carry sigma_ratio; all or none must");
        List<LayerRegime>? regime = null;
        if (f.Has(o, "regime"))
        {
            regime = new List<LayerRegime>();
            i = 0;
            foreach (var r in f.Array(o.GetProperty("regime"), "regime").EnumerateArray())
            {
                string p = $"regime[{i++}]";
                f.Object(r, p);
                double NonNegative(string name) => f.RequiredDouble(r, name, p) is var v && v >= 0 ? v : throw f.Fail($"{p}.{name}", $"is {v}; it must be ≥ 0");
                int? restrained = f.Has(r, "prune_restrained") && r.GetProperty("prune_restrained").ValueKind != JsonValueKind.Null ? f.RequiredInt(r, "prune_restrained", p) : null;
                regime.Add(new LayerRegime(f.RequiredInt(r, "layer", p), NonNegative("sigma_max_w0"), f.RequiredInt(r, "steps", p), NonNegative("accumulated_sigma_ratio"),
                    NonNegative("single_median_sigma_ratio"), NonNegative("single_fraction_at_or_above"), restrained));
            }
        }
        return new Info(path, method, prune, layers, tensors, lambda, f.OptionalString(o, "stats"), restore, inLoop, steps, ratios.Count == 0 ? null : ratios,
            regime, f.OptionalString(o, "warning"));
    }

    /// <summary>
    /// A float tensor of an edit output checked against the shape it must have before it is read
    /// (a transposed or mis-sized tensor is refused, not reinterpreted).
    /// </summary>
    public static void CheckShape(string file, TensorInfo info, long[] expected)
    {
        if (!info.Shape.SequenceEqual(expected))
            throw new KeditException($"{file}: tensor \"{info.Name}\" has shape [{string.Join(",", info.Shape)}]; the model's is [{string.Join(",", expected)}]");
        if (!DTypes.IsFloat(info.DType)) throw new KeditException($"{file}: tensor \"{info.Name}\" has dtype {DTypes.ToSafetensorsName(info.DType)}; expected a float dtype");
    }

    /// <summary>
    /// Writes the original model into outDir: every edited tensor's original bytes put back (bit-exact) with the
    /// companion files. Edit outputs that recorded the source's layout (<see cref="SourceFilesKey"/>) get the source's
    /// weight files back byte for byte — the same shards, header order, metadata and padding, so a checksum
    /// comparison passes; older ones get the tensors back in one model.safetensors.
    /// </summary>
    public static void Rollback(string editDir, string outDir)
    {
        var journal = Read(editDir);
        string orig = Path.Combine(editDir, "original.safetensors");
        if (!File.Exists(orig)) throw new KeditException($"{editDir}: original.safetensors is missing; cannot roll back");
        using var edited = TensorStore.OpenDirectory(editDir);
        using var originals = SafetensorsFile.Open(orig);
        // Every edited tensor comes back, in the shape the model stores it: nothing else is written.
        foreach (var (name, _) in journal.EditedTensors)
            if (!originals.TryGetInfo(name, out _)) throw new KeditException($"{orig}: tensor \"{name}\" (edited, per the journal) is missing");
        foreach (var t in originals.Tensors)
        {
            if (!edited.Contains(t.Name)) throw new KeditException($"{orig}: tensor \"{t.Name}\" is not in the edited model");
            CheckShape(orig, t, edited.GetInfo(t.Name).Shape);
        }
        string staging = AtomicOutput.CreateStaging(outDir);
        try
        {
            if (originals.Metadata.TryGetValue(SourceFilesKey, out var layout)) WriteSourceFiles(orig, layout, edited, originals, staging);
            else
            {
                var replaced = originals.Tensors.ToDictionary(t => t.Name, t => new ModelDirectory.Replacement(t.DType, t.Shape, originals.GetBytes(t.Name).ToArray()));
                // The original file's metadata as it was: drop the key the edit added.
                ModelDirectory.WriteModel(editDir, edited, staging, replaced, dropMetadata: new[] { EditMetadataKey });
            }
            AtomicOutput.CommitDirectory(staging, outDir, ModelDirectory.IsEditOutput, "a kedit edit output");
        }
        catch { AtomicOutput.Abandon(staging); throw; }
        void WriteSourceFiles(string origPath, string layoutJson, TensorStore editedStore, SafetensorsFile originalTensors, string stagingDir)
        {
            string what = $"{origPath}: metadata '{SourceFilesKey}'";
            JsonArray files;
            try { files = JsonNode.Parse(layoutJson) as JsonArray ?? throw new KeditException($"{what} is not a JSON array"); }
            catch (JsonException e) { throw new KeditException($"{what} is not valid JSON ({e.Message})"); }
            var written = new HashSet<string>(StringComparer.Ordinal);
            foreach (var file in files)
            {
                if (file?["name"] is not JsonValue n || !n.TryGetValue(out string? name) || file["header"] is not JsonValue h || !h.TryGetValue(out string? headerText))
                    throw new KeditException($"{what}: each entry needs a string 'name' and 'header'");
                name = ModelDirectory.PlainFileName(name, what);
                byte[] header = System.Text.Encoding.UTF8.GetBytes(headerText);
                var tensors = SafetensorsHeader.Parse(header, 8 + header.Length, DataLength(header, $"{what} ({name})"), $"{what} ({name})").Tensors.OrderBy(t => t.Offset).ToList();
                foreach (var t in tensors)
                {
                    // Unchanged tensors are in the edit output in their stored dtype; edited ones in original.safetensors.
                    var from = originalTensors.TryGetInfo(t.Name, out var o) ? o : editedStore.TryGetInfo(t.Name, out var e) ? e
                        : throw new KeditException($"{editDir}: tensor \"{t.Name}\" of the original {name} is in neither the edited model nor original.safetensors");
                    if (from.DType != t.DType || !from.Shape.SequenceEqual(t.Shape))
                        throw new KeditException($"{editDir}: tensor \"{t.Name}\" is {DTypes.ToSafetensorsName(from.DType)} [{string.Join(",", from.Shape)}], but the original {name} stored it as {DTypes.ToSafetensorsName(t.DType)} [{string.Join(",", t.Shape)}]");
                    written.Add(t.Name);
                }
                AtomicOutput.WriteFile(Path.Combine(stagingDir, name), fs =>
                {
                    Span<byte> prefix = stackalloc byte[8];
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                    fs.Write(prefix);
                    fs.Write(header);
                    foreach (var t in tensors) fs.Write(originalTensors.TryGetInfo(t.Name, out _) ? originalTensors.GetBytes(t.Name) : editedStore.GetBytes(t.Name));
                });
            }
            var missing = editedStore.Names.Where(n => !written.Contains(n)).Order(StringComparer.Ordinal).FirstOrDefault();
            if (missing != null) throw new KeditException($"{what}: tensor \"{missing}\" of the edited model is in none of the original files");
            if (originalTensors.Metadata.TryGetValue(SourceIndexKey, out var index))
            {
                byte[] bytes;
                try { bytes = Convert.FromBase64String(index); }
                catch (FormatException) { throw new KeditException($"{origPath}: metadata '{SourceIndexKey}' is not base64"); }
                AtomicOutput.WriteFile(Path.Combine(stagingDir, TensorStore.IndexFileName), fs => fs.Write(bytes));
            }
            ModelDirectory.CopyCompanions(editDir, stagingDir);
        }
    }

    /// <summary>The data section a header describes: the largest end offset (the format leaves no holes, which Parse then checks).</summary>
    static long DataLength(byte[] header, string what)
    {
        try
        {
            using var doc = JsonDocument.Parse(header);
            long end = 0;
            foreach (var p in doc.RootElement.EnumerateObject())
                if (p.Name != SafetensorsHeader.MetadataKey && p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("data_offsets", out var o)
                    && o.ValueKind == JsonValueKind.Array && o.GetArrayLength() == 2 && o[1].TryGetInt64(out long e))
                    end = Math.Max(end, e);
            return end;
        }
        catch (JsonException e) { throw new KeditException($"{what}: the header is not valid JSON ({e.Message})"); }
    }
}
