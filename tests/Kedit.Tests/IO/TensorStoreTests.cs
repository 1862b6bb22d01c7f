using System.Text.Json;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.IO;

public class TensorStoreTests
{
    static string Gpt2Dir => TestPaths.Fixture("gpt2");

    [Fact]
    public void DirectoryPrefersModelSafetensors()
    {
        // gpt2/ also holds golden_*.safetensors; the weights are model.safetensors.
        using var store = TensorStore.OpenDirectory(Gpt2Dir);
        using var file = SafetensorsFile.Open(Path.Combine(Gpt2Dir, "model.safetensors"));
        Assert.Equal(file.Tensors.Select(t => t.Name).Order(), store.Names.Order());
        Assert.Equal("pt", store.Metadata["format"]);
        Assert.True(store.Contains("transformer.wte.weight"));
        Assert.Equal(file.ReadFloat32("transformer.wte.weight"), store.ReadFloat32("transformer.wte.weight"));
        Assert.Equal(file.Tensors.Count, store.All.Count());
    }

    /// <summary>Writes gpt2's weights as two shards plus an index (alternate tensors per shard).</summary>
    static Dictionary<string, string> WriteSharded(string dir, SafetensorsFile source)
    {
        var weightMap = new Dictionary<string, string>();
        var names = source.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        for (int shard = 0; shard < 2; shard++)
        {
            string shardName = $"model-0000{shard + 1}-of-00002.safetensors";
            var mine = names.Where((_, i) => i % 2 == shard).ToList();
            foreach (var n in mine) weightMap[n] = shardName;
            SafetensorsWriter.Write(Path.Combine(dir, shardName),
                mine.Select(n => { var t = source.GetInfo(n); return new SafetensorsWriter.Entry(n, t.DType, t.Shape, source.GetBytes(n).ToArray()); }),
                new Dictionary<string, string> { ["format"] = "pt", ["shard"] = (shard + 1).ToString() });
        }
        WriteIndex(dir, weightMap);
        return weightMap;
    }

    static void WriteIndex(string dir, Dictionary<string, string> weightMap) =>
        File.WriteAllText(Path.Combine(dir, TensorStore.IndexFileName),
            JsonSerializer.Serialize(new { metadata = new { total_size = 123 }, weight_map = weightMap }));

    [Fact]
    public void ShardedDirectoryReadsLikeTheSingleFile()
    {
        using var dir = new TempDir();
        using var single = SafetensorsFile.Open(Path.Combine(Gpt2Dir, "model.safetensors"));
        var weightMap = WriteSharded(dir.Path, single);

        using var store = TensorStore.OpenDirectory(dir.Path);
        Assert.Equal(2, store.Files.Count);
        Assert.Equal("1", store.Metadata["shard"]);
        Assert.Equal(single.Tensors.Select(t => t.Name).Order(), store.Names.Order());
        Assert.Equal(single.Tensors.Count, store.All.Count());
        foreach (TensorInfo t in single.Tensors)
        {
            TensorInfo s = store.GetInfo(t.Name);
            Assert.Equal(weightMap[t.Name], Path.GetFileName(s.File));
            Assert.Equal(t.Shape, s.Shape);
            Assert.True(single.GetBytes(t.Name).SequenceEqual(store.GetBytes(t.Name)));
            Assert.Equal(single.ReadFloat32(t.Name), store.ReadFloat32(t.Name));
            Assert.Equal(single.ReadFloat64(t.Name), store.ReadFloat64(t.Name));
            var dst = new float[t.ElementCount];
            store.ReadFloat32(t.Name, dst);
            Assert.Equal(single.ReadFloat32(t.Name), dst);
            var dst64 = new double[t.ElementCount];
            store.ReadFloat64(t.Name, dst64);
            Assert.Equal(single.ReadFloat64(t.Name), dst64);
        }
        var e = Assert.Throws<KeditException>(() => store.GetInfo("lm_head.weight"));
        Assert.Contains("lm_head.weight", e.Message);
        Assert.Contains(dir.Path, e.Message);
    }

    [Fact]
    public void ShardedIndexProblemsNameTheIndex()
    {
        using var single = SafetensorsFile.Open(Path.Combine(Gpt2Dir, "model.safetensors"));
        void Fails(Action<string, Dictionary<string, string>> breakIt, string fragment)
        {
            using var dir = new TempDir();
            var map = WriteSharded(dir.Path, single);
            breakIt(dir.Path, map);
            var e = Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.Path).Dispose());
            Assert.Contains(TensorStore.IndexFileName, e.Message);
            Assert.Contains(fragment, e.Message);
        }
        Fails((d, _) => File.WriteAllText(Path.Combine(d, TensorStore.IndexFileName), "{\"weight_map\": {"), "invalid JSON");
        Fails((d, _) => File.WriteAllText(Path.Combine(d, TensorStore.IndexFileName), "{\"metadata\": {}}"), "weight_map");
        Fails((d, _) => File.WriteAllText(Path.Combine(d, TensorStore.IndexFileName), "{\"weight_map\": {\"a\": 3}}"), "'a'");
        Fails((d, _) => File.Delete(Path.Combine(d, "model-00002-of-00002.safetensors")), "model-00002-of-00002.safetensors");
        Fails((d, m) => { m["ghost.weight"] = "model-00001-of-00002.safetensors"; WriteIndex(d, m); }, "ghost.weight");
        Fails((d, m) => { m["transformer.wte.weight"] = "../model.safetensors"; WriteIndex(d, m); }, "../model.safetensors");
        Fails((d, m) =>
        {
            string t = m.First(kv => kv.Value.Contains("00001")).Key;
            m[t] = "model-00002-of-00002.safetensors"; // listed in the wrong shard
            WriteIndex(d, m);
        }, "model-00002-of-00002.safetensors");
    }

    [Fact]
    public void ABrokenShardIsReportedByName()
    {
        using var dir = new TempDir();
        using var single = SafetensorsFile.Open(Path.Combine(Gpt2Dir, "model.safetensors"));
        WriteSharded(dir.Path, single);
        string shard = Path.Combine(dir.Path, "model-00002-of-00002.safetensors");
        byte[] bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.Path));
        Assert.Contains("model-00002-of-00002.safetensors", e.Message);
    }

    [Fact]
    public void DirectoryFallbacksAndErrors()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.Path));
        Assert.Contains(dir.Path, e.Message);

        SafetensorsWriter.Write(dir.File("weights.safetensors"), [SafetensorsWriter.Entry.F32("w", [1], [4])]);
        using (var store = TensorStore.OpenDirectory(dir.Path))
            Assert.Equal([4f], store.ReadFloat32("w"));

        SafetensorsWriter.Write(dir.File("other.safetensors"), [SafetensorsWriter.Entry.F32("w", [1], [5])]);
        e = Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.Path));
        Assert.Contains("other.safetensors", e.Message);
        Assert.Contains("weights.safetensors", e.Message);

        Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.File("absent")));
        Assert.Throws<KeditException>(() => TensorStore.OpenDirectory(dir.File("other.safetensors")));
        using var single = TensorStore.OpenFile(dir.File("other.safetensors"));
        Assert.Equal([5.0], single.ReadFloat64("w"));
        Assert.Contains("other.safetensors", Assert.Throws<KeditException>(() => single.GetBytes("nope")).Message);
    }
}
