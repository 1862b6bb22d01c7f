using System.Text.Json;

namespace Kedit.IO;

/// <summary>
/// A model's weights, from one safetensors file or from a sharded checkpoint
/// (model.safetensors.index.json + shards). Tensor names map to the file that holds them; data
/// stays memory-mapped. Reads are thread-safe.
/// </summary>
public sealed class TensorStore : IDisposable
{
    /// <summary>The single-file weights name used by Hugging Face checkpoints.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The shard index name used by Hugging Face checkpoints.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    readonly List<SafetensorsFile> _files;
    readonly Dictionary<string, (SafetensorsFile File, TensorInfo Info)> _tensors;

    /// <summary>What was opened: the directory, or the file for <see cref="OpenFile"/>.</summary>
    public string Source { get; }

    /// <summary>The opened files (shards in name order, or the single file).</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Every tensor name.</summary>
    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <summary>The "__metadata__" of the first (or only) file.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _files[0].Metadata;

    /// <summary>Every tensor, file by file in data order.</summary>
    public IEnumerable<TensorInfo> All =>
        _files.SelectMany(f => f.Tensors).Where(t => _tensors.TryGetValue(t.Name, out var e) && ReferenceEquals(e.Info, t));

    TensorStore(string source, List<SafetensorsFile> files, Dictionary<string, (SafetensorsFile, TensorInfo)> tensors)
    {
        Source = source;
        _files = files;
        _tensors = tensors;
    }

    /// <summary>Opens one safetensors file.</summary>
    public static TensorStore OpenFile(string path)
    {
        var file = SafetensorsFile.Open(path);
        var map = file.Tensors.ToDictionary(t => t.Name, t => (file, t), StringComparer.Ordinal);
        return new TensorStore(path, [file], map);
    }

