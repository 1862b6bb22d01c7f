using Kedit.IO;
using Kedit.Tests.Editing;
using Xunit;
using static Kedit.Tests.Editing.EditCliTests;

namespace Kedit.Tests.Scale;

/// <summary>
/// MEMIT's target vectors in shards: an edit that takes them from `kedit targets` parts writes the deltas of the
/// unsharded edit, and refuses parts made for something else.
/// </summary>
public class TargetShardTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-targets-").FullName;
    static string Requests => Path.Combine(TestPaths.Repo, "tests", "data", "scale", "requests.json");
    static string HParams => Data("memit.json");   // layers 1,2 of a 4-layer model: fits gpt2 and llama

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    string P(string name) => Path.Combine(_tmp, name);

    string Stats(string model)
    {
        string stats = P($"stats-{model}.safetensors");
        var r = EditCliTests.Kedit("stats", "--model", TestPaths.Fixture(model), "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats);
        Assert.True(r.Code == 0, r.Err);
        return stats;
    }

    List<string> Targets(string model, int n, string requests, string method = "memit")
    {
        var parts = new List<string>();
        for (int i = 0; i < n; i++)
        {
            string part = P($"{model}-{method}-{i}of{n}.safetensors");
            var r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture(model), "--method", method, "--hparams", HParams, "--requests", requests, "--shard", $"{i}/{n}", "--out", part);
            Assert.True(r.Code == 0, r.Err);
            parts.Add(part);
        }
        return parts;
    }

    string[] Edit(string model, string stats, string outDir, params string[] more) =>
        ["edit", "--model", TestPaths.Fixture(model), "--method", "memit", "--hparams", HParams, "--requests", Requests, "--stats", stats, "--out", outDir, .. more];

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void MemitWithTargetsFromThreeShardsWritesTheUnshardedDeltas(string model)
    {
        string stats = Stats(model), whole = P("whole"), sharded = P("sharded");
        var r = EditCliTests.Kedit(Edit(model, stats, whole));
        Assert.True(r.Code == 0, r.Err);
        var parts = Targets(model, 3, Requests);
        // Every shard holds requests (30 requests are 3 compute_z batches): the split is real.
        foreach (var p in parts) using (var f = SafetensorsFile.Open(p)) Assert.True(int.Parse(f.Metadata["count"]) > 0, $"{p} holds no requests");
        r = EditCliTests.Kedit(Edit(model, stats, sharded, "--targets", string.Join(",", Enumerable.Reverse(parts))));
        Assert.True(r.Code == 0, r.Err);
        using var a = SafetensorsFile.Open(Path.Combine(whole, "deltas.safetensors"));
        using var b = SafetensorsFile.Open(Path.Combine(sharded, "deltas.safetensors"));
        Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
        Assert.NotEmpty(a.Tensors);
        foreach (var t in a.Tensors)
        {
            float[] x = a.ReadFloat32(t.Name), y = b.ReadFloat32(t.Name);
            double scale = x.Max(v => Math.Abs((double)v)), worst = x.Zip(y, (u, v) => Math.Abs((double)u - v)).Max();
            Assert.True(scale > 0, $"{t.Name}: the edit changed nothing");
            Assert.True(worst <= 1e-6 * scale, $"{model} {t.Name}: max |sharded − unsharded| = {worst:E3} of {scale:E3}");
        }
    }

    /// <summary>The edit must exit 1 with one line naming <paramref name="named"/> and leave no output.</summary>
    void AssertRefused(string[] args, string named, string why)
    {
        var r = EditCliTests.Kedit(args);
        Assert.True(r.Code == 1, $"exit {r.Code}: {r.Err}");
        Assert.Contains(named, r.Err);
        Assert.Contains(why, r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.False(Directory.Exists(P("refused")), "a refused edit wrote its output");
    }

    [Fact]
    public void TargetsForAnotherRequestFileModelOrShardCountAreRefused()
    {
        // The 3 requests of gpt2-edit are one compute_z batch: of 2 shards, shard 0 is empty and shard 1 holds all three.
        string stats = Stats("gpt2"), requests = Data("requests.json");
        string[] Edit3(params string[] more) => ["edit", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", HParams, "--requests", requests,
            "--stats", stats, "--out", P("refused"), .. more];
        var parts = Targets("gpt2", 2, requests);
        var r = EditCliTests.Kedit(Edit3("--targets", string.Join(",", parts)));
        Assert.True(r.Code == 0, r.Err);
        Directory.Delete(P("refused"), true);
        AssertRefused(Edit3("--targets", parts[0]), "targets shard 1 of 2 missing", parts[0]);
        AssertRefused(Edit3("--targets", $"{parts[0]},{parts[0]}"), "given twice", parts[0]);
        string ofThree = P("of-three.safetensors");
        r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", HParams, "--requests", requests, "--shard", "1/3", "--out", ofThree);
        Assert.True(r.Code == 0, r.Err);
        AssertRefused(Edit3("--targets", $"{parts[0]},{ofThree}"), ofThree, "of 3");
        // Another request file (one request of the scale file), another model (llama), another slice.
        string other = P("other.safetensors");
        r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", HParams, "--requests", Requests, "--limit", "1", "--shard", "0/1", "--out", other);
        Assert.True(r.Code == 0, r.Err);
        AssertRefused(Edit3("--targets", other), other, "another request file");
        string llama = P("llama.safetensors");
        r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture("llama"), "--method", "memit", "--hparams", HParams, "--requests", requests, "--shard", "0/2", "--out", llama);
        Assert.True(r.Code == 0, r.Err);
        AssertRefused(Edit3("--targets", $"{llama},{parts[1]}"), llama, "another model");
        AssertRefused(Edit3("--targets", string.Join(",", parts), "--limit", "2"), parts[0], "another slice of the request file");
        // One batch only.
        AssertRefused(Edit3("--targets", string.Join(",", parts), "--sequential"), "--sequential", "one batch edit");
        r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", HParams, "--requests", requests, "--shard", "0/1", "--sequential", "--out", P("t.safetensors"));
        Assert.Equal(2, r.Code);
        Assert.Contains("--sequential", r.Err);
        r = EditCliTests.Kedit("targets", "--model", TestPaths.Fixture("gpt2"), "--method", "rome", "--hparams", Data("rome.json"), "--requests", requests, "--shard", "0/1", "--out", P("t.safetensors"));
        Assert.Equal(2, r.Code);
        Assert.Contains("memit or alphaedit", r.Err);
    }
}
