using Kedit.Autodiff;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The hand-written backward pass against central finite differences of the forward: directional
/// derivatives of L = Σ r ⊙ logits (<see cref="FiniteDifference"/>: along the gradient and along random
/// directions, relative tolerances) for the residual input and for every parameter of every layer the tape runs.
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
        // Padding rows feed nothing: their gradient must be exactly zero (the orthant probes then leave them out).
        for (int t = 3; t < batch.Length; t++)
            for (int k = 0; k < model.Config.Hidden; k++) Assert.Equal(0f, grad[(batch.Length + t) * model.Config.Hidden + k]);
        FiniteDifference.Check($"{name}@{start} residual", x, grad, () => Loss(tape, x, rows, r), new Random(7));
    }

    /// <summary>Every parameter the tape reaches: the blocks from StartLayer up, the final norm and the head.</summary>
    static IEnumerable<(string Name, float[] Values)> TapeParameters(Transformer model, int start)
    {
        var w = model.Weights;
        for (int l = start; l < model.Config.Layers; l++)
        {
            var b = w.Layers[l];
            var named = new (string, float[]?)[]
            {
                ("norm1.gamma", b.Norm1Gamma), ("norm1.beta", b.Norm1Beta), ("norm2.gamma", b.Norm2Gamma), ("norm2.beta", b.Norm2Beta),
                ("qkv.weight", b.Qkv.Weight), ("qkv.bias", b.Qkv.Bias), ("attn_out.weight", b.AttnOut.Weight), ("attn_out.bias", b.AttnOut.Bias),
                ("mlp_in.weight", b.MlpIn.Weight), ("mlp_in.bias", b.MlpIn.Bias), ("mlp_out.weight", b.MlpOut.Weight), ("mlp_out.bias", b.MlpOut.Bias),
            };
            foreach (var (n, v) in named) if (v != null) yield return ($"layer {l} {n}", v);
        }
        yield return ("final_norm.gamma", w.FinalNormGamma);
        if (w.FinalNormBeta != null) yield return ("final_norm.beta", w.FinalNormBeta);
        yield return ("lm_head.weight", w.LmHead.Weight);
        if (w.LmHead.Bias != null) yield return ("lm_head.bias", w.LmHead.Bias);
    }

    [Theory, MemberData(nameof(Cases))]
    public void WeightGradientsMatchFiniteDifferences(string name, int start)
    {
        var (model, batch, x, r, rows) = Setup(name, start, 2);
        var tape = new TransformerTape(model, batch, start);
        tape.Forward(x, rows);
        var grads = new ParameterGrads();
        tape.Backward(r, grads);
        var rng = new Random(11);
        foreach (var (pname, p) in TapeParameters(model, start))
        {
            Assert.True(grads.TryGet(p, out var g), $"{pname} has no gradient");
            FiniteDifference.Check($"{name}@{start} {pname}", p, g, () => Loss(tape, x, rows, r), rng);
        }
    }

}