    /// <summary>
    /// Opens a model directory: model.safetensors if present, else model.safetensors.index.json
    /// and the shards its "weight_map" names, else the directory's only *.safetensors file.
    /// </summary>
    public static TensorStore OpenDirectory(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir))
            throw new KeditException(File.Exists(dir)
                ? $"'{dir}' is a file, not a model directory"
                : $"model directory '{dir}' does not exist");

        string single = System.IO.Path.Combine(dir, SingleFileName);
        if (File.Exists(single)) return OpenFile(single);

        string index = System.IO.Path.Combine(dir, IndexFileName);
        if (File.Exists(index)) return OpenSharded(dir, index);

        string[] candidates = Directory.GetFiles(dir, "*.safetensors");
        if (candidates.Length == 1) return OpenFile(candidates[0]);
        if (candidates.Length == 0)
            throw new KeditException($"no weights in '{dir}': expected {SingleFileName}, {IndexFileName} or one *.safetensors file");
        Array.Sort(candidates, StringComparer.Ordinal);
        throw new KeditException(
            $"cannot tell which weights to load in '{dir}': no {SingleFileName} or {IndexFileName}, and several *.safetensors files (" +
            string.Join(", ", candidates.Select(System.IO.Path.GetFileName)) + ")");
    }

    static TensorStore OpenSharded(string dir, string indexPath)
    {
        Dictionary<string, string> weightMap = ReadWeightMap(indexPath);

        var shardNames = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        foreach (string shard in shardNames)
        {
            // Shards are plain file names beside the index; anything else could reach outside the model.
            if (shard.Length == 0 || shard is "." or ".." || shard.IndexOfAny(['/', '\\']) >= 0 || System.IO.Path.IsPathRooted(shard))
                throw new KeditException($"shard index '{indexPath}': shard \"{shard}\" is not a plain file name in the model directory");
            if (!File.Exists(System.IO.Path.Combine(dir, shard)))
            {
                string example = weightMap.First(kv => kv.Value == shard).Key;
                throw new KeditException($"shard index '{indexPath}' lists shard '{shard}' (e.g. for tensor '{example}'), but it does not exist in '{dir}'");
            }
        }

        var files = new List<SafetensorsFile>();
        try
        {
            var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (string shard in shardNames)
            {
                var f = SafetensorsFile.Open(System.IO.Path.Combine(dir, shard));
                files.Add(f);
                byShard[shard] = f;
            }
            var tensors = new Dictionary<string, (SafetensorsFile, TensorInfo)>(StringComparer.Ordinal);
            foreach (var (name, shard) in weightMap)
            {
                SafetensorsFile f = byShard[shard];
                if (!f.TryGetInfo(name, out TensorInfo info))
                    throw new KeditException($"shard index '{indexPath}' maps tensor '{name}' to '{shard}', but that shard has no such tensor");
                tensors[name] = (f, info);
            }
            return new TensorStore(dir, files, tensors);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(indexPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeditException($"cannot read shard index '{indexPath}': {e.Message}", e);
        }

        JsonDocument doc;
        doc = StrictJson.Parse(bytes, indexPath);
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new KeditException($"shard index '{indexPath}' is not a JSON object");
            if (!doc.RootElement.TryGetProperty("weight_map", out JsonElement wm) || wm.ValueKind != JsonValueKind.Object)
                throw new KeditException($"shard index '{indexPath}' has no \"weight_map\" object");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            try
            {
                foreach (JsonProperty p in wm.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.String)
                        throw new KeditException($"shard index '{indexPath}': \"weight_map\" entry '{p.Name}' is not a file name string");
                    if (!map.TryAdd(p.Name, p.Value.GetString()!))
                        throw new KeditException($"shard index '{indexPath}': \"weight_map\" lists tensor '{p.Name}' twice");
                }
            }
            catch (InvalidOperationException e) // a lone surrogate escape such as "\ud800"
            {
                throw new KeditException($"shard index '{indexPath}' has a string that is not valid text ({e.Message})", e);
            }
            if (map.Count == 0) throw new KeditException($"shard index '{indexPath}' has an empty \"weight_map\"");
            return map;
        }
    }

    /// <summary>True when some file holds this tensor.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Looks up a tensor by name.</summary>
    public bool TryGetInfo(string name, out TensorInfo info)
    {
        bool found = _tensors.TryGetValue(name, out var e);
        info = e.Info;
        return found;
    }

    /// <summary>Looks up a tensor; a missing one is a <see cref="KeditException"/> naming the tensor and the model.</summary>
    public TensorInfo GetInfo(string name) => Find(name).Info;

    (SafetensorsFile File, TensorInfo Info) Find(string name)
    {
        if (_tensors.TryGetValue(name, out var e)) return e;
        throw new KeditException($"tensor '{name}' not found in '{Source}' ({_tensors.Count} tensors)");
    }

    /// <summary>Raw bytes of a tensor, a zero-copy view valid while the store is open.</summary>
    public ReadOnlySpan<byte> GetBytes(string name) { var (f, i) = Find(name); return f.GetBytes(i); }

    /// <summary>A tensor's bytes as memory over the mapping, no copy (see <see cref="SafetensorsFile.GetMappedMemory"/>).</summary>
    public ReadOnlyMemory<byte> GetMappedMemory(string name) { var (f, i) = Find(name); return f.GetMappedMemory(i); }

    /// <summary>A floating tensor as float (see <see cref="SafetensorsFile.ReadFloat32(string)"/>).</summary>
    public float[] ReadFloat32(string name) { var (f, i) = Find(name); return f.ReadFloat32(i.Name); }

    /// <summary>A floating tensor as float into a destination of exactly ElementCount floats.</summary>
    public void ReadFloat32(string name, Span<float> dst) { var (f, i) = Find(name); f.ReadFloat32(i, dst); }

    /// <summary>An F16 or BF16 tensor's values as stored (their bits), no widening.</summary>
    public ushort[] ReadBits16(string name)
    {
        var (f, i) = Find(name);
        var r = new ushort[i.ElementCount];
        f.ReadBits16(i, r);
        return r;
    }

    /// <summary>A floating tensor as double, widened exactly.</summary>
    public double[] ReadFloat64(string name) { var (f, i) = Find(name); return f.ReadFloat64(i.Name); }

    /// <summary>A floating tensor as double into a destination of exactly ElementCount doubles.</summary>
    public void ReadFloat64(string name, Span<double> dst) { var (f, i) = Find(name); f.ReadFloat64(i, dst); }

    /// <summary>An integer tensor as long.</summary>
    public long[] ReadInt64(string name) { var (f, i) = Find(name); return f.ReadInt64(i.Name); }

    /// <summary>An integer tensor as long into a destination of exactly ElementCount longs.</summary>
    public void ReadInt64(string name, Span<long> dst) { var (f, i) = Find(name); f.ReadInt64(i, dst); }

    /// <summary>Unmaps every file.</summary>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
