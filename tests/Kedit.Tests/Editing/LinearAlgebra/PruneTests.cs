using Kedit.Editing.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

public class PruneTests
{
    [Theory]
    [InlineData(PruneMode.Log, Math.E)]
    [InlineData(PruneMode.Log2, 2.0)]
    [InlineData(PruneMode.Log1_5, 1.5)]
    [InlineData(PruneMode.Log1_2, 1.2)]
    public void LogRestraintFollowsTheSpec(PruneMode mode, double alpha)
    {
        double s0 = 7.0;
        Assert.Equal(3.0, Prune.Restrain(3.0, s0, mode));                     // below: identity
        Assert.Equal(s0, Prune.Restrain(s0, s0, mode), 12);                    // ≥: continuous at s0
        double sigma = 50.0;
        double expected = Math.Log(sigma) / Math.Log(alpha) - Math.Log(s0) / Math.Log(alpha) + s0;
        Assert.Equal(expected, Prune.Restrain(sigma, s0, mode), 12);
        Assert.True(Prune.Restrain(60, s0, mode) > Prune.Restrain(50, s0, mode));   // increasing
    }

    [Fact]
    public void LinearRestraintIsTheMidpoint()
    {
        Assert.Equal(6.0, Prune.Restrain(8, 4, PruneMode.Linear));
        Assert.Equal(2.0, Prune.Restrain(2, 4, PruneMode.Linear));
    }

    [Fact]
    public void ContractionNeedsS0LnAlphaAtLeastOne()
    {
        Assert.False(Prune.IsContraction(5.0, PruneMode.Log1_2));   // 5 · ln 1.2 = 0.91
        Assert.True(Prune.IsContraction(5.5, PruneMode.Log1_2));    // 5.5 · ln 1.2 = 1.003
        Assert.False(Prune.IsContraction(0.9, PruneMode.Log));
        Assert.True(Prune.IsContraction(0.01, PruneMode.Linear));
        // where it fails, F really exceeds σ just above s0
        Assert.True(Prune.Restrain(5.2, 5.0, PruneMode.Log1_2) > 5.2);
    }

    [Theory]
    [InlineData("log", PruneMode.Log)]
    [InlineData("LOG2", PruneMode.Log2)]
    [InlineData("log1.5", PruneMode.Log1_5)]
    [InlineData("log1_2", PruneMode.Log1_2)]
    [InlineData("linear", PruneMode.Linear)]
    [InlineData("ln", PruneMode.Log)]
    [InlineData(" log1_5 ", PruneMode.Log1_5)]
    [InlineData("Log1.2", PruneMode.Log1_2)]
    public void ParsesModeNames(string name, PruneMode mode)
    {
        Assert.Equal(mode, Prune.ParseMode(name));
        Assert.Equal(mode, Prune.ParseMode(Prune.ModeName(mode)));
    }

    [Fact]
    public void UnknownModeIsAUserError()
        => Assert.Contains("log1.7", Assert.Throws<KeditException>(() => Prune.ParseMode("log1.7")).Message);

    [Theory]
    [InlineData(13, 37, 3, PruneMode.Log)]
    [InlineData(37, 13, 5, PruneMode.Linear)]
    [InlineData(60, 300, 20, PruneMode.Log2)]
    [InlineData(8, 20, 12, PruneMode.Log)]     // m > d: the core is rectangular
    public void FactoredEqualsDense(int d, int f, int m, PruneMode mode)
    {
        var rng = new Random(d * f + m);
        var x = Gaussian(rng, d, m); var y = Gaussian(rng, f, m);
        var delta = MatrixD.Multiply(x, y, false, true);
        var sv = ThinSvd.Compute(delta).S;
        double s0 = 0.5 * (sv[0] + sv[Math.Min(m, Math.Min(d, f)) - 1]);   // some above, some below
        var fac = Prune.RestrainFactored(x, y, s0, mode, Prune.Float32Epsilon);
        var den = Prune.RestrainDense(delta, s0, mode, Prune.Float32Epsilon);
        int p = Math.Min(m, Math.Min(d, f));
        Assert.Equal(p, fac.Rank);
        Assert.Equal(den.Rank, fac.Rank);
        var mathnet = ToMathNet(delta).Svd(computeVectors: false).S;
        for (int i = 0; i < p; i++)
        {
            Assert.True(Math.Abs(fac.SingularValues[i] - mathnet[i]) <= 1e-10 * mathnet[i], $"σ_{i} factored {fac.SingularValues[i]} vs {mathnet[i]}");
            Assert.True(Math.Abs(den.SingularValues[i] - mathnet[i]) <= 1e-10 * mathnet[i], $"σ_{i} dense");
            Assert.Equal(Prune.Restrain(fac.SingularValues[i], s0, mode), fac.RestrainedValues[i], 12);
        }
        Assert.True(fac.RestrainedCount > 0 && fac.RestrainedCount < p);
        AssertRel(RelFro(fac.DeltaPrime(), den.DeltaPrime()), 1e-10, "Δ' factored vs dense");
        // Δ' has exactly the restrained singular values
        var sp = ToMathNet(fac.DeltaPrime()).Svd(computeVectors: false).S;
        var restrainedSorted = fac.RestrainedValues.OrderByDescending(v => v).ToArray();
        for (int i = 0; i < p; i++) Assert.True(Math.Abs(sp[i] - restrainedSorted[i]) <= 1e-10 * sp[0], $"σ'_{i}");
    }

