using Xunit;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;

namespace Kedit.Tests.Editing;

/// <summary>
/// <c>prune.in_loop</c> (spec §13.4, non-reference): each edit is computed on, and added to, the restrained weights.
/// Checked against the composition done by hand with a plain MEMIT session and the dense restraint:
/// W0 + F(F(δ1) + δ2), where δ2 is computed on W0 + F(δ1).
/// </summary>
public class PruneInLoopTests
{
    static HParams WithPrune(HParams h, bool inLoop)
    {
        var o = JsonNode.Parse(h.ToJson())!.AsObject();
        o["prune"] = new JsonObject { ["mode"] = "log", ["in_loop"] = inLoop };
        return HParams.Parse(o.ToJsonString(), EditMethod.Memit, "in-loop test hparams");
    }

    static Dictionary<int, MatrixD> Served(string name, bool inLoop, out EditSession session)
    {
        var fx = new EditFixture(name);
        var h = WithPrune(fx.HParams("seqmemit"), inLoop);
        session = new EditSession(fx.Model, h, fx.Covariance(h.Layers), ContextTemplates.Flat(new[] { "{}" }, "test templates"), PruneMode.Log);
        var reqs = fx.Requests("expanded_memit");
        session.Apply(new[] { reqs[0] });
        session.Apply(new[] { reqs[1] });
        session.Materialise();
        return session.Context.Layers.ToDictionary(l => l.Layer, l => l.CurrentDelta());
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void InLoopEqualsRestrainingBeforeEachEdit(string name)
    {
        var inLoop = Served(name, inLoop: true, out var s);
        Assert.True(s.InLoop);
        var postHoc = Served(name, inLoop: false, out var p);
        Assert.False(p.InLoop);

        using var fx = new EditFixture(name);
        var h = fx.HParams("seqmemit");
        var plain = new EditSession(fx.Model, h, fx.Covariance(h.Layers), ContextTemplates.Flat(new[] { "{}" }, "test templates"));
        var reqs = fx.Requests("expanded_memit");
        var ctx = plain.Context;
        plain.Apply(new[] { reqs[0] });
        foreach (var l in ctx.Layers)
            l.SetDelta(Prune.RestrainDense(l.CurrentDelta(), ctx.SigmaMaxOriginal(l.Layer), PruneMode.Log).DeltaPrime());
        plain.Apply(new[] { reqs[1] });
        bool anyDiffers = false;
        foreach (var l in ctx.Layers)
        {
            var expected = Prune.RestrainDense(l.CurrentDelta(), ctx.SigmaMaxOriginal(l.Layer), PruneMode.Log).DeltaPrime();
            CompareDouble.Close($"{name} in-loop ΔW L{l.Layer}", inLoop[l.Layer].Data, expected.Data, 1e-4);
            // The check can fail: the post-hoc restraint (the reference) serves a different matrix here.
            var diff = MatrixD.Subtract(postHoc[l.Layer], expected);
            anyDiffers |= diff.FrobeniusNorm() > 1e-2 * expected.FrobeniusNorm();
        }
        Assert.True(anyDiffers, "in-loop and post-hoc PRUNE served the same weights; the fixture edits do not reach σ_max(W0)");
    }
}

public class PruneInLoopRefusalTests
{
    [Fact]
    public void InLoopWithD4sAccumulateModeIsRefusedByName()
    {
        using var fx = new EditFixture("gpt2");
        var o = JsonNode.Parse(fx.HParams("d4s_accum").ToJson())!.AsObject();
        o["prune"] = new JsonObject { ["mode"] = "log", ["in_loop"] = true };
        var h = HParams.Parse(o.ToJsonString(), EditMethod.D4S, "accum.json");
        var e = Assert.Throws<KeditException>(() => new EditSession(fx.Model, h, fx.Covariance(h.Layers), ContextTemplates.Flat(new[] { "{}" }, "t"), PruneMode.Log));
        Assert.StartsWith("accum.json: field 'prune.in_loop' is true", e.Message);
    }
}

/// <summary>PRUNE's regime warnings (spec §13.2): single edits at or above σ_max(W0), and a log restraint that is not a contraction.</summary>
public class PruneWarningTests
{
    static LayerRegime Layer(int layer, double s0, double medianSingle, double fractionAbove) =>
        new(layer, s0, Steps: 10, Accumulated: 5, MedianSingle: medianSingle, FractionSingleAbove: fractionAbove, Restrained: 3);

    [Fact]
    public void NoWarningInThePapersRegime()
    {
        // s0 · ln 1.5 = 6 · 0.405 ≥ 1: F shrinks every singular value it touches; single edits below s0.
        Assert.Null(EditRegime.PruneWarning(new[] { Layer(4, 6.0, 0.3, 0.0) }, PruneMode.Log1_5));
    }

    [Fact]
    public void SingleEditsAboveSigmaMaxAreNamedPerLayer()
    {
        string w = EditRegime.PruneWarning(new[] { Layer(0, 6.0, 0.5, 0.05), Layer(2, 6.0, 8.71, 1.0) }, PruneMode.Log)!;
        Assert.StartsWith("PRUNE will remove the edits themselves", w);
        Assert.Contains("layer 2 (100% of edits, median 8.71×)", w);
        Assert.DoesNotContain("layer 0", w);   // 5% is under the warning share
        Assert.DoesNotContain("enlarges", w);
    }

    [Theory]
    [InlineData(PruneMode.Log1_2, 2.8, true)]    // 2.8 · ln 1.2 = 0.51
    [InlineData(PruneMode.Log1_2, 5.6, false)]   // 5.6 · ln 1.2 = 1.02
    [InlineData(PruneMode.Log1_5, 2.4, true)]    // 2.4 · ln 1.5 = 0.97
    [InlineData(PruneMode.Log1_5, 2.5, false)]   // 1.01
    [InlineData(PruneMode.Log, 0.9, true)]
    [InlineData(PruneMode.Linear, 0.1, false)]
    public void ARestraintThatEnlargesIsReported(PruneMode mode, double s0, bool enlarges)
    {
        // Independent of the engine's rule: F(σ) > σ just above s0 exactly when the slope of F there, 1/(s0 ln α), exceeds 1.
        double sigma = s0 * 1.01;
        Assert.Equal(enlarges, Prune.Restrain(sigma, s0, mode) > sigma);
        string? w = EditRegime.PruneWarning(new[] { Layer(1, s0, 0.2, 0.0) }, mode);
        if (!enlarges) { Assert.Null(w); return; }
        Assert.NotNull(w);
        Assert.Contains($"PRUNE {Prune.ModeName(mode)} enlarges singular values just above σ_max(W0) at layer 1", w);
        Assert.DoesNotContain("\n", w);
    }
}
