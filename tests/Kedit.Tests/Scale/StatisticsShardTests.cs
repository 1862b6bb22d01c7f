using Kedit.Editing;
using Kedit.IO;
using Kedit.Models;
using Xunit;
using Kedit.Tests.Editing;
using static Kedit.Tests.Editing.EditCliTests;

namespace Kedit.Tests.Scale;

/// <summary>
/// Key statistics in shards: merged parts equal the unsharded run's sums (counts identical), whatever order they
/// are given in, and the merge refuses parts that do not make one whole run.
/// </summary>
public class StatisticsShardTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-shards-").FullName;
    static string Corpus => Path.Combine(TestPaths.Repo, "tests", "data", "scale", "corpus.jsonl");
    static readonly int[] Layers = [1, 2];
    // 650 documents: blocks of 200 at 0, 200, 400 and a short one at 600, so 3 shards hold 2+1+1 blocks and 4 hold 1 each.
    const int Samples = 650;

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    string P(string name) => Path.Combine(_tmp, name);

    static (double[] Sum, long Count)[] Read(string path)
    {
        using var f = SafetensorsFile.Open(path);
        return Layers.Select(l => (f.ReadFloat64($"sum.{l}"), f.ReadInt64($"count.{l}")[0])).ToArray();
    }

    List<string> Shards(Transformer model, int n, KeyProducts products, string prefix, int samples = Samples)
    {
        var parts = new List<string>();
        for (int i = 0; i < n; i++)
        {
            string part = P($"{prefix}-{i}of{n}.safetensors");
            StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, samples, new Shard(i, n), part, null, products);
            parts.Add(part);
        }
        return parts;
    }

    [Theory]
    [InlineData(KeyProducts.Float32)]
    [InlineData(KeyProducts.Float64)]
    public void MergedShardsEqualTheUnshardedSumsInAnyOrder(KeyProducts products)
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var whole = new Covariance(Layers, model.Config.Intermediate, products);
        whole.Accumulate(model, TextCorpus.Documents(Corpus, model.Tokenizer, model.Config.VocabSize).Take(Samples), checkpointEvery: KeyStatistics.CheckpointDocuments);
        string wholePath = P("whole.safetensors");
        whole.Save(wholePath, new Dictionary<string, string>());
        var expected = Read(wholePath);
        foreach (int n in new[] { 1, 3, 4 })
        {
            var parts = Shards(model, n, products, $"{products}");
            // Every shard holds documents: the split is real.
            foreach (var p in parts) Assert.True(Read(p)[0].Count > 0, $"{p} holds no tokens");
            string merged = P($"merged-{n}.safetensors"), reversed = P($"reversed-{n}.safetensors");
            StatisticsShards.Merge(parts, merged);
            StatisticsShards.Merge(Enumerable.Reverse(parts).ToList(), reversed);
            var actual = Read(merged);
            for (int k = 0; k < Layers.Length; k++)
            {
                Assert.Equal(expected[k].Count, actual[k].Count);
                double scale = expected[k].Sum.Max(Math.Abs), worst = expected[k].Sum.Zip(actual[k].Sum, (a, b) => Math.Abs(a - b)).Max();
                Assert.True(worst <= 1e-12 * scale, $"{n} shards, layer {Layers[k]}: max |merged − unsharded| = {worst:E3} of {scale:E3}");
                // One shard is the unsharded run: the same product blocks added in the same order.
                if (n == 1) Assert.Equal(expected[k].Sum, actual[k].Sum);
            }
            Assert.True(File.ReadAllBytes(merged).SequenceEqual(File.ReadAllBytes(reversed)), $"{n} shards: merging in reverse order gave other bytes");
            // The merged file is statistics edit --stats reads, with the unsharded run's documents.
            var loaded = Covariance.Load(merged, Layers, model.Config.Intermediate);
            Assert.Equal(Samples, loaded.Documents);
        }
    }

    [Fact]
    public void DocumentsAreDealtInBlocksOfTwoHundredRoundRobin()
    {
        var s = new Shard(1, 3);
        Assert.False(StatisticsShards.Holds(s, 199));
        Assert.True(StatisticsShards.Holds(s, 200));
        Assert.True(StatisticsShards.Holds(s, 399));
        Assert.False(StatisticsShards.Holds(s, 400));
        Assert.True(StatisticsShards.Holds(s, 800));
        Assert.Equal(200, StatisticsShards.DocumentsIn(s, 650));
        Assert.Equal(250, StatisticsShards.DocumentsIn(new Shard(0, 3), 650));
        Assert.Equal(650, Enumerable.Range(0, 3).Sum(i => StatisticsShards.DocumentsIn(new Shard(i, 3), 650)));
        Assert.Equal(0, StatisticsShards.DocumentsIn(new Shard(3, 4), 600));
    }

    [Fact]
    public void AnInterruptedShardResumesFromItsCheckpointToTheSameSums()
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var shard = new Shard(0, 2);   // blocks 0 and 2: a checkpoint after the first 200 documents
        string uninterrupted = P("a.safetensors"), resumed = P("b.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, Samples, shard, uninterrupted, null);
        using var cts = new CancellationTokenSource();
        // Interrupted right after its first checkpoint (200 of its 400 documents), as a killed task would be.
        KeyStatistics.CheckpointWritten = path => { if (path == resumed + ".partial") cts.Cancel(); };
        try
        {
            Assert.ThrowsAny<OperationCanceledException>(() => StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, Samples, shard, resumed, null, ct: cts.Token));
        }
        finally { KeyStatistics.CheckpointWritten = null; }
        Assert.False(File.Exists(resumed));
        var log = new StringWriter();
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, Samples, shard, resumed, log);
        Assert.Contains("resuming after 200 documents", log.ToString());
        Assert.False(File.Exists(resumed + ".partial"));
        var a = Read(uninterrupted); var b = Read(resumed);
        for (int k = 0; k < Layers.Length; k++) { Assert.Equal(a[k].Count, b[k].Count); Assert.Equal(a[k].Sum, b[k].Sum); }
    }

    /// <summary>Runs a merge through the CLI; it must exit 1 with one line naming <paramref name="named"/>, and write nothing.</summary>
    void AssertRefused(string[] parts, string named, string why)
    {
        string outPath = P("refused.safetensors");
        var r = EditCliTests.Kedit("stats", "--merge", string.Join(",", parts), "--out", outPath);
        Assert.True(r.Code == 1, $"exit {r.Code}: {r.Err}");
        Assert.Contains(named, r.Err);
        Assert.Contains(why, r.Err);
        Assert.DoesNotContain("   at ", r.Err);
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(File.Exists(outPath), "a refused merge wrote its output");
    }

    [Fact]
    public void AMergeOfMissingDuplicatedForeignOrUnfinishedPartsIsRefusedNamingThem()
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var parts = Shards(model, 3, KeyProducts.Float32, "ok");
        AssertRefused([parts[0], parts[2]], "shard 1 of 3 missing", parts[2]);
        AssertRefused([parts[0], parts[1], parts[1], parts[2]], "shard 1/3 given twice", parts[1]);
        // Another run's parts: other sample count, other layers, other shard count, float64 products.
        string fewer = P("fewer.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, 100, new Shard(1, 3), fewer, null);
        AssertRefused([parts[0], fewer, parts[2]], fewer, "sample count (100) differs");
        string layer3 = P("layer3.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), [1, 3], Corpus, Samples, new Shard(1, 3), layer3, null);
        AssertRefused([parts[0], layer3, parts[2]], layer3, "layers (1,3) differs");
        string ofTwo = P("oftwo.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, 100, new Shard(1, 2), ofTwo, null);
        string ofTwoSame = P("oftwo-same.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, Corpus, Samples, new Shard(1, 2), ofTwoSame, null);
        AssertRefused([parts[0], ofTwoSame, parts[2]], ofTwoSame, "shard 1/2 of 2");
        // Another corpus.
        string otherCorpus = P("corpus.jsonl");
        File.WriteAllLines(otherCorpus, File.ReadLines(Corpus).Skip(1));
        string foreign = P("foreign.safetensors");
        StatisticsShards.Compute(model, TestPaths.Fixture("gpt2"), Layers, otherCorpus, Samples, new Shard(1, 3), foreign, null);
        AssertRefused([parts[0], foreign, parts[2]], foreign, "corpus");
        // A checkpoint, by name or by its metadata.
        string partial = P("ok-1of3.safetensors.partial");
        File.Copy(parts[1], partial);
        AssertRefused([parts[0], partial, parts[2]], partial, ".partial checkpoint");
        string renamed = P("renamed.safetensors");
        using (var f = SafetensorsFile.Open(parts[1]))
        {
            var meta = new Dictionary<string, string>(f.Metadata) { [KeyStatistics.CheckpointField] = "true" };
            SafetensorsWriter.Write(renamed, f.Tensors.Select(t => t.Name.StartsWith("count.") ? SafetensorsWriter.Entry.I64(t.Name, t.Shape, f.ReadInt64(t.Name))
                : t.Name.StartsWith("sum.") ? SafetensorsWriter.Entry.F64(t.Name, t.Shape, f.ReadFloat64(t.Name)) : SafetensorsWriter.Entry.F32(t.Name, t.Shape, f.ReadFloat32(t.Name))).ToList(), meta);
        }
        AssertRefused([parts[0], renamed, parts[2]], renamed, ".partial checkpoint");
        // Unsharded statistics are not a part.
        string plain = P("plain.safetensors");
        Assert.Equal(0, EditCliTests.Kedit("stats", "--model", TestPaths.Fixture("gpt2"), "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", plain).Code);
        AssertRefused([parts[0], plain, parts[2]], plain, "not a statistics shard");
    }

    [Fact]
    public void TheShardOptionIsCheckedAndAShardWritesItsPartThroughTheCli()
    {
        string part = P("cli.safetensors");
        var r = EditCliTests.Kedit("stats", "--model", TestPaths.Fixture("gpt2"), "--layers", "1,2", "--corpus", Corpus, "--samples", "50", "--shard", "4/4", "--out", part);
        Assert.Equal(1, r.Code);
        Assert.Contains("--shard: shard is \"4/4\"; expected I/N", r.Err);
        r = EditCliTests.Kedit("stats", "--model", TestPaths.Fixture("gpt2"), "--layers", "1,2", "--corpus", Corpus, "--samples", "50", "--shard", "0/1", "--out", part);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("(shard 0/1)", r.Out);
        using var f = SafetensorsFile.Open(part);
        Assert.Equal("0/1", f.Metadata["shard"]);
        Assert.Equal(KeyStatistics.CacheKey(TestPaths.Fixture("gpt2"), Layers, Corpus, 50), f.Metadata["key"]);
    }
}
