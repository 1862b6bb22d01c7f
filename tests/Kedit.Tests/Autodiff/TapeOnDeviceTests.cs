using Kedit.Autodiff;
using Kedit.Backends;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The tape on a backend other than the CPU (ILGPU's CPU accelerator, always present): parameter gradients
/// are kept in device tensors and added into the caller's <see cref="ParameterGrads"/> at the end, so they
/// must equal the CPU tape's and accumulate onto what the caller already holds.
/// </summary>
public class TapeOnDeviceTests
{
    [Fact]
    public void DeviceTapeGradientsEqualTheCpuTapesAndAccumulate()
    {
        using var device = Transformer.Load(TestPaths.Fixture("gpt2"), IlgpuBackend.CreateCpu());
        using var cpu = Transformer.Load(TestPaths.Fixture("gpt2"));
        var batch = TokenBatch.RightPadded(new List<IReadOnlyList<int>> { new[] { 3, 50, 7, 99 }, new[] { 8, 21 } });
        int d = cpu.Config.Hidden, V = cpu.Config.VocabSize, rows = batch.Size * batch.Length;
        var rng = new Random(9);
        var x = Enumerable.Range(0, rows * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] logitRows = { 3, batch.Length + 1 };
        var r = Enumerable.Range(0, logitRows.Length * V).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

        using var cpuTape = new TransformerTape(cpu, batch, 1);
        using var devTape = new TransformerTape(device, batch, 1);
        Assert.IsNotType<CpuBackend>(devTape.Backend);
        cpuTape.Forward(x, logitRows);
        devTape.Forward(x, logitRows);
        var cpuGrads = new ParameterGrads();
        var cpuDx = cpuTape.Backward(r, cpuGrads);
        // The device run starts from gradients already held (1 everywhere): Flush adds, never overwrites.
        var devGrads = new ParameterGrads();
        foreach (var (p, _) in cpuGrads.All) Array.Fill(devGrads.For(MatchingParameter(cpu, device, p)), 1f);
        var devDx = devTape.Backward(r, devGrads);

        AssertClose(cpuDx, devDx, 0, "residual");
        int checkedParameters = 0;
        foreach (var (p, g) in cpuGrads.All)
        {
            Assert.True(devGrads.TryGet(MatchingParameter(cpu, device, p), out var dg));
            AssertClose(g, dg, 1f, $"parameter of {p.Length} values");
            checkedParameters++;
        }
        Assert.Equal(cpuGrads.All.Count(), devGrads.All.Count());
        Assert.True(checkedParameters >= 12, $"{checkedParameters} parameters");
    }

    /// <summary>The same parameter in the other model (loaded from the same files): found by position in the weights.</summary>
    static float[] MatchingParameter(Transformer from, Transformer to, float[] p)
    {
        var a = Parameters(from).ToList(); var b = Parameters(to).ToList();
        int i = a.FindIndex(q => ReferenceEquals(q, p));
        Assert.True(i >= 0, "parameter not found");
        return b[i];
    }

    static IEnumerable<float[]> Parameters(Transformer m)
    {
        var w = m.Weights;
        foreach (var b in w.Layers)
            foreach (var v in new[] { b.Norm1Gamma, b.Norm1Beta, b.Norm2Gamma, b.Norm2Beta, b.Qkv.Weight, b.Qkv.Bias, b.AttnOut.Weight, b.AttnOut.Bias,
                         b.MlpIn.Weight, b.MlpIn.Bias, b.MlpOut.Weight, b.MlpOut.Bias })
                if (v != null) yield return v;
        yield return w.FinalNormGamma;
        if (w.FinalNormBeta != null) yield return w.FinalNormBeta;
        yield return w.LmHead.Weight;
        if (w.LmHead.Bias != null) yield return w.LmHead.Bias;
    }

    static void AssertClose(float[] expected, float[] actual, float offset, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i] + offset, dlt = actual[i] - e;
            num += dlt * dlt; den += (double)expected[i] * expected[i];
        }
        Assert.True(den > 0, $"{what}: a zero gradient checks nothing");
        Assert.True(Math.Sqrt(num / den) < 1e-4, $"{what}: relative L2 {Math.Sqrt(num / den):E2}");
    }
}
