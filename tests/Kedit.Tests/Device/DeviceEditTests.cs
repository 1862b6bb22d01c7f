using Kedit.Backends;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;
using Kedit.Tests.Editing;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// `kedit edit --device ilgpu-cpu|cuda` (forward passes and compute_z's backward tape on the device) reproduces the CPU edit;
/// key statistics accumulate on the device; and with every factorisation and σ_max forced onto the device
/// (thresholds 0: the fixtures are below the default ones) ROME, MEMIT, D4S and MEMIT + PRUNE give the CPU's deltas.
/// </summary>
public abstract class DeviceEditTests<TDevice> where TDevice : IDeviceFixture
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
        var backend = TDevice.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture(name), backend);
        Skip.IfNot(new DeviceLinearAlgebra(backend).HasFloat64, "the device has no float64 (statistics then sum downloaded keys on the host)");
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
        var (expected, tokens) = KeySumsAlone.Of(model, docs, layers);
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

    // Plain MEMIT's device factor is covered by MEMIT + PRUNE (same solver); ROME and D4S take two requests, one per step.
    public static TheoryData<string, bool> Methods => new() { { "rome", false }, { "d4s", false }, { "memit", true } };

    [SkippableTheory, MemberData(nameof(Methods))]
    public void EditsWithTheFactorisationsAndSigmaMaxOnTheDeviceMatchTheCpu(string method, bool prune)
    {
        var backend = TDevice.RequireFresh();
        Skip.IfNot(new DeviceLinearAlgebra(backend).HasFloat64, "the device has no float64 (factorisations then stay on the host)");
        var cpu = Edit(CpuBackend.Instance, method, prune, out _);
        var dev = Edit(backend, method, prune, out var ctx);
        foreach (var (layer, delta) in cpu)
            Compare.Close($"{method}{(prune ? "+prune" : "")} layer {layer} ΔW", dev[layer].Data.Select(v => (float)v).ToArray(), delta.Data, 1e-3);
        if (prune)
            foreach (var (layer, sigma) in ctx.Sigma)
                Assert.True(Math.Abs(sigma - ctx.CpuSigma[layer]) <= 1e-5 * ctx.CpuSigma[layer], $"σ_max(W0) of layer {layer}: device {sigma:R}, cpu {ctx.CpuSigma[layer]:R}");
    }

    sealed record DeviceUse(Dictionary<int, double> Sigma, Dictionary<int, double> CpuSigma);

    /// <summary>
    /// The gpt2-edit requests through an EditSession on <paramref name="backend"/> (ROME and D4S two requests one per step,
    /// MEMIT all in one batch), every factorisation and σ_max on the device for a device backend; returns W − W0 per layer.
    /// </summary>
    static Dictionary<int, MatrixD> Edit(IBackend backend, string method, bool prune, out DeviceUse use)
    {
        var m = method switch { "rome" => EditMethod.Rome, "d4s" => EditMethod.D4S, _ => EditMethod.Memit };
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"), backend);
        var h = HParams.Load(Data(method + ".json"), m).Validate(model.Config);
        var session = new EditSession(model, h, s_gpt2Stats.Value, h.ContextTemplates!, prune ? PruneMode.Log : null);
        bool device = backend is DeviceBackend;
        if (device) session.Context.Placement = LinearAlgebraPlacement.For(backend, minFactorOrder: 0, minSpectralElements: 0);
        var requests = RequestLoader.Load(Data("requests.json"));
        if (m == EditMethod.Memit) session.Apply(requests);
        else foreach (var r in requests.Take(2)) session.Apply(new[] { r });
        session.Materialise();

        var ctx = session.Context;
        var sigma = new Dictionary<int, double>(); var cpuSigma = new Dictionary<int, double>();
        foreach (var l in ctx.Layers)
        {
            // The wired pieces really ran on the device.
            if (device && m == EditMethod.Memit) Assert.True(ctx.MemitSolver(l.Layer).FactorOnDevice, $"λC of layer {l.Layer} was factored on the host");
            if (device && m == EditMethod.Rome) Assert.IsType<DeviceCholesky>(ctx.CovarianceFactor(l.Layer));
            if (prune)
            {
                sigma[l.Layer] = ctx.SigmaMaxOriginal(l.Layer);
                cpuSigma[l.Layer] = SpectralNorm.Largest(l.OriginalMath()).Value;
            }
        }
        use = new DeviceUse(sigma, cpuSigma);
        return ctx.Layers.ToDictionary(l => l.Layer, l => l.CurrentDelta());
    }

    [SkippableTheory]
    [InlineData("gpt2", "transformer.h.{0}.mlp.c_proj.weight")]
    [InlineData("llama", "model.layers.{0}.mlp.down_proj.weight")]
    [InlineData("gptj", "transformer.h.{0}.mlp.fc_out.weight")]
    public void MemitEditOnTheDeviceMatchesTheCpu(string name, string weight)
    {
        string deviceName = TDevice.Require().Name;
        string tmp = Directory.CreateTempSubdirectory("kedit-dev-edit-").FullName;
        string data = Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit");
        string model = TestPaths.Fixture(name);
        // The gpt2 fixtures' requests and hparams fit every fixture model (same tokenizer, 4 layers).
        string stats = Path.Combine(tmp, "stats.safetensors");
        Assert.Equal(0, Cli.Cli.Run(new[] { "stats", "--model", model, "--layers", "1,2", "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", stats }, TextWriter.Null, TextWriter.Null));
        foreach (var device in new[] { "cpu", deviceName })
        {
            var err = new StringWriter();
            int code = Cli.Cli.Run(new[] { "edit", "--device", device, "--model", model, "--method", "memit", "--hparams", Path.Combine(data, "memit.json"),
                "--requests", Path.Combine(data, "requests.json"), "--stats", stats, "--out", Path.Combine(tmp, device) }, TextWriter.Null, err);
            Assert.True(code == 0, err.ToString());
        }
        using var cpu = SafetensorsFile.Open(Path.Combine(tmp, "cpu", "deltas.safetensors"));
        using var ocl = SafetensorsFile.Open(Path.Combine(tmp, deviceName, "deltas.safetensors"));
        foreach (int l in new[] { 1, 2 })
        {
            string n = string.Format(weight, l);
            Compare.Close($"{name} {n}", ocl.ReadFloat32(n), cpu.ReadFloat64(n), 1e-3);
        }
        Directory.Delete(tmp, true);
    }
}

public sealed class DeviceEditTestsOnIlgpuCpu : DeviceEditTests<IlgpuCpuDevice> { }
public sealed class DeviceEditTestsOnCuda : DeviceEditTests<IlgpuCudaDevice> { }
