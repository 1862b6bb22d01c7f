using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Kedit.IO;

namespace Kedit.Editing;

/// <summary>
/// <c>kedit apply</c>: a saved edit (deltas.safetensors from an edit output) applied to the original model,
/// giving the edited model directory — the same weight files as the input (one file, or the same shards with
/// their index), each edited tensor W0 + ΔW stored as F32 as <c>kedit edit</c> stores it, every other tensor
/// copied byte for byte.
/// </summary>
public static class DeltaApplier
{
    /// <summary>Metadata key of deltas.safetensors: SHA-256 over the edited tensors of the model the deltas were computed on.</summary>
    public const string SourceDigestKey = "source_sha256";
    /// <summary>Entries deltas.safetensors holds beside the deltas (PRUNE's unrestrained ΔW), not applied.</summary>
    const string UnrestrainedPrefix = "unrestrained.";

    /// <summary>SHA-256 over each named tensor's name, dtype, shape and bytes, in name order.</summary>
    public static string SourceDigest(TensorStore model, IEnumerable<string> names)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            var info = model.GetInfo(name);
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}\0{DTypes.ToSafetensorsName(info.DType)}\0{string.Join(",", info.Shape)}\0"));
            sha.AppendData(model.GetBytes(name));
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>Writes the edited model into <paramref name="outDir"/> (staged, then moved into place); returns the tensors edited.</summary>
    public static IReadOnlyList<string> Apply(string modelDir, string deltasPath, string outDir)
    {
        if (Path.GetFullPath(outDir).TrimEnd('/') == Path.GetFullPath(modelDir).TrimEnd('/'))
            throw new KeditException($"--out {outDir}: is the model directory; write the edited model elsewhere");
        // Checked before any work: an existing folder kedit did not write is never replaced.
        if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any() && !File.Exists(Path.Combine(outDir, AtomicOutput.MarkerName)))
            throw new KeditException($"--out {outDir}: exists and is not a kedit output; refusing to replace it");
        using var model = TensorStore.OpenDirectory(modelDir);
        using var deltas = SafetensorsFile.Open(deltasPath);
        var edited = deltas.Tensors.Where(t => !t.Name.StartsWith(UnrestrainedPrefix, StringComparison.Ordinal)).ToList();
        if (edited.Count == 0) throw new KeditException($"{deltasPath}: holds no deltas (expected deltas.safetensors from a kedit edit output)");
        foreach (var d in edited)
        {
            if (!model.TryGetInfo(d.Name, out var w))
                throw new KeditException($"{deltasPath}: tensor \"{d.Name}\" is not in {modelDir}; these deltas are for another model");
            if (!w.Shape.SequenceEqual(d.Shape))
                throw new KeditException($"{deltasPath}: tensor \"{d.Name}\" is [{string.Join(",", d.Shape)}], but {modelDir} stores it as [{string.Join(",", w.Shape)}]; these deltas are for another model");
            if (!DTypes.IsFloat(w.DType) || !DTypes.IsFloat(d.DType))
                throw new KeditException($"{deltasPath}: tensor \"{d.Name}\" is not a float tensor in both files");
        }
        if (deltas.Metadata.TryGetValue(SourceDigestKey, out var digest) && digest != SourceDigest(model, edited.Select(d => d.Name)))
            throw new KeditException($"{deltasPath}: computed on another model: the edited tensors of {modelDir} differ from those the edit started from ({SourceDigestKey} mismatch)");

        // W = W0 + ΔW in float32, as the editor forms it; kept F32 (an F16 copy would round the edit away).
        var replaced = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var d in edited)
        {
            var w = model.ReadFloat32(d.Name);
            var delta = deltas.ReadFloat32(d.Name);
            for (int i = 0; i < w.Length; i++) w[i] += delta[i];
            int bad = Array.FindIndex(w, v => !float.IsFinite(v));
            if (bad >= 0) throw new KeditException($"{deltasPath}: tensor \"{d.Name}\" gives a non-finite weight at element {bad}");
            replaced[d.Name] = w;
        }

        string staging = AtomicOutput.CreateStaging(outDir);
        try
        {
            var meta = new Dictionary<string, string> { [EditJournal.EditMetadataKey] = deltas.Metadata.TryGetValue("method", out var m) ? m.ToLowerInvariant() : "apply" };
            foreach (var file in model.Files)
            {
                // The tensors this file holds for the store (a name listed by two shards belongs to the one the index names).
                var names = file.Tensors.Where(t => model.TryGetInfo(t.Name, out var i) && ReferenceEquals(i, t)).Select(t => t.Name).ToList();
                var entries = names.Select(n => replaced.TryGetValue(n, out var w)
                    ? SafetensorsWriter.Entry.F32(n, model.GetInfo(n).Shape, w)
                    : new SafetensorsWriter.Entry(n, model.GetInfo(n).DType, model.GetInfo(n).Shape, model.GetBytes(n).ToArray()));
                var fileMeta = new Dictionary<string, string>(file.Metadata);
                foreach (var kv in meta) fileMeta[kv.Key] = kv.Value;
                SafetensorsWriter.Write(Path.Combine(staging, Path.GetFileName(file.Path)), entries, fileMeta);
            }
            string index = Path.Combine(modelDir, TensorStore.IndexFileName);
            if (model.Files.Count > 1 && File.Exists(index))
            {
                // The same weight map; the total size grows where an edited tensor went from 16 to 32 bits.
                var json = JsonNode.Parse(File.ReadAllText(index))!.AsObject();
                long total = model.All.Sum(t => replaced.ContainsKey(t.Name) ? t.ElementCount * 4 : t.ByteLength);
                if (json["metadata"] is JsonObject md) md["total_size"] = total;
                AtomicOutput.WriteAllText(Path.Combine(staging, TensorStore.IndexFileName), json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
            ModelDirectory.CopyCompanions(modelDir, staging);
            AtomicOutput.CommitDirectory(staging, outDir, _ => false, "a kedit apply output");
        }
        catch { AtomicOutput.Abandon(staging); throw; }
        return edited.Select(d => d.Name).ToList();
    }
}
