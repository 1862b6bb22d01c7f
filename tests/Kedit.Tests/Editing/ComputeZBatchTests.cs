using Kedit.Editing;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>
/// compute_z for several requests at once shares one padded batch but keeps each request's own δ, Adam
/// state and early stop: every request's result must be the one it gets when run alone.
/// </summary>
public class ComputeZBatchTests
{
    public static TheoryData<string> Models => new() { "gpt2", "llama", "gptj" };

    static void AssertSameRun(string what, ZResult alone, ZResult batched)
    {
        Assert.True(alone.Trace.Count == batched.Trace.Count, $"{what}: {batched.Trace.Count} iterations batched vs {alone.Trace.Count} alone");
        for (int i = 0; i < alone.Trace.Count; i++)
            Assert.True(Math.Abs(alone.Trace[i].Loss - batched.Trace[i].Loss) <= 1e-5 * Math.Max(1, Math.Abs(alone.Trace[i].Loss)),
                $"{what} iteration {i}: loss {batched.Trace[i].Loss} batched vs {alone.Trace[i].Loss} alone");
        Compare.Close($"{what} grad0", batched.Grad0, alone.Grad0.Select(v => (double)v).ToArray(), 1e-5);
        Compare.Close($"{what} delta", batched.Delta, alone.Delta.Select(v => (double)v).ToArray(), 1e-4);
        Compare.Close($"{what} z", batched.Z, alone.Z.Select(v => (double)v).ToArray(), 1e-5);
    }

    [Theory, MemberData(nameof(Models))]
    public void EachRequestOfABatchGetsItsOwnRun(string name)
    {
        using var fx = new EditFixture(name);
        var h = fx.HParams("memit");
        int layer = h.Layers[^1];
        var requests = fx.Requests("expanded_memit");
        Assert.True(requests.Count >= 2, "the batch has several requests");
        var settings = ZSettings.From(h, fx.Model.Config.Layers);
        var alone = requests.Select(r => ComputeZ.Run(fx.Model, r, layer, HookPoint.BlockOutput, settings)).ToList();

        // An early-stop threshold some requests reach before others, so the batch holds requests that stopped.
        var finals = alone.Select(r => r.Trace[^1].Loss).Order().ToList();
        var stopping = settings with { EarlyStopLoss = (finals[0] + alone.Max(r => r.Trace[0].Loss)) / 2 };
        alone = requests.Select(r => ComputeZ.Run(fx.Model, r, layer, HookPoint.BlockOutput, stopping)).ToList();
        Assert.True(alone.Select(r => r.Trace.Count).Distinct().Count() > 1,
            $"{name}: the requests stop at different iterations ({string.Join(", ", alone.Select(r => r.Trace.Count))})");

        var batched = ComputeZ.RunBatch(fx.Model, requests, layer, HookPoint.BlockOutput, stopping);
        Assert.Equal(requests.Count, batched.Length);
        for (int j = 0; j < requests.Count; j++) AssertSameRun($"{name} request {j}", alone[j], batched[j]);
    }

    [Fact]
    public void MoreRowsThanOneBatchHoldsRunInSeveralBatches()
    {
        using var fx = new EditFixture("gpt2");
        var h = fx.HParams("rome");
        int layer = h.Layers[^1];
        var settings = ZSettings.From(h, fx.Model.Config.Layers) with { Steps = 3 };
        var one = fx.Requests("expanded_rome")[0];
        int rowsEach = one.Contexts.Count() + one.KlRows.Count;
        var requests = Enumerable.Repeat(one, ComputeZ.MaxBatchRows / rowsEach + 2).ToList();
        var alone = ComputeZ.Run(fx.Model, one, layer, HookPoint.MlpValue, settings);
        var batched = ComputeZ.RunBatch(fx.Model, requests, layer, HookPoint.MlpValue, settings);
        Assert.Equal(requests.Count, batched.Length);
        for (int j = 0; j < requests.Count; j++) AssertSameRun($"copy {j}", alone, batched[j]);
    }

    [Fact]
    public void BatchesAreBoundedByRowsAndByTapeMemory()
    {
        using var fx = new EditFixture("gpt2");
        var c = fx.Model.Config;
        var one = fx.Requests("expanded_memit")[0];
        int rowsEach = one.Contexts.Count() + one.KlRows.Count;
        var many = Enumerable.Repeat(one, 2 * ComputeZ.MaxBatchRows / rowsEach + 1).ToList();
        // Rows bound: as many whole requests as fit, then the rest.
        var byRows = ComputeZ.PlanBatches(c, many, 0, long.MaxValue);
        Assert.Equal(many.Count, byRows.Sum(b => b.Count));
        Assert.All(byRows, b => Assert.True(b.Count * rowsEach <= ComputeZ.MaxBatchRows, $"{b.Count} requests of {rowsEach} rows"));
        Assert.True(byRows.Count >= 3);
        // A tape budget below one request's need: one request per batch, none dropped.
        var byBytes = ComputeZ.PlanBatches(c, many.Take(5).ToList(), 0, 1);
        Assert.Equal(new[] { (0, 1), (1, 1), (2, 1), (3, 1), (4, 1) }, byBytes);
    }
}
