using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>
/// Statistics held in the hparams' mom2_dtype while editing: float32 (upstream's default) halves their memory and must
/// give the float64 edit to relative 1e-6 on the fixtures, from the same statistics file.
/// </summary>
public sealed class Float32StatisticsTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-f32stats-").FullName;
    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    [Fact]
    public void Mom2FromFloat32SumsIsTheFloat64OneToSinglePrecision()
    {
        string stats = Path.Combine(_tmp, "s.safetensors");
        Assert.Equal(0, EditCliTests.Kedit("stats", "--model", TestPaths.Fixture("gpt2"), "--layers", "1,2", "--corpus", EditCliTests.Data("corpus.jsonl"), "--out", stats).Code);
        var f64 = Covariance.Load(stats, [1, 2], 256);
        var f32 = Covariance.Load(stats, [1, 2], 256).HeldFor("float32");
        Assert.True(f32.IsFloat32);
        Assert.False(Covariance.Load(stats, [1, 2], 256).HeldFor("float64").IsFloat32);
        var loaded32 = Covariance.Load(stats, [1, 2], 256, float32: true);   // read straight into float32, a layer at a time
        Assert.True(loaded32.IsFloat32);
        Assert.Equal(f32.Mom2(2, 3).Data, loaded32.Mom2(2, 3).Data);
        foreach (int l in new[] { 1, 2 })
        {
            var a = f64.Mom2(l, 100).Data; var b = f32.Mom2(l, 100).Data;
            double num = 0, den = 0;
            for (int i = 0; i < a.Length; i++) { num += (a[i] - b[i]) * (a[i] - b[i]); den += a[i] * a[i]; }
            Assert.InRange(Math.Sqrt(num / den), 0, 1e-7);   // rounded to float32 at most
        }
        Assert.Throws<InvalidOperationException>(() => f32.Save(Path.Combine(_tmp, "x.safetensors"), new Dictionary<string, string>()));
        Assert.Throws<InvalidOperationException>(() => f32.Sum(1));
    }

    [Theory]
    [InlineData("gpt2", "memit")]
    [InlineData("gpt2", "d4s")]
    [InlineData("llama", "memit")]
    public void Float32StatisticsGiveTheFloat64EditToOnePartInAMillion(string fixture, string method)
    {
        string model = TestPaths.Fixture(fixture);
        var hp = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture(fixture, "hparams.json")))!;
        // The fixture's own MEMIT section (its layers), written as a plain hparams file in both dtypes.
        var section = hp["memit"]!.DeepClone().AsObject();
        foreach (string shared in new[] { "adam" }) if (hp[shared] is JsonNode n && !section.ContainsKey(shared)) section[shared] = n.DeepClone();
        var layers = section["layers"]!.AsArray().Select(x => x!.GetValue<int>()).ToArray();
        string stats = Path.Combine(_tmp, "s.safetensors");
        Assert.Equal(0, EditCliTests.Kedit("stats", "--model", model, "--layers", string.Join(",", layers), "--corpus", EditCliTests.Data("corpus.jsonl"), "--out", stats).Code);
        var deltas = new Dictionary<string, SafetensorsFile>();
        foreach (string dtype in new[] { "float64", "float32" })
        {
            section["mom2_dtype"] = dtype;
            string h = Path.Combine(_tmp, $"{dtype}.json"), outDir = Path.Combine(_tmp, dtype);
            File.WriteAllText(h, section.ToJsonString());
            var args = new List<string> { "edit", "--model", model, "--method", method, "--hparams", h, "--requests", EditCliTests.Data("requests.json"), "--stats", stats, "--out", outDir };
            if (method == "d4s") args.AddRange(["--sequential", "--batch-size", "1"]);
            var r = EditCliTests.Kedit([.. args]);
            Assert.True(r.Code == 0, r.Err);
            deltas[dtype] = SafetensorsFile.Open(Path.Combine(outDir, "deltas.safetensors"));
        }
        try
        {
            foreach (var t in deltas["float64"].Tensors)
            {
                var a = deltas["float64"].ReadFloat32(t.Name); var b = deltas["float32"].ReadFloat32(t.Name);
                double num = 0, den = 0;
                for (int i = 0; i < a.Length; i++) { num += (double)(a[i] - b[i]) * (a[i] - b[i]); den += (double)a[i] * a[i]; }
                Assert.True(den > 0, $"{t.Name}: the edit changed nothing");
                Assert.True(Math.Sqrt(num / den) <= 1e-6, $"{fixture} {method} {t.Name}: relative L2 {Math.Sqrt(num / den):E2} between float32 and float64 statistics");
            }
        }
        finally { foreach (var f in deltas.Values) f.Dispose(); }
    }
}
