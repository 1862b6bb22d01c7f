using System.Text.Json;
using Kedit.Backends;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// Whole models on a device backend: the fixture goldens (same tolerances as ForwardGoldenTests), the
/// CPU backend's logits and hooked activations, cached decoding, hook patches, and stories260k's greedy
/// generations token for token.
/// </summary>
public abstract class DeviceForwardTests<TDevice> where TDevice : IDeviceFixture
{
    const double RelTol = 1e-5, LogitAbsTol = 1e-4;

    public static TheoryData<string> Models => new() { "gpt2", "llama", "gptj" };


    [SkippableTheory, MemberData(nameof(Models))]
    public void FixtureModelsMatchGoldensAndTheCpuBackend(string name)
    {
        var backend = TDevice.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture(name), backend);
        using var cpu = Transformer.Load(TestPaths.Fixture(name));
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        var c = model.Config;
        for (int s = 0; gold.TryGetInfo($"seq{s}.ids", out _); s++)
        {
            var ids = gold.ReadInt64($"seq{s}.ids").Select(i => (int)i).ToArray();
            var hooks = new ForwardHooks().CaptureAll(c.Layers, HookPoint.Embedding, HookPoint.BlockOutput, HookPoint.MlpKey, HookPoint.MlpValue, HookPoint.AttentionOutput);
            var cpuHooks = new ForwardHooks().CaptureAll(c.Layers, HookPoint.Embedding, HookPoint.BlockOutput, HookPoint.MlpKey, HookPoint.MlpValue, HookPoint.AttentionOutput);
            var r = model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks });
            var rc = cpu.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = cpuHooks });
            Compare.Close($"{name} seq{s} logits vs golden", r.Logits, gold.ReadFloat64($"seq{s}.logits"), RelTol, LogitAbsTol);
            Compare.Close($"{name} seq{s} logits vs cpu", r.Logits, ToDouble(rc.Logits), RelTol, LogitAbsTol);
            Compare.Close($"{name} seq{s} hidden.0", hooks.Captured(0, HookPoint.Embedding), gold.ReadFloat64($"seq{s}.hidden.0"), RelTol);
            for (int l = 0; l < c.Layers; l++)
            {
                Compare.Close($"{name} seq{s} hidden.{l + 1}", hooks.Captured(l, HookPoint.BlockOutput), gold.ReadFloat64($"seq{s}.hidden.{l + 1}"), RelTol);
                foreach (var point in new[] { HookPoint.MlpKey, HookPoint.MlpValue, HookPoint.AttentionOutput })
                    Compare.Close($"{name} seq{s} {point} L{l} vs cpu", hooks.Captured(l, point), ToDouble(cpuHooks.Captured(l, point)), RelTol);
            }
        }
    }

    [SkippableTheory]
    [InlineData("gpt2_bf16")]
    [InlineData("gpt2_f16")]
    public void SixteenBitCheckpointsStay16BitOnTheDeviceAndMatchTheCpuBackend(string name)
    {
        // The CPU backend widens 16-bit weights slab by slab (WideningGemm); the device holds them 16-bit and widens
        // them in the GEMM's loads and the embedding lookup. Forward and the backward's dx = dy·W both read them.
        var backend = TDevice.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture(name), backend);
        using var cpu = Transformer.Load(TestPaths.Fixture(name));
        var ids = new[] { 5, 17, 42, 99, 3, 250 };
        var r = model.Forward(TokenBatch.Single(ids));
        var rc = cpu.Forward(TokenBatch.Single(ids));
        Compare.Close($"{name} logits vs cpu", r.Logits, ToDouble(rc.Logits), RelTol, LogitAbsTol);
        var bwd = (IBackwardBackend)model.Backend;
        var w = model.Weights.Layers[1].MlpOut;
        var dy = Enumerable.Range(0, 3 * w.Out).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        using var ddy = model.Backend.Allocate(3, w.Out); using var ddx = model.Backend.Allocate(3, w.In);
        model.Backend.Upload(dy, ddy);
        bwd.LinearInputBackward(ddy, w, ddx, accumulate: false);
        var dx = new float[3 * w.In];
        model.Backend.Download(ddx, dx);
        var hdy = new CpuTensor(3, w.Out); dy.CopyTo(hdy.Data, 0); var hdx = new CpuTensor(3, w.In);
        CpuBackend.Instance.LinearInputBackward(hdy, w, hdx, accumulate: false);
        Compare.Close($"{name} dx = dy·W vs cpu", dx, ToDouble(hdx.Data), RelTol);
        // Neither backend promoted any matrix to float32: the embedding lookup and the tied head read the 16-bit table too.
        foreach (var m in model.Weights.Matrices())
            Assert.True(m.HeldFormat != null, $"{name}: a {m.Length}-value matrix was promoted to float32");
    }

    [SkippableTheory, MemberData(nameof(Models))]
    public void PaddedBatchesAndCachedDecodingMatchTheCpuBackend(string name)
    {
        var backend = TDevice.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture(name), backend);
        using var cpu = Transformer.Load(TestPaths.Fixture(name));
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        var seqs = Enumerable.Range(0, 3).Select(i => (IReadOnlyList<int>)gold.ReadInt64($"seq{i}.ids").Select(x => (int)x).ToArray()).ToList();
        foreach (var batch in new[] { TokenBatch.LeftPadded(seqs), TokenBatch.RightPadded(seqs) })
        {
            var r = model.Forward(batch); var rc = cpu.Forward(batch);
            // Padding rows are garbage in both; compare real rows only.
            for (int b = 0; b < batch.Size; b++)
                for (int k = 0; k < batch.RealLength(b); k++)
                {
                    int row = b * batch.Length + batch.RealIndex(b, k);
                    Compare.Close($"{name} padded row {row}", r.Row(row), ToDouble(rc.Row(row).ToArray()), RelTol, LogitAbsTol);
                }
        }

        var ids = seqs[0].ToArray();
        using var cache = model.CreateCache(1, ids.Length);
        int split = ids.Length / 2;
        var steps = new List<float>(model.Forward(TokenBatch.Single(ids[..split]), cache).Logits);
        for (int t = split; t < ids.Length; t++) steps.AddRange(model.Forward(TokenBatch.Single(new[] { ids[t] }), cache).Logits);
        Compare.Close($"{name} cached decoding", steps.ToArray(), gold.ReadFloat64("seq0.logits"), RelTol, LogitAbsTol);
    }

    [SkippableFact]
    public void HookPatchesAndWeightEditsReachTheDevice()
    {
        var backend = TDevice.RequireFresh();
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"), backend);
        using var cpu = Transformer.Load(TestPaths.Fixture("gpt2"));
        var ids = new[] { 5, 17, 42, 99, 7 };
        var delta = Enumerable.Range(0, model.Config.Hidden).Select(i => (float)Math.Sin(i)).ToArray();
        var patched = model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = new ForwardHooks().Add(1, HookPoint.BlockOutput, 0, 2, delta) }).Logits;
        var patchedCpu = cpu.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = new ForwardHooks().Add(1, HookPoint.BlockOutput, 0, 2, delta) }).Logits;
        Compare.Close("patched logits", patched, ToDouble(patchedCpu), RelTol, LogitAbsTol);

        // An in-place edit of a down projection (as the editing methods do) must reach the cached device copy.
        model.Forward(TokenBatch.Single(ids));
        foreach (var m in new[] { model, cpu })
        {
            var w = m.Weights.Layers[1].MlpOut;
            for (int i = 0; i < w.Weight.Length; i += 7) w.Weight[i] += 0.05f;
            w.MarkChanged();
        }
        var edited = model.Forward(TokenBatch.Single(ids)).Logits;
        var editedCpu = cpu.Forward(TokenBatch.Single(ids)).Logits;
        Compare.Close("edited logits", edited, ToDouble(editedCpu), RelTol, LogitAbsTol);
    }

    [SkippableFact]
    public void Stories260kGreedyGenerationEqualsTheCpu()
    {
        TDevice.Require();
        string dir = TestPaths.RequireShared("models", "stories260k");
        using var model = Transformer.Load(dir, TDevice.RequireFresh());
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "expected_generations.json")));
        int checkedCases = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string name = c.GetProperty("name").GetString()!;
            var prompt = c.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var expected = c.GetProperty("output_token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int steps = c.GetProperty("steps").GetInt32();
            var got = Generator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = steps + 1 - prompt.Length, StopTokens = new HashSet<int> { 1 } });
            Assert.True(expected.SequenceEqual(got), $"{name}: expected [{string.Join(",", expected)}]\n got [{string.Join(",", got)}]");
            var lastLogits = c.GetProperty("last_prompt_logits").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            var ours = model.Forward(TokenBatch.Single(prompt), new ForwardOptions { Logits = LogitsMode.Last }).Logits;
            Compare.Close($"{name} last prompt logits", ours, lastLogits, 1e-4, 1e-3);
            checkedCases++;
        }
        Assert.Equal(8, checkedCases);
    }

    static double[] ToDouble(float[] a) => a.Select(v => (double)v).ToArray();
}

public sealed class DeviceForwardTestsOnIlgpuCpu : DeviceForwardTests<IlgpuCpuDevice> { }
public sealed class DeviceForwardTestsOnCuda : DeviceForwardTests<IlgpuCudaDevice> { }
