using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Kedit.Api;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>
/// What a saved edit gives back: `rollback` the source's weight files byte for byte (sha256 equal, shards included),
/// and `apply` of deltas.safetensors to the original the edited model's tensors exactly.
/// </summary>
public sealed class SavedEditTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-saved-edit-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_tmp, true); } catch (IOException) { }
    }

    /// <summary>ROME without statistics (quick) from the fixture's own hparams, on any fixture sharing gpt2's tokenizer.</summary>
    static string RomeHParams(string hparamsOf)
    {
        var h = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture(hparamsOf, "hparams.json")))!["rome"]!.AsObject();
        h["mom2_adjustment"] = false;
        h["v_num_grad_steps"] = 5;
        h["context_templates"] = new JsonArray(new JsonArray("{}"));
        return h.ToJsonString();
    }

    /// <summary>An edit output (kedit edit's layout) of one ROME edit on <paramref name="model"/>.</summary>
    string EditOutput(string model, string hparamsOf, string name)
    {
        string outDir = Path.Combine(_tmp, name);
        using var editor = KnowledgeEditor.Load(model, new EditorOptions { Method = EditMethod.Rome, HParamsJson = RomeHParams(hparamsOf) });
        editor.ApplyEdits([new EditRequest("The home of{}", " Tom", " Oslo")]);
        editor.Export(outDir);
        return outDir;
    }

    /// <summary>The gpt2 fixture split into two shards with an index, as Hugging Face saves larger models.</summary>
    public static string Sharded(string into)
    {
        Directory.CreateDirectory(into);
        string src = TestPaths.Fixture("gpt2");
        using (var store = TensorStore.OpenDirectory(src))
        {
            var all = store.All.ToList();
            var map = new JsonObject();
            var shards = new[] { all.Take(all.Count / 2).ToList(), all.Skip(all.Count / 2).ToList() };
            for (int s = 0; s < 2; s++)
            {
                string file = $"model-0000{s + 1}-of-00002.safetensors";
                SafetensorsWriter.Write(Path.Combine(into, file), shards[s].Select(t => new SafetensorsWriter.Entry(t.Name, t.DType, t.Shape, store.GetBytes(t.Name).ToArray())),
                    new Dictionary<string, string> { ["format"] = "pt" });
                foreach (var t in shards[s]) map[t.Name] = file;
            }
            File.WriteAllText(Path.Combine(into, TensorStore.IndexFileName),
                new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = all.Sum(t => t.ByteLength) }, ["weight_map"] = map }.ToJsonString());
        }
        foreach (var f in ModelDirectory.CompanionFiles)
            if (File.Exists(Path.Combine(src, f))) File.Copy(Path.Combine(src, f), Path.Combine(into, f));
        return into;
    }

    static Dictionary<string, string> Sha256s(string dir) => Directory.GetFiles(dir)
        .Where(f => f.EndsWith(".safetensors") || f.EndsWith(".json") || f.EndsWith(".txt"))
        .Where(f => !Path.GetFileName(f).StartsWith("golden_") && Path.GetFileName(f) is not ("edit_inputs.json" or "hparams.json" or "tolerances.json" or "z_traces.json"))
        .ToDictionary(Path.GetFileName, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))))!;

    [Theory]
    [InlineData("gpt2", "gpt2")]
    [InlineData("llama", "llama")]
    [InlineData("gpt2_bf16", "gpt2")]
    [InlineData("gpt2_f16", "gpt2")]
    [InlineData("sharded", "gpt2")]
    public void RollbackWritesTheSourceFilesBackByteForByte(string fixture, string hparamsOf)
    {
        string model = fixture == "sharded" ? Sharded(Path.Combine(_tmp, "sharded-model")) : TestPaths.Fixture(fixture);
        string edited = EditOutput(model, hparamsOf, "edited");
        using (var e = TensorStore.OpenDirectory(edited))
        using (var o = TensorStore.OpenDirectory(model))
            Assert.Contains(e.Names, n => !e.GetBytes(n).SequenceEqual(o.GetBytes(n)));  // the edit changed a tensor

        string back = Path.Combine(_tmp, "back");
        Assert.Equal(0, EditCliTests.Kedit("rollback", "--journal", edited, "--out", back).Code);
        var expected = Sha256s(model);
        var actual = Sha256s(back);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Where(expected.ContainsKey).Order());
        foreach (var (file, sha) in expected) Assert.True(sha == actual[file], $"{fixture}: {file} differs after the rollback");
        if (fixture == "sharded") Assert.False(File.Exists(Path.Combine(back, "model.safetensors")), "the rollback of a sharded model wrote a single file");
    }

    [Theory]
    [InlineData("gpt2", "gpt2")]
    [InlineData("llama", "llama")]
    [InlineData("gpt2_bf16", "gpt2")]
    [InlineData("gpt2_f16", "gpt2")]
    [InlineData("sharded", "gpt2")]
    public void ApplyOfTheSavedDeltasToTheOriginalGivesTheEditedTensorsExactly(string fixture, string hparamsOf)
    {
        string model = fixture == "sharded" ? Sharded(Path.Combine(_tmp, "sharded-model")) : TestPaths.Fixture(fixture);
        string edited = EditOutput(model, hparamsOf, "edited");
        string applied = Path.Combine(_tmp, "applied");
        var r = EditCliTests.Kedit("apply", "--model", model, "--deltas", Path.Combine(edited, "deltas.safetensors"), "--out", applied);
        Assert.True(r.Code == 0, r.Err);

        using (var e = TensorStore.OpenDirectory(edited))
        using (var a = TensorStore.OpenDirectory(applied))
        using (var o = TensorStore.OpenDirectory(model))
        {
            Assert.Equal(e.Names.Order(), a.Names.Order());
            int changed = 0;
            foreach (var n in e.Names)
            {
                Assert.Equal(e.GetInfo(n).DType, a.GetInfo(n).DType);
                Assert.True(e.GetBytes(n).SequenceEqual(a.GetBytes(n)), $"{fixture}: tensor {n} of apply's output differs from the edit's");
                if (!a.GetBytes(n).SequenceEqual(o.GetBytes(n))) changed++;
            }
            Assert.True(changed > 0, "the deltas changed nothing");
            // The same weight files as the input: shards stay shards.
            Assert.Equal(o.Files.Select(f => Path.GetFileName(f.Path)), a.Files.Select(f => Path.GetFileName(f.Path)));
        }
        if (fixture == "sharded")
        {
            var index = JsonNode.Parse(File.ReadAllText(Path.Combine(applied, TensorStore.IndexFileName)))!;
            var src = JsonNode.Parse(File.ReadAllText(Path.Combine(model, TensorStore.IndexFileName)))!;
            Assert.Equal(src["weight_map"]!.ToJsonString(), index["weight_map"]!.ToJsonString());
            using var a = TensorStore.OpenDirectory(applied);
            Assert.Equal(a.All.Sum(t => t.ByteLength), (long)index["metadata"]!["total_size"]!);
        }
    }

    [Fact]
    public void ApplyRefusesDeltasOfAnotherModelInOneLineBeforeWritingAnything()
    {
        string gpt2 = EditOutput(TestPaths.Fixture("gpt2"), "gpt2", "gpt2-edit");
        string llama = EditOutput(TestPaths.Fixture("llama"), "llama", "llama-edit");
        string outDir = Path.Combine(_tmp, "never");
        void Refused(string model, string deltasOf, params string[] words)
        {
            var r = EditCliTests.Kedit("apply", "--model", model, "--deltas", Path.Combine(deltasOf, "deltas.safetensors"), "--out", outDir);
            Assert.Equal(1, r.Code);
            Assert.Single(r.Err.Trim().Split('\n'));
            foreach (var w in words) Assert.Contains(w, r.Err);
            Assert.False(Directory.Exists(outDir), "a refused apply wrote its output");
        }
        Refused(TestPaths.Fixture("gpt2"), llama, "deltas.safetensors", "model.layers.1.mlp.down_proj.weight", "another model");
        // Same names and shapes, other weights: only the digest tells them apart.
        Refused(TestPaths.Fixture("gpt2_bf16"), gpt2, "deltas.safetensors", "another model", "source_sha256");
        // A deltas file missing a name the model has, or of another shape, is refused too.
        string bad = Path.Combine(_tmp, "bad.safetensors");
        SafetensorsWriter.Write(bad, [SafetensorsWriter.Entry.F32("transformer.h.1.mlp.c_proj.weight", [64, 256], new float[64 * 256])]);
        var res = EditCliTests.Kedit("apply", "--model", TestPaths.Fixture("gpt2"), "--deltas", bad, "--out", outDir);
        Assert.Equal(1, res.Code);
        Assert.Contains("[64,256]", res.Err);
        Assert.Contains("[256,64]", res.Err);
        // --out the model directory itself, or a folder kedit did not write: refused before any work.
        res = EditCliTests.Kedit("apply", "--model", TestPaths.Fixture("gpt2"), "--deltas", Path.Combine(gpt2, "deltas.safetensors"), "--out", TestPaths.Fixture("gpt2"));
        Assert.Equal(1, res.Code);
        Assert.Contains("model directory", res.Err);
    }
}
