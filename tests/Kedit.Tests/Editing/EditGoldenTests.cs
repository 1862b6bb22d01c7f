using Kedit.Editing;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;
using Xunit;

using Kedit.Tests.Editing.LinearAlgebra;

namespace Kedit.Tests.Editing;

/// <summary>
/// Every edit golden of tests/fixtures (an independent float64 PyTorch implementation) with the
/// fixtures' hparams and templates. Tolerances per the fixture README's acceptance for a float32
/// engine: keys / z / covariances rel_l2 ≤ 1e-4; deltas, ROME u/v and PRUNE weights ≤ 1e-3.
/// </summary>
public class EditGoldenTests
{
    public static TheoryData<string> Models => new() { "gpt2", "llama", "gptj" };
    const double KeyTol = 1e-4, DeltaTol = 1e-3;

    [Theory, MemberData(nameof(Models))]
    public void CovarianceMatchesGolden(string name)
    {
        using var fx = new EditFixture(name);
        var cov = fx.Covariance(new[] { 1, 2 });
        foreach (int l in new[] { 1, 2 }) CompareDouble.Close($"{name} cov.L{l}", cov.Mom2(l).Data, fx.G($"cov.L{l}"), KeyTol);
    }

    [Theory, MemberData(nameof(Models))]
    public void KeysAndTargetsMatchGoldens(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("memit");
        var reqs = fx.Requests("expanded_memit");
        foreach (int l in new[] { 1, 2 })
            CompareDouble.Close($"{name} ks_w0.L{l}", EditFixture.AsRows(Keys.Memit(fx.Model, reqs, l)), fx.G($"ks_w0.L{l}"), KeyTol);
        var (Z, runs, _) = Targets.Compute(ctx, reqs, HookPoint.BlockOutput, ctx.ZLayer, default);
        CompareDouble.Close($"{name} z.memit.target_init", runs.SelectMany(r => EditFixture.ToDouble(r.TargetInit)).ToArray(), fx.G("z.memit.target_init"), KeyTol);
        CompareDouble.Close($"{name} z.memit.grad0", runs.SelectMany(r => EditFixture.ToDouble(r.Grad0)).ToArray(), fx.G("z.memit.grad0"), KeyTol);
        CompareDouble.Close($"{name} z.memit", EditFixture.AsRows(Z), fx.G("z.memit"), KeyTol);
    }

    [Theory, MemberData(nameof(Models))]
    public void MemitBatchMatchesGoldens(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("memit");
        var step = Memit.Apply(ctx, fx.Requests("expanded_memit"));
        foreach (var u in step.Layers)
        {
            int l = u.Layer;
            CompareDouble.Close($"{name} memit.ks.L{l}", EditFixture.AsRows(u.Keys), fx.G($"memit.ks.L{l}"), KeyTol);
            CompareDouble.Close($"{name} memit.cur_zs.L{l}", EditFixture.AsRows(u.CurrentZ), fx.G($"memit.cur_zs.L{l}"), KeyTol);
            CompareDouble.Close($"{name} memit.resid.L{l}", EditFixture.AsRows(u.Residual), fx.G($"memit.resid.L{l}"), KeyTol);
            var layer = ctx.Layer(l);
            CompareDouble.Close($"{name} memit.delta.L{l}", EditFixture.ToDouble(layer.ToStored(layer.CurrentDelta())), fx.G($"memit.delta.L{l}"), DeltaTol);
        }
    }

