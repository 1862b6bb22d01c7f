using Kedit.Editing;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing;

/// <summary>
/// AlphaEdit (spec §14) end to end on the fixture models: the projector comes from the fixture's own
/// statistics, the update moves the edited representation towards its target, stays inside the null
/// space, and the preserved keys accumulate batch by batch.
/// </summary>
public class AlphaEditTests
{
    public static TheoryData<string> Models => new() { "gpt2", "llama" };

    [Theory, MemberData(nameof(Models))]
    public void AlphaEditMovesTheFactAndStaysInTheNullSpace(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("memit");
        var requests = fx.Requests("expanded_memit");
        // Threshold: the median eigenvalue of the last layer's statistics, so about half the key space is "null".
        var spectrum = SymmetricEigen.Eigenvalues(ctx.Mom2(ctx.ZLayer));
        double threshold = spectrum[spectrum.Length / 2];
        var alpha = new AlphaEdit(ctx, threshold, 1.0);

        var z = Targets.Compute(ctx, requests, HookPoint.BlockOutput, ctx.ZLayer, default).Z;
        var before = Keys.AtBare(ctx.Model, requests, ctx.ZLayer, HookPoint.BlockOutput);
        var step = alpha.Apply(requests);
        var after = Keys.AtBare(ctx.Model, requests, ctx.ZLayer, HookPoint.BlockOutput);
        double gapBefore = MatrixD.Subtract(z, before).FrobeniusNorm(), gapAfter = MatrixD.Subtract(z, after).FrobeniusNorm();
        Assert.True(gapAfter < 0.9 * gapBefore, $"‖z − h‖ {gapBefore:G4} → {gapAfter:G4}");

        foreach (var layer in ctx.Layers)
        {
            var solver = alpha.Solver(layer.Layer);
            Assert.InRange(solver.Rank, 1, layer.F - 1);
            Assert.Equal(requests.Count, solver.PreservedKeys);
            // W − W0 is exactly the recorded update, and it vanishes on the complement of U0 (ΔW (I − P) = 0).
            var delta = layer.CurrentDelta();
            var recorded = step.Layers.Single(u => u.Layer == layer.Layer).Delta;
            Assert.True(MatrixD.Subtract(delta, recorded).FrobeniusNorm() <= 1e-5 * recorded.FrobeniusNorm() + 1e-7);
            // The preserved directions from an eigendecomposition of our own (MathNet), not the solver's basis:
            // ΔW must vanish on every eigenvector of C whose eigenvalue is at or above the threshold.
            var evd = ToMathNet(ctx.Mom2(layer.Layer)).Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric);
            var eigenvalues = evd.EigenValues.Select(v => Math.Abs(v.Real)).ToArray();
            // (An eigenvalue within 0.1 % of the threshold may fall either side in another eigensolver.)
            Assert.InRange(solver.Rank, eigenvalues.Count(v => v < threshold / 1.001), eigenvalues.Count(v => v < threshold * 1.001));
            var preserved = Enumerable.Range(0, eigenvalues.Length).Where(j => eigenvalues[j] >= threshold * 1.001).ToArray();
            Assert.NotEmpty(preserved);
            var kept = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.DenseOfColumnVectors(preserved.Select(j => evd.EigenVectors.Column(j)));
            double leak = (ToMathNet(recorded) * kept).FrobeniusNorm();
            Assert.True(leak <= 1e-8 * recorded.FrobeniusNorm(), $"layer {layer.Layer}: ‖ΔW V_preserved‖ = {leak:E3} of {recorded.FrobeniusNorm():E3}");
        }
    }

    [Fact]
    public void SessionRunsAlphaEditSequentiallyAndRestoresW0()
    {
        using var fx = new EditFixture("gpt2");
        var h = fx.HParams("memit");
        var ctx = fx.Context("memit");
        var spectrum = SymmetricEigen.Eigenvalues(ctx.Mom2(ctx.ZLayer));
        string json = $$"""
            { "layers": [{{string.Join(",", h.Layers)}}], "fact_token": "subject_last", "v_num_grad_steps": 5, "v_lr": 0.5,
              "v_loss_layer": {{fx.Model.Config.Layers - 1}}, "v_weight_decay": 0.5, "clamp_norm_factor": 4, "kl_factor": 0.0625,
              "mom2_adjustment": true, "mom2_update_weight": 100, "nullspace_threshold": {{spectrum[spectrum.Length / 2]:R}}, "L2": 1 }
            """;
        var hp = Kedit.Editing.Inputs.HParams.Parse(json, Kedit.Editing.Inputs.EditMethod.AlphaEdit);
        var templates = Kedit.Editing.Inputs.ContextTemplates.Flat(new[] { "{}" }, "test templates");
        var bases = new Dictionary<int, MatrixD>();
        var stats = fx.Covariance(hp.Layers);
        var session = new EditSession(fx.Model, hp, stats, templates, nullSpaceBases: bases);
        var requests = fx.Requests("expanded_memit");
        var original = session.Context.Layers.Select(l => (float[])l.Weight.Weight.Clone()).ToList();
        session.Apply(requests.Take(1).ToList());
        session.Apply(requests.Skip(1).ToList());
        Assert.Equal(requests.Count, session.AlphaEdit!.Solver(hp.Layers[0]).PreservedKeys);
        Assert.Contains(session.Context.Layers, l => l.CurrentDelta().FrobeniusNorm() > 0);
        session.RestoreOriginal();
        for (int i = 0; i < original.Count; i++) Assert.Equal(original[i], session.Context.Layers[i].Weight.Weight);
        Assert.Equal(0, session.AlphaEdit.Solver(hp.Layers[0]).PreservedKeys);
        // A later session on the same statistics reuses the projectors instead of decomposing C again.
        var again = new EditSession(fx.Model, hp, stats, templates, nullSpaceBases: bases);
        foreach (int l in hp.Layers) Assert.Same(bases[l], again.AlphaEdit!.Solver(l).Basis);
    }
}
