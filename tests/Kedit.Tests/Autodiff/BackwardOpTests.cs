using Kedit.Autodiff;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The loss, embedding and exact-GELU backward ops of <see cref="CpuBackwardOps"/> one by one, against float64
/// formulas and central differences of those formulas (the tape tests reach these ops only through a trained model;
/// these give each row, the scale and the target its own check).
/// </summary>
public class BackwardOpTests
{
    static float[] Random(int n, int seed, float scale = 2f) => Kedit.Tests.Device.DeviceTestData.Random(n, seed, scale);

    static double LogSumExp(double[] z) { double m = z.Max(); return m + Math.Log(z.Sum(v => Math.Exp(v - m))); }

    static double[] Row(float[] a, int r, int n) => a.Skip(r * n).Take(n).Select(v => (double)v).ToArray();

    /// <summary>∂f/∂zᵢ by central differences in float64 (f is smooth; step 1e-5 gives ~1e-10 accuracy).</summary>
    static double[] NumericGradient(double[] z, Func<double[], double> f)
    {
        var g = new double[z.Length];
        for (int i = 0; i < z.Length; i++)
        {
            var zp = (double[])z.Clone(); var zm = (double[])z.Clone();
            zp[i] += 1e-5; zm[i] -= 1e-5;
            g[i] = (f(zp) - f(zm)) / 2e-5;
        }
        return g;
    }

    /// <summary>Float32 evaluation of a float64 value: a few ulps of its magnitude.</summary>
    static void Close(double expected, float actual) =>
        Assert.True(Math.Abs(actual - expected) <= 2e-6 * (1 + Math.Abs(expected)), $"{actual} vs {expected}");

    const int Rows = 3, Vocab = 7;

    [Fact]
    public void LogSoftmaxIsEachRowMinusItsLogSumExp()
    {
        var z = Random(Rows * Vocab, 1, 6f);
        var lp = new float[Rows * Vocab];
        CpuBackwardOps.LogSoftmax(z, Rows, Vocab, lp);
        for (int r = 0; r < Rows; r++)
        {
            var zr = Row(z, r, Vocab); double lse = LogSumExp(zr);
            for (int c = 0; c < Vocab; c++) Close(zr[c] - lse, lp[r * Vocab + c]);
        }
    }

    [Fact]
    public void SoftmaxCrossEntropyGivesEachRowsLossAndScaledGradient()
    {
        var z = Random(Rows * Vocab, 2, 4f);
        int[] targets = [3, 0, 6];
        const float scale = 0.37f;
        var dz = new float[Rows * Vocab]; var loss = new float[Rows];
        CpuBackwardOps.SoftmaxCrossEntropy(z, Vocab, targets, scale, dz, loss);
        for (int r = 0; r < Rows; r++)
        {
            int t = targets[r];
            double Loss(double[] row) => LogSumExp(row) - row[t];
            var zr = Row(z, r, Vocab);
            Close(Loss(zr), loss[r]);
            var g = NumericGradient(zr, Loss);
            for (int c = 0; c < Vocab; c++) Close(scale * g[c], dz[r * Vocab + c]);
        }
    }

    [Fact]
    public void KlDivergenceGivesEachRowsDivergenceAndScaledGradient()
    {
        var z = Random(Rows * Vocab, 3, 3f);
        var lp0 = new float[Rows * Vocab];
        CpuBackwardOps.LogSoftmax(Random(Rows * Vocab, 4, 3f), Rows, Vocab, lp0);
        const float scale = 1.9f;
        var dz = new float[Rows * Vocab]; var kl = new float[Rows];
        CpuBackwardOps.KlDivergence(z, lp0, Vocab, scale, dz, kl);
        for (int r = 0; r < Rows; r++)
        {
            var ref0 = Row(lp0, r, Vocab);
            double Kl(double[] row)
            {
                double lse = LogSumExp(row), s = 0;
                for (int c = 0; c < Vocab; c++) s += Math.Exp(row[c] - lse) * (row[c] - lse - ref0[c]);
                return s;
            }
            var zr = Row(z, r, Vocab);
            Assert.True(Kl(zr) > 1e-3, "the rows must differ from the reference for the check to mean anything");
            Close(Kl(zr), kl[r]);
            var g = NumericGradient(zr, Kl);
            for (int c = 0; c < Vocab; c++) Close(scale * g[c], dz[r * Vocab + c]);
        }
    }