    [Theory, MemberData(nameof(Models))]
    public void RomeMatchesGoldens(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("rome");
        var reqs = fx.Requests("expanded_rome");
        for (int r = 0; r < reqs.Count; r++)
        {
            var (kMean, u, z, curIn, curOut, v) = Rome.Explain(ctx, reqs[r]);
            CompareDouble.Close($"{name} rome.r{r}.k_mean", kMean, fx.G($"rome.r{r}.k_mean"), KeyTol);
            CompareDouble.Close($"{name} rome.r{r}.u", u, fx.G($"rome.r{r}.u"), DeltaTol);
            CompareDouble.Close($"{name} rome.r{r}.target_init", EditFixture.ToDouble(z.TargetInit), fx.G($"rome.r{r}.target_init"), KeyTol);
            CompareDouble.Close($"{name} rome.r{r}.z", EditFixture.ToDouble(z.Z), fx.G($"rome.r{r}.z"), KeyTol);
            CompareDouble.Close($"{name} rome.r{r}.cur_in", curIn, fx.G($"rome.r{r}.cur_in"), KeyTol);
            CompareDouble.Close($"{name} rome.r{r}.cur_out", curOut, fx.G($"rome.r{r}.cur_out"), KeyTol);
            CompareDouble.Close($"{name} rome.r{r}.v", v, fx.G($"rome.r{r}.v"), DeltaTol);
            // The edit itself, from W0 each time: the stored delta, and ROME's exactness invariant (§19.1).
            var layer = ctx.Layers[0];
            Rome.Apply(ctx, new[] { reqs[r] });
            CompareDouble.Close($"{name} rome.r{r}.delta", EditFixture.ToDouble(layer.ToStored(layer.CurrentDelta())), fx.G($"rome.r{r}.delta.L{layer.Layer}"), DeltaTol);
            var outAfter = Keys.AtBare(fx.Model, new[] { reqs[r] }, layer.Layer, HookPoint.MlpValue).Data;
            CompareDouble.Close($"{name} rome.r{r} value after edit = z", outAfter, EditFixture.ToDouble(z.Z), 1e-5);
            layer.Restore();
        }
    }

    [Theory, MemberData(nameof(Models))]
    public void SequentialMemitMatchesGoldens(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("seqmemit");
        var reqs = fx.Requests("expanded_memit");
        for (int t = 1; t <= 3; t++)
        {
            var step = Memit.Apply(ctx, new[] { reqs[t - 1] });
            CompareDouble.Close($"{name} seqmemit.step{t}.z", EditFixture.AsRows(step.Z), fx.G($"seqmemit.step{t}.z"), KeyTol);
            // The golden is this step's own update Δ_t (W_t = W_{t−1} + Δ_t).
            foreach (var u in step.Layers)
                CompareDouble.Close($"{name} seqmemit.step{t}.delta.L{u.Layer}", EditFixture.ToDouble(ctx.Layer(u.Layer).ToStored(u.Delta)), fx.G($"seqmemit.step{t}.delta.L{u.Layer}"), DeltaTol);
        }
    }

