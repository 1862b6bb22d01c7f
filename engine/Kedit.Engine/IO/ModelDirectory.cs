namespace Kedit.IO;

/// <summary>
/// Writes Hugging Face model directories: the source's config and tokenizer files, and its weights
/// with some tensors replaced. Unchanged tensors are copied byte for byte in their stored dtype.
/// Callers write into a staging directory from <see cref="AtomicOutput.CreateStaging"/> and commit it,
/// so a killed run never leaves a half-written output.
/// </summary>
public static class ModelDirectory
{
    /// <summary>Files copied from a model directory besides its weights.</summary>
    public static readonly string[] CompanionFiles =
    {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.json", "merges.txt", "tokenizer.model",
    };

    public sealed record Replacement(DType DType, long[] Shape, ReadOnlyMemory<byte> Data);

    /// <summary>
    /// A replacement from float32 values, stored as F32 (edits are small: an F16 copy would round them away). Not copied
    /// (an edited model's matrices are written from the model itself): keep <paramref name="data"/> unchanged until written.
    /// </summary>
    public static Replacement F32(long[] shape, float[] data) => new(DType.F32, shape, SafetensorsWriter.BytesOf(data));

    /// <summary>
    /// Writes <paramref name="stagingDir"/>/model.safetensors with every tensor of the source store
    /// (replaced ones substituted) and copies the companion files.
    /// </summary>
    public static void WriteModel(string sourceDir, TensorStore source, string stagingDir, IReadOnlyDictionary<string, Replacement> replaced,
        IReadOnlyDictionary<string, string>? extraMetadata = null, IEnumerable<string>? dropMetadata = null)
    {
        foreach (var name in replaced.Keys)
            if (!source.Contains(name)) throw new KeditException($"{sourceDir}: cannot replace tensor \"{name}\": the checkpoint has no such tensor");
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var info in source.All.OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            if (replaced.TryGetValue(info.Name, out var r))
                entries.Add(new SafetensorsWriter.Entry(info.Name, r.DType, r.Shape, r.Data));
            else
                entries.Add(new SafetensorsWriter.Entry(info.Name, info.DType, info.Shape, source.GetMappedMemory(info.Name)));
        }
        var meta = new Dictionary<string, string>(source.Metadata);
        if (extraMetadata != null) foreach (var kv in extraMetadata) meta[kv.Key] = kv.Value;
        if (dropMetadata != null) foreach (var k in dropMetadata) meta.Remove(k);
        SafetensorsWriter.Write(Path.Combine(stagingDir, "model.safetensors"), entries, meta);
        CopyCompanions(sourceDir, stagingDir);
    }

    /// <summary>Copies the <see cref="CompanionFiles"/> that <paramref name="sourceDir"/> has.</summary>
    public static void CopyCompanions(string sourceDir, string stagingDir)
    {
        foreach (var f in CompanionFiles)
        {
            string src = Path.Combine(sourceDir, f);
            if (File.Exists(src)) File.Copy(src, Path.Combine(stagingDir, f), overwrite: true);
        }
    }

    /// <summary>
    /// A shard or weights file name from a file kedit did not write itself: a plain name in the folder, nothing
    /// that could reach outside it.
    /// </summary>
    public static string PlainFileName(string name, string source)
    {
        if (name.Length == 0 || name is "." or ".." || name.IndexOfAny(['/', '\\']) >= 0 || Path.IsPathRooted(name))
            throw new KeditException($"{source}: \"{name}\" is not a plain file name");
        return name;
    }

    /// <summary>A kedit edit output (it has a journal): the only kind of folder edit, rollback and export replace.</summary>
    public static bool IsEditOutput(string dir) => File.Exists(Path.Combine(dir, "journal.json"));
}