    [Fact]
    public void EmbeddingBackwardAddsEachRowIntoItsTokensRowAndSkipsPadding()
    {
        const int d = 4, vocab = 5;
        int[] ids = [2, -1, 4, 2, 0];
        var dx = Random(ids.Length * d, 5);
        var table = Random(vocab * d, 6);
        var expected = (float[])table.Clone();
        for (int r = 0; r < ids.Length; r++)
            if (ids[r] >= 0) for (int i = 0; i < d; i++) expected[ids[r] * d + i] += dx[r * d + i];
        CpuBackwardOps.Embedding(dx, ids, d, table);
        Assert.Equal(expected, table);

        var before = (float[])table.Clone();
        var e = Assert.Throws<KeditException>(() => CpuBackwardOps.Embedding(dx, [1, vocab], d, table));
        Assert.Equal($"embedding backward: token id {vocab} is outside the table of {vocab} rows", e.Message);
        Assert.Equal(before, table);   // checked before any row is added
    }

    /// <summary>Exact GELU and SiLU backward (d · f'(u)) against central differences of the float64 activation.</summary>
    [Theory]
    [InlineData(Activation.GeluExact, 6f, 0.5f, 1e-6)]
    [InlineData(Activation.Silu, 10f, 2f, 2e-6)]
    public void ActivationBackwardMatchesFloat64Derivative(Activation activation, float range, float upstream, double tolerance)
    {
        Func<double, double> f = activation == Activation.Silu
            ? x => x / (1 + Math.Exp(-x))
            : x => 0.5 * x * (1 + MathNet.Numerics.SpecialFunctions.Erf(x / Math.Sqrt(2)));
        var u = Enumerable.Range(0, 401).Select(i => -range + 2 * range * i / 400).ToArray();
        var d = Enumerable.Repeat(upstream, u.Length).ToArray();
        CpuBackwardOps.Activation(u, d, activation);
        for (int i = 0; i < u.Length; i++)
        {
            double x = u[i], expected = upstream * (f(x + 1e-5) - f(x - 1e-5)) / 2e-5;
            Assert.True(Math.Abs(d[i] - expected) <= tolerance, $"{activation} at x = {x}: {d[i]} vs {expected}");
        }
    }