    [Theory]
    [InlineData("gpt2", true)] [InlineData("llama", true)] [InlineData("gptj", true)]
    [InlineData("gpt2", false)] [InlineData("llama", false)] [InlineData("gptj", false)]
    public void D4sMatchesGoldens(string name, bool restore)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context(restore ? "d4s" : "d4s_accum");
        var reqs = fx.Requests("expanded_memit");
        var d4s = new D4s(ctx, restore);
        string key = restore ? "d4s" : "d4s_accum";
        for (int t = 1; t <= 3; t++)
        {
            var step = d4s.Apply(new[] { reqs[t - 1] });
            if (restore) CompareDouble.Close($"{name} d4s.step{t}.z", EditFixture.AsRows(step.Z), fx.G($"d4s.step{t}.z"), KeyTol);
            // Restore mode: served W0 + ΔW^(t); accumulate mode: the golden is the step's own ΔW^(t) (the running
            // sums' Γ/(L − i)) landed on W_{t−1}.
            for (int i = 0; i < step.Layers.Count; i++)
            {
                var u = step.Layers[i];
                var layer = ctx.Layer(u.Layer);
                var actual = restore ? layer.CurrentDelta() : d4s.State(u.Layer).Delta(step.Layers.Count - i);
                // A D4S step keeps no ΔW of its own (it lives in the running sums) and says so.
                Assert.Contains("D4sState", Assert.Throws<InvalidOperationException>(() => u.Delta).Message);
                CompareDouble.Close($"{name} {key}.step{t}.delta.L{u.Layer}", EditFixture.ToDouble(layer.ToStored(actual)), fx.G($"{key}.step{t}.delta.L{u.Layer}"), DeltaTol);
            }
        }
    }

    /// <summary>
    /// The batch MEMIT solution over the steps' recorded keys K_j and divided residuals X_j at the context's
    /// i-th layer, solved densely by MathNet: ΔW = (Σ_j X_j K_jᵀ)(λC + Σ_j K_j K_jᵀ)⁻¹.
    /// </summary>
    static MathNet.Numerics.LinearAlgebra.Matrix<double> BatchSolve(EditContext ctx, int i, IEnumerable<EditStep> steps)
    {
        var K = steps.Select(s => LinAlgTestUtil.ToMathNet(s.Layers[i].Keys)).Aggregate((a, b) => a.Append(b));
        var X = steps.Select(s => LinAlgTestUtil.ToMathNet(s.Layers[i].X)).Aggregate((a, b) => a.Append(b));
        return (LinAlgTestUtil.ToMathNet(ctx.LambdaC(ctx.Layers[i].Layer)) + K * K.Transpose()).Solve(K * X.Transpose()).Transpose();
    }

    /// <summary>
    /// The fixture's requests with the subject's last token replaced (variant 0 is the request itself):
    /// further edits with keys of their own, made from the fixture inputs.
    /// </summary>
    static PreparedRequest WithSubjectVariant(PreparedRequest r, int variant)
    {
        LookupRow Swap(LookupRow row)
        {
            var ids = (int[])row.Ids.Clone();
            ids[row.Index] = (ids[row.Index] + 37 * variant) % 290;   // ids ≥ 290 are the fixtures' special tokens
            return row with { Ids = ids };
        }
        return new PreparedRequest(r.ContextGroups.Select(g => (IReadOnlyList<LookupRow>)g.Select(Swap).ToList()).ToList(),
            r.KlRows.Select(Swap).ToList(), Swap(r.Bare), r.Target);
    }

    /// <summary>
    /// A longer D4S golden, made here: after each of 12 sequential edits (past the running sums' drift probe
    /// at step 10, which re-anchors Γ from S_RK) the served ΔW equals the batch MEMIT solution over all the
    /// edits so far, ΔW = (Σ_j X_j K_jᵀ)(λC + Σ_j K_j K_jᵀ)⁻¹, solved densely by MathNet from each step's
    /// recorded keys and divided residuals (spec §12.2, batch equivalence).
    /// </summary>
    [Theory]
    [InlineData("gpt2")] [InlineData("llama")]
    public void D4sAfterTwelveEditsEqualsTheBatchSolveOfAllOfThem(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("d4s");
        var reqs = fx.Requests("expanded_memit");
        var d4s = new D4s(ctx, restoreBetweenEdits: true);
        var steps = new List<EditStep>();
        for (int t = 0; t < 12; t++)
        {
            steps.Add(d4s.Apply(new[] { WithSubjectVariant(reqs[t % reqs.Count], t / reqs.Count) }));
            for (int i = 0; i < ctx.Layers.Count; i++)
            {
                var layer = ctx.Layers[i];
                var expected = BatchSolve(ctx, i, steps);
                double rel = (LinAlgTestUtil.ToMathNet(layer.CurrentDelta()) - expected).FrobeniusNorm() / expected.FrobeniusNorm();
                Assert.True(rel < 1e-4, $"{name} after edit {t + 1}, layer {layer.Layer}: ΔW is off the batch solve by {rel:E2} (float32 weights)");
            }
        }
        Assert.Equal(12, d4s.Edits);
        // Twelve keys of their own, not the three requests repeated.
        Assert.Equal(12, steps.Select(s => LinAlgTestUtil.ToMathNet(s.Layers[0].Keys)).Aggregate((a, b) => a.Append(b)).Rank());
    }

    [Fact]
    public void ACancelledD4sStepServesTheSumsItFound()
    {
        using var fx = new EditFixture("gpt2");
        var reqs = fx.Requests("expanded_memit");
        var ctx = fx.Context("d4s");
        var d4s = new D4s(ctx, restoreBetweenEdits: true);
        d4s.Apply(new[] { reqs[0] });
        var before = ctx.Layers.Select(l => (float[])l.Weight.Weight.Clone()).ToList();
        Assert.ThrowsAny<OperationCanceledException>(() => d4s.Apply(new[] { reqs[1] }, new CancellationToken(canceled: true)));
        Assert.Equal(1, d4s.Edits);
        for (int i = 0; i < ctx.Layers.Count; i++) Assert.Equal(before[i], ctx.Layers[i].Weight.Weight);   // bit for bit, no replay
    }

    [Theory]
    [InlineData("gpt2")] [InlineData("llama")]
    public void D4sRemoveLeavesTheBatchSolutionOfTheRemainingSteps(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("d4s");
        var reqs = fx.Requests("expanded_memit");
        var d4s = new D4s(ctx, restoreBetweenEdits: true);
        var steps = Enumerable.Range(0, 3).Select(t => d4s.Apply(new[] { reqs[t] })).ToList();
        d4s.Remove(steps[1]);
        Assert.Equal(2, d4s.Edits);
        // Independent dense solve (MathNet) from the kept steps' recorded keys and divided residuals:
        // ΔW_i = (Σ_j X_j K_jᵀ)(λC + Σ_j K_j K_jᵀ)⁻¹.
        for (int i = 0; i < ctx.Layers.Count; i++)
        {
            var layer = ctx.Layers[i];
            var expected = BatchSolve(ctx, i, new[] { steps[0], steps[2] });
            var actual = LinAlgTestUtil.ToMathNet(layer.CurrentDelta());
            double rel = (actual - expected).FrobeniusNorm() / expected.FrobeniusNorm();
            Assert.True(rel < 1e-4, $"{name} layer {layer.Layer}: ΔW after removing step 2 is off by {rel:E2} (float32 weights)");
        }
        d4s.Remove(steps[0]); d4s.Remove(steps[2]);
        foreach (var l in ctx.Layers) Assert.Equal(l.Original, l.Weight.Weight);   // bit for bit W0
        Assert.Throws<InvalidOperationException>(() => d4s.Remove(steps[0]));
        Assert.Throws<KeditException>(() => new D4s(ctx, restoreBetweenEdits: false).Remove(steps[0]));
    }
}

