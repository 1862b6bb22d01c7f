using Kedit.Autodiff;
using Kedit.Backends;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The tape keeps its buffers between calls (compute_z runs it once per optimiser step): a reused
/// tape must give exactly what a fresh tape gives for the same input, whatever ran on it before;
/// and the CPU backend's row-parallel backward ops must equal the serial reference row for row.
/// </summary>
public class TapeReuseTests
{
    static float[] Random(int n, int seed, float scale = 1f) => Kedit.Tests.Device.DeviceTestData.Random(n, seed, scale);

    [Theory]
    [InlineData("gpt2", 1)]
    [InlineData("llama", 0)]
    [InlineData("gptj", 2)]
    public void ReusedTapeMatchesFreshTape(string name, int start)
    {
        var model = Transformer.Load(TestPaths.Fixture(name));
        var batch = TokenBatch.RightPadded(new List<IReadOnlyList<int>> { new[] { 3, 50, 7, 99, 12, 4 }, new[] { 8, 21, 33 } });
        int d = model.Config.Hidden, V = model.Config.VocabSize, rows = batch.Size * batch.Length;
        int[] logitRows = { 5, 2, batch.Length + 2 };
        var x1 = Random(rows * d, 1); var x2 = Random(rows * d, 2);
        var r1 = Random(logitRows.Length * V, 3); var r2 = Random(logitRows.Length * V, 4);

        using var reused = new TransformerTape(model, batch, start);
        // Fill every buffer with another input's values first (forward and backward), then run the real one into caller buffers.
        reused.Forward(x1, logitRows);
        reused.Backward(r1);
        var logits = new float[logitRows.Length * V];
        var dx = new float[rows * d];
        reused.Forward(x2, logitRows, logits);
        reused.Backward(r2, dx);

        using var fresh = new TransformerTape(model, batch, start);
        var expectedLogits = fresh.Forward(x2, logitRows);
        var expectedDx = fresh.Backward(r2);
        Assert.Equal(expectedLogits, logits);
        Assert.Equal(expectedDx, dx);

        // A second backward of the same forward gives the same gradient again (nothing accumulates across calls).
        Assert.Equal(expectedDx, reused.Backward(r2));
    }

    [Fact]
    public void BackwardWithoutForwardThrows()
    {
        var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        using var tape = new TransformerTape(model, TokenBatch.RightPadded(new List<IReadOnlyList<int>> { new[] { 1, 2, 3 } }), 0);
        Assert.Throws<InvalidOperationException>(() => tape.Backward(new float[3 * model.Config.VocabSize]));
    }

    [Theory]
    [InlineData(Activation.GeluNew)]
    [InlineData(Activation.GeluExact)]
    [InlineData(Activation.Silu)]
    public void RowParallelActivationBackwardEqualsSerialReference(Activation act)
    {
        // 96 × 1024 values: enough for the backend to split the rows across cores.
        int rows = 96, n = 1024;
        var u = Random(rows * n, 5, 6f); var g = Random(rows * n, 6);
        var expected = (float[])g.Clone();
        CpuBackwardOps.Activation(u, expected, act);
        var grad = new CpuTensor(rows, n, (float[])g.Clone());
        CpuBackend.Instance.ActivationBackward(new CpuTensor(rows, n, u), grad, act);
        Assert.Equal(expected, grad.Data);
    }

    [Fact]
    public void GeluNewBackwardMatchesFloat64Derivative()
    {
        // Both regimes of the op: vectorised tanh (|t| ≤ 0.6) and MathF.Tanh (saturating tails).
        var u = Enumerable.Range(0, 4001).Select(i => -8f + 16f * i / 4000).ToArray();
        var d = Enumerable.Repeat(1f, u.Length).ToArray();
        CpuBackwardOps.Activation(u, d, Activation.GeluNew);
        const double c = 0.7978845608028654, k = 0.044715;
        for (int i = 0; i < u.Length; i++)
        {
            double x = u[i], t = Math.Tanh(c * (x + k * x * x * x));
            double expected = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x);
            // Float32 evaluation: a few ulps of the terms' magnitude (the tails cancel to ~0).
            Assert.True(Math.Abs(d[i] - expected) <= 2e-6 * (1 + Math.Abs(x)), $"x = {x}: {d[i]} vs {expected}");
        }
    }

    [Fact]
    public void RowParallelNormBackwardsEqualSerialReference()
    {
        int rows = 96, n = 768;
        var x = Random(rows * n, 7, 3f); var dy = Random(rows * n, 8); var dx0 = Random(rows * n, 9); var gamma = Random(n, 10);
        var be = CpuBackend.Instance;

        var expected = (float[])dx0.Clone();
        CpuBackwardOps.LayerNorm(x, dy, rows, n, gamma, 1e-5f, expected, default, default);
        var dx = new CpuTensor(rows, n, (float[])dx0.Clone());
        be.LayerNormBackward(new CpuTensor(rows, n, x), new CpuTensor(rows, n, dy), gamma, 1e-5f, dx, null, null);
        Assert.Equal(expected, dx.Data);

        expected = (float[])dx0.Clone();
        CpuBackwardOps.RmsNorm(x, dy, rows, n, gamma, 1e-6f, expected, default);
        dx = new CpuTensor(rows, n, (float[])dx0.Clone());
        be.RmsNormBackward(new CpuTensor(rows, n, x), new CpuTensor(rows, n, dy), gamma, 1e-6f, dx, null);
        Assert.Equal(expected, dx.Data);
    }
}