    /// <summary>
    /// LayerNorm and RMSNorm backward against central differences of the float64 forward, on rows whose variance
    /// (1e-6) is below ε = 1e-5, so ε's sign and place in the normaliser matter (at unit variance they hide in rounding).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NormBackwardsMatchFloat64DifferencesWhereEpsilonDominates(bool rms)
    {
        const int rows = 2, n = 6; const float eps = 1e-5f;
        var x = Random(rows * n, 7, 1e-3f); var dy = Random(rows * n, 8); var gamma = Random(n, 9);
        var dx = new float[rows * n]; var dGamma = new float[n];
        if (rms) CpuBackwardOps.RmsNorm(x, dy, rows, n, gamma, eps, dx, dGamma);
        else CpuBackwardOps.LayerNorm(x, dy, rows, n, gamma, eps, dx, dGamma, default);
        var expectedGamma = new double[n];
        for (int r = 0; r < rows; r++)
        {
            var dyr = Row(dy, r, n);
            double[] Normalised(double[] v)
            {
                double mean = rms ? 0 : v.Average(), ms = v.Sum(a => (a - mean) * (a - mean)) / n, inv = 1 / Math.Sqrt(ms + eps);
                return v.Select(a => (a - mean) * inv).ToArray();
            }
            double Loss(double[] v) { var y = Normalised(v); double s = 0; for (int i = 0; i < n; i++) s += dyr[i] * gamma[i] * y[i]; return s; }
            var xr = Row(x, r, n);
            var xhat = Normalised(xr);
            for (int i = 0; i < n; i++) expectedGamma[i] += dyr[i] * xhat[i];
            // Steps of 1e-5 would be the size of x itself here: 1e-8.
            for (int i = 0; i < n; i++)
            {
                var xp = (double[])xr.Clone(); var xm = (double[])xr.Clone(); xp[i] += 1e-8; xm[i] -= 1e-8;
                double expected = (Loss(xp) - Loss(xm)) / 2e-8;
                Assert.True(Math.Abs(dx[r * n + i] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"row {r}, dx[{i}]: {dx[r * n + i]} vs {expected}");
            }
        }
        for (int i = 0; i < n; i++) Close(expectedGamma[i], dGamma[i]);
    }
    /// <summary>
    /// The attention backward against central differences (float64) of Σ dOut·O, O the masked causal softmax
    /// attention written out here in float64: two sequences with different key masks (sequence 0's keys 1–3 are
    /// padding, sequence 1's first and last), grouped query heads, rows with no valid key (sequence 1's row 0; with
    /// the window of 3, sequence 0's row 3 too: their output is 0), and no window. Every qkv entry is checked.
    /// </summary>
    [Theory]
    [InlineData(3)]
    [InlineData(int.MaxValue)]
    public void AttentionBackwardMatchesFloat64DifferencesWithPaddedKeysAndWindow(int window)
    {
        const int batch = 2, T = 6, heads = 2, kvHeads = 1, headDim = 3;
        const float scale = 0.6f;
        const int qd = heads * headDim, kvd = kvHeads * headDim, cols = qd + 2 * kvd, group = heads / kvHeads;
        bool[] keyValid = [true, false, false, false, true, true, false, true, true, true, true, false];
        var qkv = Random(batch * T * cols, 11, 1.5f);
        var dOut = Random(batch * T * qd, 12, 1f);

        // L(x) = Σ dOut·O(x); a row with no visible valid key outputs 0.
        double Loss(double[] x)
        {
            double loss = 0;
            for (int b = 0; b < batch; b++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < T; i++)
                    {
                        int kvh = h / group, qi = (b * T + i) * cols + h * headDim;
                        var keys = Enumerable.Range(0, i + 1).Where(j => i - j < window && keyValid[b * T + j]).ToArray();
                        if (keys.Length == 0) continue;
                        var s = keys.Select(j => scale * Enumerable.Range(0, headDim)
                            .Sum(d => x[qi + d] * x[(b * T + j) * cols + qd + kvh * headDim + d])).ToArray();
                        double m = s.Max(), z = s.Sum(v => Math.Exp(v - m));
                        for (int k = 0; k < keys.Length; k++)
                        {
                            int vj = (b * T + keys[k]) * cols + qd + kvd + kvh * headDim;
                            double w = Math.Exp(s[k] - m) / z;
                            for (int d = 0; d < headDim; d++) loss += dOut[(b * T + i) * qd + h * headDim + d] * w * x[vj + d];
                        }
                    }
            return loss;
        }

        var dQkv = new float[qkv.Length];
        dQkv.AsSpan().Fill(float.NaN); // the op overwrites every entry
        CpuBackwardOps.Attention(qkv, dOut, batch, T, keyValid, heads, kvHeads, headDim, scale, window, dQkv);
        var numeric = NumericGradient(qkv.Select(v => (double)v).ToArray(), Loss);
        for (int e = 0; e < qkv.Length; e++)
        {
            int row = e / cols, c = e % cols;
            string part = c < qd ? "q" : c < qd + kvd ? "k" : "v";
            Assert.True(Math.Abs(dQkv[e] - numeric[e]) <= 1e-4 * (1 + Math.Abs(numeric[e])),
                $"window {window}, sequence {row / T} row {row % T}, d{part}[{c}]: {dQkv[e]} vs finite difference {numeric[e]:G6}");
        }
        // Padded keys reach no output, so the data means what the theory says.
        Assert.True(Enumerable.Range(0, kvd).All(c => numeric[(T + 5) * cols + qd + c] == 0 && numeric[1 * cols + qd + c] == 0));
    }
}