    [Fact]
    public void BelowThresholdPruneOnlyTruncatesToTheNumericalRank()
    {
        // §19.8 first half: all σ < s0 ⇒ W' = W0 + Δ_r; the tiny component is below the rank tolerance
        var rng = new Random(61);
        int d = 13, f = 37;
        var x = Gaussian(rng, d, 4); var y = Gaussian(rng, f, 4);
        for (int i = 0; i < d; i++) x[i, 3] *= 1e-9;   // σ_4 ≈ 1e-9 σ_1 < σ_1 · 37 · 2⁻²³
        var delta = MatrixD.Multiply(x, y, false, true);
        var res = Prune.RestrainFactored(x, y, 1e6, PruneMode.Log);
        Assert.Equal(3, res.Rank);
        Assert.Equal(0, res.RestrainedCount);
        // Δ' = Δ minus its smallest singular component
        var s = res.SingularValues;
        var tail = MatrixD.Multiply(res.U.Block(0, 3, d, 1), res.V.Block(0, 3, f, 1), false, true);
        tail.Scale(s[3]);
        AssertRel(RelFro(res.DeltaPrime(), MatrixD.Subtract(delta, tail)), 1e-12, "Δ_r");
        // with float64's epsilon the tiny component is kept: Δ' = Δ
        var keep = Prune.RestrainFactored(x, y, 1e6, PruneMode.Log, Prune.Float64Epsilon);
        Assert.Equal(4, keep.Rank);
        AssertRel(RelFro(keep.DeltaPrime(), delta), 1e-12, "Δ' = Δ");
    }

    [Fact]
    public void OneValueAboveThresholdChangesExactlyOneComponent()
    {
        // §19.8 second half: W' − (W0 + Δ_r) = (F(σ_1) − σ_1) u_1 v_1ᵀ
        var rng = new Random(62);
        int d = 13, f = 37, m = 3;
        var x = Gaussian(rng, d, m); var y = Gaussian(rng, f, m);
        var delta = MatrixD.Multiply(x, y, false, true);
        var s = ThinSvd.Compute(delta).S;
        double s0 = 0.5 * (s[0] + s[1]);
        var res = Prune.RestrainFactored(x, y, s0, PruneMode.Log);
        Assert.Equal(1, res.RestrainedCount);
        var diff = MatrixD.Subtract(res.DeltaPrime(), delta);
        var expected = MatrixD.Multiply(res.U.Block(0, 0, d, 1), res.V.Block(0, 0, f, 1), false, true);
        expected.Scale(Prune.Restrain(s[0], s0, PruneMode.Log) - s[0]);
        AssertRel(RelFro(diff, expected), 1e-10, "single restrained component");
    }

    [Fact]
    public void ZeroPerturbationHasRankZero()
    {
        var res = Prune.RestrainFactored(new MatrixD(5, 0), new MatrixD(9, 0), 1.0);
        Assert.Equal(0, res.Rank);
        Assert.Equal(new double[5 * 9], res.DeltaPrime().Data);
        Assert.Equal(0, Prune.RestrainDense(new MatrixD(5, 9), 1.0).Rank);
    }

    [Fact]
    public void RejectsBadThreshold()
        => Assert.Throws<ArgumentOutOfRangeException>(() => Prune.RestrainDense(new MatrixD(2, 2), 0.0));

