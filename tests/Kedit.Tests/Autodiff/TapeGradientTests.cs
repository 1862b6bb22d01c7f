using Kedit.Autodiff;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The hand-written backward pass against central finite differences of the forward: directional
/// derivatives of L = Σ r ⊙ logits along random directions, for the residual input and for weights.
/// </summary>
public class TapeGradientTests
{
    public static TheoryData<string, int> Cases => new() { { "gpt2", 1 }, { "llama", 0 }, { "gptj", 2 }, { "llama", 3 } };

    static (Transformer, TokenBatch, float[] x, float[] r, int[] rows) Setup(string name, int start, int seed)
    {
        var model = Transformer.Load(TestPaths.Fixture(name));
        var rng = new Random(seed);
        var seqs = new List<IReadOnlyList<int>> { new[] { 3, 50, 7, 99, 12, 4 }, new[] { 8, 21, 33 } };
        var batch = TokenBatch.RightPadded(seqs);
        int d = model.Config.Hidden, rowsN = batch.Size * batch.Length;
        var x = Enumerable.Range(0, rowsN * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] rows = { 0 * batch.Length + 5, 0 * batch.Length + 2, 1 * batch.Length + 2 };
        var r = Enumerable.Range(0, rows.Length * model.Config.VocabSize).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        return (model, batch, x, r, rows);
    }

    static double Loss(TransformerTape tape, float[] x, int[] rows, float[] r)
    {
        var logits = tape.Forward(x, rows);
        double s = 0;
        for (int i = 0; i < r.Length; i++) s += (double)r[i] * logits[i];
        return s;
    }

    [Theory, MemberData(nameof(Cases))]
    public void ResidualGradientMatchesFiniteDifferences(string name, int start)
    {
        var (model, batch, x, r, rows) = Setup(name, start, 1);
        var tape = new TransformerTape(model, batch, start);
        tape.Forward(x, rows);
        var grad = tape.Backward(r);
        var rng = new Random(7);
        double gNorm = Math.Sqrt(grad.Sum(v => (double)v * v));
        for (int trial = 0; trial < 4; trial++)
        {
            // Trial 0 probes along the gradient itself (strongest signal); the others along random directions.
            var dir = trial == 0 ? grad.Select(v => (float)(v / gNorm)).ToArray() : x.Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            // Padding rows feed nothing: their gradient must be exactly zero; leave them out of the direction.
            for (int t = 3; t < batch.Length; t++) Array.Clear(dir, (batch.Length + t) * model.Config.Hidden, model.Config.Hidden);
            double analytic = 0;
            for (int i = 0; i < x.Length; i++) analytic += (double)grad[i] * dir[i];
            double h = 2.5e-3;
            double fd = (Loss(tape, Shift(x, dir, h), rows, r) - Loss(tape, Shift(x, dir, -h), rows, r)) / (2 * h);
            double dirNorm = Math.Sqrt(dir.Sum(v => (double)v * v));
            // Error measured against ‖g‖·‖dir‖ (the scale float32 rounding and O(h²) terms live on).
            Assert.True(Math.Abs(fd - analytic) <= 2e-3 * gNorm * dirNorm, $"{name}@{start} trial {trial}: FD {fd} vs analytic {analytic} (‖g‖ {gNorm})");
        }
        for (int t = 3; t < batch.Length; t++)
            for (int k = 0; k < model.Config.Hidden; k++) Assert.Equal(0f, grad[(batch.Length + t) * model.Config.Hidden + k]);
    }

    [Theory, MemberData(nameof(Cases))]
    public void WeightGradientsMatchFiniteDifferences(string name, int start)
    {
        var (model, batch, x, r, rows) = Setup(name, start, 2);
        var tape = new TransformerTape(model, batch, start);
        tape.Forward(x, rows);
        var grads = new ParameterGrads();
        tape.Backward(r, grads);
        var layer = model.Weights.Layers[model.Config.Layers - 1];
        var parameters = new (string, float[])[]
        {
            ("qkv", layer.Qkv.Weight), ("attn_out", layer.AttnOut.Weight), ("mlp_in", layer.MlpIn.Weight), ("mlp_out", layer.MlpOut.Weight),
            ("norm1", layer.Norm1Gamma), ("final_norm", model.Weights.FinalNormGamma), ("lm_head", model.Weights.LmHead.Weight),
        };
        var rng = new Random(11);
        foreach (var (pname, p) in parameters)
        {
            Assert.True(grads.TryGet(p, out var g), $"{pname} has no gradient");
            var dir = p.Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            double analytic = 0;
            for (int i = 0; i < p.Length; i++) analytic += (double)g[i] * dir[i];
            var orig = (float[])p.Clone();
            double h = 2.5e-3;
            for (int i = 0; i < p.Length; i++) p[i] = orig[i] + (float)(h * dir[i]);
            double plus = Loss(tape, x, rows, r);
            for (int i = 0; i < p.Length; i++) p[i] = orig[i] - (float)(h * dir[i]);
            double minus = Loss(tape, x, rows, r);
            orig.CopyTo(p, 0);
            double fd = (plus - minus) / (2 * h);
            double gn = Math.Sqrt(g.Sum(v => (double)v * v)), dn = Math.Sqrt(dir.Sum(v => (double)v * v));
            Assert.True(Math.Abs(fd - analytic) <= 2e-3 * gn * dn, $"{name}@{start} {pname}: FD {fd} vs analytic {analytic}");
        }
    }

    static float[] Shift(float[] x, float[] dir, double h) => x.Select((v, i) => (float)(v + h * dir[i])).ToArray();
}
