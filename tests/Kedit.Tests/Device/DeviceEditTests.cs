using Kedit.Backends;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// `kedit edit --device opencl` (forward passes and compute_z's backward tape on the device) reproduces the CPU edit;
/// and key statistics accumulate on the device.
/// </summary>
public class DeviceEditTests
{
    static string Data(string f) => Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", f);

    // Statistics of the gpt2 fixture's layers 1, 2 on the CPU, shared by both devices' edits (as `--stats FILE` would be).
    static readonly Lazy<Covariance> s_gpt2Stats = new(() =>
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var cov = new Covariance(new[] { 1, 2 }, model.Config.Intermediate);
        cov.Accumulate(model, TextCorpus.Documents(Data("corpus.jsonl"), model.Tokenizer));
        return cov;
    });

    [SkippableTheory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void CovarianceOnTheDeviceEqualsTheHostFloat64SumOfTheSameKeys(string name)
    {
        var backend = OpenClFixture.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture(name), backend);
        Skip.IfNot(new DeviceLinearAlgebra(backend).HasFloat64, "the OpenCL device has no float64 (statistics then sum downloaded keys on the host)");
        var docs = TextCorpus.Documents(Data("corpus.jsonl"), model.Tokenizer).ToList();
        int f = model.Config.Intermediate;
        int[] layers = { 1, 2 };

        var cov = new Covariance(layers, f);
        cov.Add(model, docs[0]);
        Assert.True(cov.HasDeviceSums);             // held on the device, not yet downloaded
        int checkpoints = 0;
        // Accumulate resumes after the first document; reading the statistics at every checkpoint folds the
        // device sums in early, which must neither lose nor double-count a document.
        cov.Accumulate(model, docs, checkpointEvery: 7, checkpoint: c => { c.Mom2(1); checkpoints++; });
        Assert.False(cov.HasDeviceSums);
        Assert.True(checkpoints > 0);

        // Reference: the same model's keys, downloaded and summed on the host in float64.
        var expected = layers.ToDictionary(l => l, _ => new double[(long)f * f]);
        long tokens = 0;
        foreach (var doc in docs)
        {
            var ids = doc.Length > model.Config.MaxPositions ? doc[..model.Config.MaxPositions] : doc;
            var hooks = new ForwardHooks { StopAfterLayer = 2 }.Capture(1, HookPoint.MlpKey).Capture(2, HookPoint.MlpKey);
            model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
            foreach (int l in layers)
            {
                var k = hooks.Captured(l, HookPoint.MlpKey);
                var e = expected[l];
                for (int t = 0; t < ids.Length; t++)
                    for (int i = 0; i < f; i++)
                    {
                        double ki = k[t * f + i];
                        for (int j = 0; j < f; j++) e[(long)i * f + j] += ki * k[t * f + j];
                    }
            }
            tokens += ids.Length;
        }
        foreach (int l in layers)
        {
            Assert.Equal(tokens, cov.Count(l));
            var actual = cov.Sum(l).Data;
            double scale = expected[l].Max(Math.Abs), worst = 0;
            for (int i = 0; i < actual.Length; i++) worst = Math.Max(worst, Math.Abs(actual[i] - expected[l][i]));
            Assert.True(worst <= 1e-10 * scale, $"{name} layer {l}: max |Δ| {worst:E2} against max |C| {scale:E2} (limit 1e-10 relative)");
        }
        // And the device model's statistics are the CPU model's up to the forward passes' float32 differences.
        if (name == "gpt2")
            foreach (int l in layers)
                CompareDouble.Close($"gpt2 layer {l} device vs cpu statistics", cov.Sum(l).Data, s_gpt2Stats.Value.Sum(l).Data, 1e-4);
    }

    [SkippableTheory]
    [InlineData("gpt2", "transformer.h.{0}.mlp.c_proj.weight")]
    [InlineData("llama", "model.layers.{0}.mlp.down_proj.weight")]
    [InlineData("gptj", "transformer.h.{0}.mlp.fc_out.weight")]
    public void MemitEditOnOpenClMatchesTheCpu(string name, string weight)
    {
        OpenClFixture.Require();
        string tmp = Directory.CreateTempSubdirectory("kedit-dev-edit-").FullName;
        string data = Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit");
        string model = TestPaths.Fixture(name);
        // The gpt2 fixtures' requests and hparams fit every fixture model (same tokenizer, 4 layers).
        string stats = Path.Combine(tmp, "stats.safetensors");
        Assert.Equal(0, Cli.Cli.Run(new[] { "stats", "--model", model, "--layers", "1,2", "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", stats }, TextWriter.Null, TextWriter.Null));
        foreach (var device in new[] { "cpu", "opencl" })
        {
            var err = new StringWriter();
            int code = Cli.Cli.Run(new[] { "edit", "--device", device, "--model", model, "--method", "memit", "--hparams", Path.Combine(data, "memit.json"),
                "--requests", Path.Combine(data, "requests.json"), "--stats", stats, "--out", Path.Combine(tmp, device) }, TextWriter.Null, err);
            Assert.True(code == 0, err.ToString());
        }
        using var cpu = SafetensorsFile.Open(Path.Combine(tmp, "cpu", "deltas.safetensors"));
        using var ocl = SafetensorsFile.Open(Path.Combine(tmp, "opencl", "deltas.safetensors"));
        foreach (int l in new[] { 1, 2 })
        {
            string n = string.Format(weight, l);
            Compare.Close($"{name} {n}", ocl.ReadFloat32(n), cpu.ReadFloat64(n), 1e-3);
        }
        Directory.Delete(tmp, true);
    }
}