    // Golden PRUNE from the PyTorch reference (tests/fixtures/README.md, section PRUNE).
    [Theory]
    [InlineData("llama", 1)]
    [InlineData("llama", 2)]
    [InlineData("gptj", 1)]
    public void MatchesFixtureGoldens(string model, int layer)
    {
        string weightName = model == "llama" ? $"model.layers.{layer}.mlp.down_proj.weight" : $"transformer.h.{layer}.mlp.fc_out.weight";
        var weights = new MiniSafetensors(TestPaths.Fixture(model, "model.safetensors"));
        var gold = new MiniSafetensors(TestPaths.Fixture(model, "golden_edits.safetensors"));
        var shape = weights.Shape(weightName);
        int d = (int)shape[0], f = (int)shape[1];
        var w0 = new MatrixD(d, f, weights.ReadDoubles(weightName));
        // Δ = W_3 − W0 = Σ of the three sequential-MEMIT step deltas (each F32-rounded)
        var delta = new MatrixD(d, f);
        for (int t = 1; t <= 3; t++) delta.AddScaled(1.0, new MatrixD(d, f, gold.ReadDoubles($"seqmemit.step{t}.delta.L{layer}")));

        double s0Gold = gold.ReadDoubles($"prune.sigma_max_w0.L{layer}")[0];
        var lanczos = SpectralNorm.Largest(w0);
        Assert.True(Math.Abs(lanczos.Value - s0Gold) <= 1e-6 * s0Gold, $"σ_max(W0) {lanczos.Value} vs {s0Gold}");

        // The F32-rounded sum carries noise at 1e-7 relative: float32's epsilon removes it, as in the reference rule.
        var res = Prune.RestrainDense(delta, lanczos.Value, PruneMode.Log, Prune.Float32Epsilon);
        int rankGold = (int)gold.ReadDoubles($"prune.rank.L{layer}")[0];
        Assert.Equal(rankGold, res.Rank);
        var sGold = gold.ReadDoubles($"prune.s.L{layer}");
        var srGold = gold.ReadDoubles($"prune.s_restrained.L{layer}");
        for (int i = 0; i < rankGold; i++)
        {
            Assert.True(Math.Abs(res.SingularValues[i] - sGold[i]) <= 1e-5 * sGold[0], $"σ_{i} {res.SingularValues[i]} vs {sGold[i]}");
            Assert.True(Math.Abs(res.RestrainedValues[i] - srGold[i]) <= 1e-5 * srGold[0], $"F(σ_{i}) {res.RestrainedValues[i]} vs {srGold[i]}");
        }
        var wPrime = MatrixD.Add(w0, res.DeltaPrime());
        var wGold = new MatrixD(d, f, gold.ReadDoubles($"prune.W.L{layer}"));
        AssertRel(RelFro(wPrime, wGold), 1e-6, "W' = W0 + Δ'");

        // Factored path from rank-1 factors of each step (each step is one request → rank 1 up to F32 rounding)
        var x = new MatrixD(d, 3); var y = new MatrixD(f, 3);
        for (int t = 1; t <= 3; t++)
        {
            var step = ThinSvd.Compute(new MatrixD(d, f, gold.ReadDoubles($"seqmemit.step{t}.delta.L{layer}")));
            for (int i = 0; i < d; i++) x[i, t - 1] = step.U[i, 0] * step.S[0];
            for (int j = 0; j < f; j++) y[j, t - 1] = step.V[j, 0];
        }
        var fac = Prune.RestrainFactored(x, y, lanczos.Value, PruneMode.Log);
        Assert.Equal(rankGold, fac.Rank);
        AssertRel(RelFro(MatrixD.Add(w0, fac.DeltaPrime()), wGold), 1e-5, "factored W'");

        // mixed case: W0 + s·Δ with only the top value restrained
        double scale = gold.ReadDoubles($"prune_mixed.scale.L{layer}")[0];
        var scaled = delta.Clone(); scaled.Scale(scale);
        var mixed = Prune.RestrainDense(scaled, lanczos.Value, PruneMode.Log, Prune.Float32Epsilon);
        Assert.Equal(1, mixed.RestrainedCount);
        AssertRel(RelFro(MatrixD.Add(w0, mixed.DeltaPrime()), new MatrixD(d, f, gold.ReadDoubles($"prune_mixed.W.L{layer}"))), 1e-6, "mixed W'");
    }

    [Fact]
    public void RestrainingNamesEachRefusal()
    {
        var x = new MatrixD(3, 2); var y = new MatrixD(4, 2);
        Assert.Equal("x", Assert.Throws<ArgumentNullException>(() => Prune.RestrainFactored(null!, y, 1)).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentNullException>(() => Prune.RestrainFactored(x, null!, 1)).ParamName);
        Assert.Equal("delta", Assert.Throws<ArgumentNullException>(() => Prune.RestrainDense(null!, 1)).ParamName);
        Assert.StartsWith("X (3×2) and Y (4×1) need the same number of columns",
            Assert.Throws<ArgumentException>(() => Prune.RestrainFactored(x, new MatrixD(4, 1), 1)).Message);
        foreach (var s0 in new[] { 0, -1, double.NaN, double.PositiveInfinity })
        {
            Assert.StartsWith($"σ_max(W0) must be positive and finite, got {s0}",
                Assert.Throws<ArgumentOutOfRangeException>(() => Prune.RestrainFactored(x, y, s0)).Message);
            Assert.StartsWith($"σ_max(W0) must be positive and finite, got {s0}",
                Assert.Throws<ArgumentOutOfRangeException>(() => Prune.RestrainDense(new MatrixD(3, 4), s0)).Message);
        }
    }

    [Fact]
    public void NumericalRankScalesItsToleranceByTheLargerSide()
    {
        // numpy's rule: tol = σ₁ · max(rows, cols) · eps = 1 · 10 · 1e-7 = 1e-6, so 5e-7 does not count (with min(rows, cols) it would).
        Assert.Equal(1, Prune.NumericalRank(new[] { 1, 5e-7, 1e-7 }, 2, 10, 1e-7));
        Assert.Equal(1, Prune.NumericalRank(new[] { 1, 5e-7, 1e-7 }, 10, 2, 1e-7));
        Assert.Equal(2, Prune.NumericalRank(new[] { 1, 5e-7, 1e-7 }, 2, 2, 1e-7));
    }
}