public class PruneGoldenTests
{
    public static TheoryData<string> Models => new() { "gpt2", "llama", "gptj" };

    [Theory, MemberData(nameof(Models))]
    public void PruneOnSequentialMemitMatchesGoldens(string name)
    {
        using var fx = new EditFixture(name);
        var ctx = fx.Context("seqmemit");
        var reqs = fx.Requests("expanded_memit");
        // The fixture computes in float64: its rank rule uses float64's epsilon.
        var prune = new PerturbationRestraint(ctx, PruneMode.Log, Prune.Float64Epsilon);
        for (int t = 0; t < 3; t++) prune.Record(Memit.Apply(ctx, new[] { reqs[t] }));
        var unrestrained = ctx.Layers.ToDictionary(l => l.Layer, l => (float[])l.Weight.Weight.Clone());
        var results = prune.Materialise();
        foreach (var layer in ctx.Layers)
        {
            int l = layer.Layer;
            var r = results[l];
            CompareDouble.Close($"{name} prune.sigma_max_w0.L{l}", new[] { r.SigmaMaxW0 }, fx.G($"prune.sigma_max_w0.L{l}"), 1e-6);
            var s = fx.G($"prune.s.L{l}");
            int rank = (int)fx.Gold.ReadInt64($"prune.rank.L{l}")[0];
            Assert.Equal(rank, r.Rank);
            CompareDouble.Close($"{name} prune.s.L{l}", r.SingularValues.Take(rank).ToArray(), s.Take(rank).ToArray(), 1e-4);
            CompareDouble.Close($"{name} prune.s_restrained.L{l}", r.RestrainedValues.Take(rank).ToArray(), fx.G($"prune.s_restrained.L{l}").Take(rank).ToArray(), 1e-4);
            CompareDouble.Close($"{name} prune.W.L{l}", EditFixture.ToDouble(layer.Weight.Weight), fx.G($"prune.W.L{l}"), 1e-3);
        }
        // Back to the unrestrained weights, bit for bit: the next edit is computed on them.
        prune.Unmaterialise();
        foreach (var layer in ctx.Layers) Assert.Equal(unrestrained[layer.Layer], layer.Weight.Weight);

        // prune_mixed: W0 + s·Δ with s chosen so that only the top singular value is restrained.
        foreach (var layer in ctx.Layers)
        {
            int l = layer.Layer;
            var (X, Y) = prune.Factors(l);
            double scale = fx.G($"prune_mixed.scale.L{l}")[0];
            var full = prune.Restrain(l);
            CompareDouble.Close($"{name} prune_mixed.scale.L{l}", new[] { 2 * full.SigmaMaxW0 / (full.SingularValues[0] + full.SingularValues[1]) }, new[] { scale }, 1e-5);
            X.Scale(scale);
            var mixed = Prune.RestrainFactored(X, Y, full.SigmaMaxW0, PruneMode.Log, Prune.Float64Epsilon);
            Assert.Equal(1, mixed.RestrainedCount);
            var w = layer.OriginalMath();
            w.AddScaled(1.0, mixed.DeltaPrime());
            CompareDouble.Close($"{name} prune_mixed.W.L{l}", EditFixture.ToDouble(layer.ToStored(w)), fx.G($"prune_mixed.W.L{l}"), 1e-3);
        }
    }
}
