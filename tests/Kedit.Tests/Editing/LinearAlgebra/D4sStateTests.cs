using Kedit.Editing.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

/// <summary>
/// D4sState beyond the recursion itself (MemitD4sTests): the messages of its argument checks, the LU
/// path when λC + S_KK is not positive definite (and the way back to Cholesky once it is), the factor it
/// takes over, and the re-anchoring schedule. Expected values are dense MathNet solves.
/// </summary>
public class D4sStateTests
{
    static Matrix<double> DenseGamma(MatrixD lambdaC, Matrix<double> k, Matrix<double> r)
        => (ToMathNet(lambdaC) + k * k.Transpose()).Solve(k * r.Transpose()).Transpose();

    static void AssertMessage<T>(Action act, string expected, string? param = null) where T : ArgumentException
    {
        var e = Assert.Throws<T>(act);
        Assert.StartsWith(expected, e.Message);
        if (param != null) Assert.Equal(param, e.ParamName);
    }

    [Fact]
    public void ArgumentChecksNameTheShapes()
    {
        var rng = new Random(1);
        int f = 6, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d);
        AssertMessage<ArgumentException>(() => s.Add(Gaussian(rng, f + 1, 2), Gaussian(rng, d, 2)), "keys must have 6 rows (f), got 7×2", "keys");
        AssertMessage<ArgumentException>(() => s.Add(Gaussian(rng, f, 2), Gaussian(rng, d + 1, 2)), "residuals must be 3×2 (d × number of keys), got 4×2", "residuals");
        AssertMessage<ArgumentException>(() => s.Add(Gaussian(rng, f, 2), Gaussian(rng, d, 1)), "residuals must be 3×2 (d × number of keys), got 3×1", "residuals");
        Assert.Throws<ArgumentNullException>(() => s.Add(null!, Gaussian(rng, d, 1)));
        Assert.Throws<ArgumentNullException>(() => s.Add(Gaussian(rng, f, 1), null!));
        s.Add(Gaussian(rng, f, 2), Gaussian(rng, d, 2));
        var e = Assert.Throws<InvalidOperationException>(() => s.Remove(Gaussian(rng, f, 3), Gaussian(rng, d, 3)));
        Assert.Equal("cannot remove 3 keys: the state holds 2", e.Message);
        AssertMessage<ArgumentOutOfRangeException>(() => s.Delta(0), "divisor must be positive (L − i), got 0", "divisor");
        AssertMessage<ArgumentOutOfRangeException>(() => s.Delta(-1), "divisor must be positive (L − i), got -1", "divisor");
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Delta(double.NaN));
        AssertMessage<ArgumentException>(() => s.SolveM(new MatrixD(f - 1, 2)), "columns must have 6 rows, got 5", "columns");
        AssertMessage<ArgumentException>(() => new D4sState(new MatrixD(3, 4), d), "λC must be square, got 3×4", "lambdaC");
        AssertMessage<ArgumentOutOfRangeException>(() => new D4sState(c, 0), "output dimension d must be positive", "outputDim");
        AssertMessage<ArgumentOutOfRangeException>(() => new D4sState(c, -2), "output dimension d must be positive", "outputDim");
        Assert.Throws<ArgumentNullException>(() => new D4sState(null!, d));
        var wrong = CholeskyFactor.Factor(Spd(rng, f + 1));
        AssertMessage<ArgumentException>(() => D4sState.Rebuilding(() => c, f, d, wrong), "factor is 7×7, λC is 6×6", "lambdaCFactor");
        AssertMessage<ArgumentException>(() => D4sState.FromSums(c, new MatrixD(f, f + 1), new MatrixD(d, f), 0), "sumKK must be 6×6, got 6×7", "sumKK");
        AssertMessage<ArgumentException>(() => D4sState.FromSums(c, new MatrixD(f, f), new MatrixD(d, f + 1), 0), "S_RK must have 6 columns (f), got 3×7", "sumRK");
        Assert.Throws<ArgumentNullException>(() => D4sState.FromSums(null!, new MatrixD(f, f), new MatrixD(d, f), 0));
        Assert.Throws<ArgumentNullException>(() => D4sState.FromSums(c, null!, new MatrixD(d, f), 0));
        Assert.Throws<ArgumentNullException>(() => D4sState.FromSums(c, new MatrixD(f, f), null!, 0));
    }

    [Fact]
    public void AFreshStateHasNothingAndAnExactFactor()
    {
        var rng = new Random(2);
        int f = 9, d = 4;
        var c = Spd(rng, f);
        var s = new D4sState(c, d);
        Assert.Equal((f, d, 0, 0, 0), (s.KeyDim, s.OutputDim, s.KeyCount, s.StepsSinceAnchor, s.ReanchorCount));
        Assert.Equal((d, f), (s.Gamma.Rows, s.Gamma.Cols));
        Assert.All(s.Gamma.Data, v => Assert.Equal(0.0, v));
        Assert.False(s.UsesLuFallback);
        Assert.Null(s.FallbackReason);
        Assert.True(double.IsNaN(s.LastProbe));
        // With no edits M = λC: SolveM is λC⁻¹.
        var b = Gaussian(rng, f, 3);
        AssertRel(RelFro(s.SolveM(b), ToMathNet(c).Solve(ToMathNet(b))), 1e-11, "λC⁻¹ b");
        // A probe of the empty state is 0 (S_RK x = 0 and Γ = 0), and one of a corrupted Γ with S_RK = 0 is ‖Γ M x‖: finite.
        Assert.Equal(0.0, s.DriftProbe());
        s.Gamma.Data[0] = 1;
        double probe = s.DriftProbe(3);
        Assert.True(double.IsFinite(probe) && probe > 0, $"probe {probe}");
        Assert.Equal(probe, s.LastProbe);
    }

    [Fact]
    public void IndefiniteLambdaCUsesLuAtEveryStepAndSaysWhy()
    {
        var rng = new Random(3);
        int f = 12, d = 5;
        var c = Spd(rng, f);
        c[2, 2] = -0.5;   // indefinite, and stays so under keys that avoid coordinate 2
        var s = new D4sState(c, d, "λ·C + S_KK of layer 7");
        Assert.True(s.UsesLuFallback);
        Assert.StartsWith("λ·C + S_KK of layer 7 is not positive definite: Cholesky pivot ", s.FallbackReason);
        Assert.EndsWith("; using LU with partial pivoting at every step", s.FallbackReason);
        var kAll = Matrix<double>.Build.Dense(f, 0); var rAll = Matrix<double>.Build.Dense(d, 0);
        for (int t = 0; t < 3; t++)
        {
            var k = Gaussian(rng, f, 2); k[2, 0] = 0; k[2, 1] = 0;
            var r = Gaussian(rng, d, 2);
            var before = s.Gamma.Clone();
            var (x, y) = s.Add(k, r);
            kAll = kAll.Append(ToMathNet(k)); rAll = rAll.Append(ToMathNet(r));
            Assert.True(s.UsesLuFallback);
            AssertRel(RelFro(s.Gamma, DenseGamma(c, kAll, rAll)), 1e-9, $"Γ on the LU path, step {t + 1}");
            AssertRel(RelFro(MatrixD.Multiply(x, y, false, true), ToMathNet(s.Gamma) - ToMathNet(before)), 1e-8, $"change, step {t + 1}");
            var m = ToMathNet(c) + kAll * kAll.Transpose();
            var b = Gaussian(rng, f, 2);
            AssertRel(RelFro(s.SolveM(b), m.Solve(ToMathNet(b))), 1e-9, "SolveM on the LU path");
        }
        // Re-anchoring on the LU path recomputes the same Γ.
        s.Gamma.Data[3] += 1;
        s.Reanchor();
        AssertRel(RelFro(s.Gamma, DenseGamma(c, kAll, rAll)), 1e-9, "re-anchored Γ on the LU path");
    }

    [Fact]
    public void KeysThatMakeMPositiveDefiniteBringCholeskyBackAndRemovingThemLuAgain()
    {
        var rng = new Random(4);
        int f = 10, d = 4;
        var c = Spd(rng, f);
        c[2, 2] = -0.3;   // indefinite
        var s = new D4sState(c, d);
        Assert.True(s.UsesLuFallback);
        var k = new MatrixD(f, 1); k[2, 0] = 5;   // K Kᵀ adds 25 at (2, 2) only: M = C + (25 − 0.3 − C₂₂) e₂e₂ᵀ is positive definite
        var r = Gaussian(rng, d, 1);
        s.Add(k, r);
        Assert.False(s.UsesLuFallback);
        Assert.Null(s.FallbackReason);
        AssertRel(RelFro(s.Gamma, DenseGamma(c, ToMathNet(k), ToMathNet(r))), 1e-9, "Γ after the step that made M definite");
        // Further steps run the recursion on the new factor.
        var k2 = Gaussian(rng, f, 2); var r2 = Gaussian(rng, d, 2);
        s.Add(k2, r2);
        var kAll = ToMathNet(k).Append(ToMathNet(k2)); var rAll = ToMathNet(r).Append(ToMathNet(r2));
        AssertRel(RelFro(s.Gamma, DenseGamma(c, kAll, rAll)), 1e-9, "Γ after a recursion step");
        // Removing the key that made M definite goes back to LU, with the reason.
        s.Remove(k, r);
        Assert.True(s.UsesLuFallback);
        Assert.Contains("not positive definite", s.FallbackReason);
        Assert.Equal(2, s.KeyCount);
        AssertRel(RelFro(s.Gamma, DenseGamma(c, ToMathNet(k2), ToMathNet(r2))), 1e-9, "Γ after removal on the LU path");
        AssertRel(RelFro(s.SumRK, ToMathNet(r2) * ToMathNet(k2).Transpose()), 1e-12, "S_RK after removal");
    }

    [Fact]
    public void TakenFactorIsUpdatedInPlaceAndNoFactorMeansFactoringλC()
    {
        var rng = new Random(5);
        int f = 8, d = 3;
        var c = Spd(rng, f);
        var factor = CholeskyFactor.Factor(c);
        var s = D4sState.Rebuilding(() => c, f, d, factor);
        var k = Gaussian(rng, f, 2); var r = Gaussian(rng, d, 2);
        s.Add(k, r);
        // The caller's factor object now factors λC + K Kᵀ (no copy was made).
        var m = ToMathNet(c) + ToMathNet(k) * ToMathNet(k).Transpose();
        AssertRel(RelFro(factor.Lower(), m.Cholesky().Factor), 1e-12, "the taken factor after one step");
        var own = D4sState.Rebuilding(() => c, f, d);
        Assert.False(own.UsesLuFallback);
        own.Add(k, r);
        AssertRel(RelFro(own.Gamma, s.Gamma), 1e-12, "no factor given: λC factored by the state");
        var indefinite = c.Clone(); indefinite[0, 0] = -1;
        Assert.True(D4sState.Rebuilding(() => indefinite, f, d).UsesLuFallback);
    }

    [Fact]
    public void ReanchoringFollowsTheIntervalAndTheProbe()
    {
        var rng = new Random(6);
        int f = 7, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ReanchorInterval = 3, ProbeInterval = 0 };
        var counts = new List<(int Steps, int Anchors)>();
        for (int t = 0; t < 7; t++) { s.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1)); counts.Add((s.StepsSinceAnchor, s.ReanchorCount)); }
        Assert.Equal(new[] { (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2) }, counts);
        Assert.True(double.IsNaN(s.LastProbe)); // no probe ran

        // Probe every 2nd step with a tolerance every probe exceeds: a re-anchor at steps 2, 4, 6.
        var p = new D4sState(c, d) { ReanchorInterval = 0, ProbeInterval = 2, ProbeTolerance = -1 };
        counts.Clear();
        for (int t = 0; t < 6; t++) { p.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1)); counts.Add((p.StepsSinceAnchor, p.ReanchorCount)); }
        Assert.Equal(new[] { (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (0, 3) }, counts);
        Assert.False(double.IsNaN(p.LastProbe));
        // A tolerance no probe exceeds: the probe runs, nothing is re-anchored.
        var q = new D4sState(c, d) { ReanchorInterval = 0, ProbeInterval = 1, ProbeTolerance = 1 };
        for (int t = 0; t < 4; t++) q.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1));
        Assert.Equal((4, 0), (q.StepsSinceAnchor, q.ReanchorCount));
        Assert.True(q.LastProbe < 1e-10, $"probe {q.LastProbe}");
        // FromSums re-anchors once; Remove re-anchors.
        var restored = D4sState.FromSums(c, s.SumKK, s.SumRK, s.KeyCount);
        Assert.Equal((0, 1, 7), (restored.StepsSinceAnchor, restored.ReanchorCount, restored.KeyCount));
    }

    [Fact]
    public void DeltaIsGammaOverTheDivisor()
    {
        var rng = new Random(7);
        int f = 6, d = 2;
        var s = new D4sState(Spd(rng, f), d);
        s.Add(Gaussian(rng, f, 2), Gaussian(rng, d, 2));
        var g = ToMathNet(s.Gamma);
        AssertRel(RelFro(s.Delta(1), g), 1e-15, "Δ with divisor 1");
        AssertRel(RelFro(s.Delta(4), g / 4), 1e-15, "Δ with divisor 4");
        Assert.NotSame(s.Gamma, s.Delta(1));
    }

    [Fact]
    public void RemoveChecksItsBatchAndMayEmptyTheState()
    {
        var rng = new Random(8);
        int f = 6, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d);
        var k = Gaussian(rng, f, 2); var r = Gaussian(rng, d, 2);
        s.Add(k, r);
        AssertMessage<ArgumentException>(() => s.Remove(k, Gaussian(rng, d, 1)), "residuals must be 3×2 (d × number of keys), got 3×1", "residuals");
        s.Remove(k, r);   // all the keys it holds
        Assert.Equal(0, s.KeyCount);
        Assert.All(s.Gamma.Data, v => Assert.True(Math.Abs(v) < 1e-12));
        // Restored from sums: factored by Cholesky, not the LU path.
        s.Add(k, r);
        Assert.False(D4sState.FromSums(c, s.SumKK, s.SumRK, s.KeyCount).UsesLuFallback);
    }

    [Fact]
    public void SumsAreHeldAsTermsUntilTheKeysPassAnEighthOfF()
    {
        // f = 32: up to 4 keys the state keeps each Add's Kᵀ and R (and the sums they make, exactly); the 5th goes dense.
        var rng = new Random(9);
        int f = 32, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ProbeInterval = 0, ReanchorInterval = 0 };
        long factor = f * (f + 1) / 2, gamma = d * f;
        Assert.True(s.HoldsTerms);
        Assert.Equal((factor + gamma) * 8, s.HeldBytes);
        var k1 = Gaussian(rng, f, 1); var r1 = Gaussian(rng, d, 1);
        var k2 = Gaussian(rng, f, 3); var r2 = Gaussian(rng, d, 3);
        s.Add(k1, r1);
        s.Add(k2, r2);
        Assert.True(s.HoldsTerms);   // 4 keys = f/8
        Assert.Equal((factor + gamma + (f + d) * 1 + (f + d) * 3) * 8, s.HeldBytes);
        var kAll = ToMathNet(k1).Append(ToMathNet(k2)); var rAll = ToMathNet(r1).Append(ToMathNet(r2));
        AssertRel(RelFro(s.SumKK, kAll * kAll.Transpose()), 1e-14, "S_KK from the terms");
        AssertRel(RelFro(s.SumRK, rAll * kAll.Transpose()), 1e-14, "S_RK from the terms");
        var into = new MatrixD(f, f); Array.Fill(into.Data, double.NaN);   // overwritten, not added to
        s.WriteSumKK(into);
        Assert.Equal(s.SumKK.Data, into.Data);
        var intoRk = new MatrixD(d, f); Array.Fill(intoRk.Data, double.NaN);
        s.WriteSumRK(intoRk);
        Assert.Equal(s.SumRK.Data, intoRk.Data);
        AssertMessage<ArgumentException>(() => s.WriteSumKK(new MatrixD(d, f)), "into must be 32×32, got 3×32", "into");
        AssertMessage<ArgumentException>(() => s.WriteSumRK(new MatrixD(f, f)), "into must be 3×32, got 32×32", "into");
        // The drift probe reads the sums from the terms too: a step is exact to rounding, so nothing is re-anchored.
        s.ProbeInterval = 1;
        var k3 = Gaussian(rng, f, 1); var r3 = Gaussian(rng, d, 1);
        s.Add(k3, r3);
        Assert.False(s.HoldsTerms);   // 5 keys > f/8: dense from now on
        Assert.Equal((factor + gamma + f * f + d * f) * 8, s.HeldBytes);
        Assert.True(s.LastProbe < 1e-12, $"probe {s.LastProbe}");
        Assert.Equal(0, s.ReanchorCount);
        kAll = kAll.Append(ToMathNet(k3)); rAll = rAll.Append(ToMathNet(r3));
        AssertRel(RelFro(s.SumKK, kAll * kAll.Transpose()), 1e-14, "S_KK dense");
        AssertRel(RelFro(s.Gamma, DenseGamma(c, kAll, rAll)), 1e-10, "Γ");
        Assert.Same(s.SumKK, s.SumKK);   // dense: its own matrices, not new ones each time
        Assert.Same(s.SumRK, s.SumRK);
        var dense = new MatrixD(f, f);
        s.WriteSumKK(dense);
        Assert.Equal(s.SumKK.Data, dense.Data);
    }

    [Fact]
    public void ProbingTheTermsFindsTheSameDriftAsTheDenseSums()
    {
        // The same two edits held as terms (f = 40) and dense (restored from their sums): a probe of each, with the
        // same random vectors (each state's own generator, fresh), reads S_KK x and S_RK x the two ways.
        var rng = new Random(13);
        int f = 40, d = 4;
        var c = Spd(rng, f);
        var k = Gaussian(rng, f, 2); var r = Gaussian(rng, d, 2);
        var terms = new D4sState(c, d) { ProbeInterval = 0 };
        terms.Add(k, r);
        Assert.True(terms.HoldsTerms);
        var dense = D4sState.FromSums(c, terms.SumKK, terms.SumRK, terms.KeyCount);
        Assert.False(dense.HoldsTerms);
        // Both Γ are exact to rounding, so each probe is rounding-sized; a wrong S x in either would give O(1).
        double pt = terms.DriftProbe(3), pd = dense.DriftProbe(3);
        Assert.True(pt < 1e-12 && pd < 1e-12, $"probes {pt:E2} (terms), {pd:E2} (dense)");
        // With no residuals S_RK x = 0: the probe is the absolute ‖Γ M x‖, 0 for Γ = 0.
        var zero = new D4sState(c, d) { ProbeInterval = 0 };
        zero.Add(k, new MatrixD(d, 2));
        Assert.Equal(0.0, zero.DriftProbe());
    }

    [Fact]
    public void RemovingAnEditHeldAsTermsDropsItsTermsAndAnUnknownOneGoesDense()
    {
        var rng = new Random(10);
        int f = 32, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d);
        var k1 = Gaussian(rng, f, 2); var r1 = Gaussian(rng, d, 2);
        var k2 = Gaussian(rng, f, 1); var r2 = Gaussian(rng, d, 1);
        s.Add(k1, r1); s.Add(k2, r2);
        s.Remove(k1, r1);
        Assert.True(s.HoldsTerms);
        Assert.Equal(1, s.KeyCount);
        Assert.Equal(MatrixD.Multiply(k2, k2, false, true).Data, s.SumKK.Data);   // the sum of the rest, exactly
        AssertRel(RelFro(s.Gamma, DenseGamma(c, ToMathNet(k2), ToMathNet(r2))), 1e-10, "Γ after removing the first edit");
        // Keys never added (same shape): no term matches, so the state goes dense and subtracts them.
        var other = Gaussian(rng, f, 1); var otherR = Gaussian(rng, d, 1);
        var before = ToMathNet(s.SumKK);
        s.Remove(other, otherR);
        Assert.False(s.HoldsTerms);
        Assert.Equal(0, s.KeyCount);
        AssertRel(RelFro(s.SumKK, before - ToMathNet(other) * ToMathNet(other).Transpose()), 1e-14, "S_KK less the unknown keys");
        AssertRel(RelFro(s.SumRK, ToMathNet(r2) * ToMathNet(k2).Transpose() - ToMathNet(otherR) * ToMathNet(other).Transpose()), 1e-14, "S_RK");
        // Same keys, other residuals: not the edit that was added either.
        var t = new D4sState(c, d);
        t.Add(k1, r1);
        var r1b = r1.Clone(); r1b[0, 0] += 1;
        t.Remove(k1, r1b);
        Assert.False(t.HoldsTerms);
        AssertRel(RelFro(t.SumRK, ToMathNet(r1) * ToMathNet(k1).Transpose() - ToMathNet(r1b) * ToMathNet(k1).Transpose()), 1e-12, "S_RK after removing other residuals");
    }

    [Fact]
    public void UsedWorkspaceSaysWhenAStepMadeFxFGarbage()
    {
        var rng = new Random(11);
        int f = 16, d = 2;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ProbeInterval = 0, ReanchorInterval = 0 };
        Assert.True(s.UsedWorkspace);       // the constructor factored λC
        s.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1));
        Assert.False(s.UsedWorkspace);      // rank-1 updates only
        s.ProbeInterval = 1;
        s.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1));
        Assert.True(s.UsedWorkspace);       // the probe rebuilt λC
        s.ProbeInterval = 0;
        var k = Gaussian(rng, f, 1); var r = Gaussian(rng, d, 1);
        s.Add(k, r);
        Assert.False(s.UsedWorkspace);      // reset by every step
        s.Remove(k, r);
        Assert.True(s.UsedWorkspace);       // refactored and re-anchored
        s.ReanchorInterval = 1;
        s.Add(k, r);
        Assert.True(s.UsedWorkspace);       // re-anchored
        // λC rebuilt with another shape is refused, naming both.
        var wrong = D4sState.Rebuilding(() => new MatrixD(3, 3), f, d, CholeskyFactor.Factor(c));
        Assert.Equal("λC was rebuilt as 3×3, the state is 16×16", Assert.Throws<InvalidOperationException>(() => wrong.DriftProbe()).Message);
        var narrow = D4sState.Rebuilding(() => new MatrixD(16, 15), f, d, CholeskyFactor.Factor(c));
        Assert.Equal("λC was rebuilt as 16×15, the state is 16×16", Assert.Throws<InvalidOperationException>(() => narrow.DriftProbe()).Message);
        // Under the LU fallback there is no factor to hold.
        var indefinite = c.Clone(); indefinite[0, 0] = -1;
        var lu = new D4sState(indefinite, d);
        Assert.True(lu.UsesLuFallback);
        Assert.Equal((long)d * f * 8, lu.HeldBytes);
        AssertMessage<ArgumentOutOfRangeException>(() => D4sState.Rebuilding(() => c, 0, d), "key dimension f must be positive", "keyDim");
        Assert.Throws<ArgumentNullException>(() => D4sState.Rebuilding(null!, f, d));
    }

    [Fact]
    public void TheDriftProbeIsRelativeToTheResiduals()
    {
        // Residuals of size 1e12: Γ is exact to rounding, ~1e-16 of S_RK x, so a relative probe stays far below its
        // 1e-8 tolerance (no re-anchor), while the same rounding measured absolutely would be ~1e-4.
        var rng = new Random(14);
        int f = 8, d = 3;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ProbeInterval = 1, ReanchorInterval = 0 };
        for (int t = 0; t < 3; t++)
        {
            var r = Gaussian(rng, d, 2); r.Scale(1e12);
            s.Add(Gaussian(rng, f, 2), r);
            Assert.True(s.LastProbe < 1e-12, $"probe {s.LastProbe:E2} after step {t + 1}");
        }
        Assert.Equal(0, s.ReanchorCount);
    }
}
