using Kedit.Editing.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

public class MemitD4sTests
{
    // Dense reference: R Kᵀ (λC + K Kᵀ)⁻¹ via MathNet (LU), independent of the Woodbury route.
    static Matrix<double> DenseMemit(MatrixD lambdaC, MatrixD k, MatrixD r)
    {
        var K = ToMathNet(k);
        var m = ToMathNet(lambdaC) + K * K.Transpose();
        // X m = R Kᵀ  ⇔  m Xᵀ = K Rᵀ
        return m.Solve(K * ToMathNet(r).Transpose()).Transpose();
    }

    [Theory]
    [InlineData(37, 13, 3, 0.5)]
    [InlineData(300, 40, 7, 15000.0)]
    [InlineData(64, 20, 1, 1.0)]
    public void MemitSolveEqualsDenseSolve(int f, int d, int n, double lambda)
    {
        var rng = new Random(f + d + n);
        var c = Spd(rng, f); c.Scale(lambda);
        var k = Gaussian(rng, f, n);
        var r = Gaussian(rng, d, n);
        var solver = new MemitSolver(c);
        Assert.False(solver.UsesLuFallback);
        var dw = solver.Solve(k, r);
        AssertRel(RelFro(dw, DenseMemit(c, k, r)), 1e-10, "ΔW");
        // §19.4 ridge optimality: ΔW (λC + K Kᵀ) = R Kᵀ
        var lhs = ToMathNet(dw) * (ToMathNet(c) + ToMathNet(k) * ToMathNet(k).Transpose());
        AssertRel(RelFro(LinAlgTestUtil.FromMathNet(lhs), ToMathNet(r) * ToMathNet(k).Transpose()), 1e-10, "ridge optimality");
    }

    [Theory]
    [InlineData(60, 9, 4, 2e-2, 10.0)]
    [InlineData(120, 16, 7, 1e-1, 1.0)]
    public void AlphaEditNullSpaceSolveEqualsTheFullProjectedSolve(int f, int d, int n, double threshold, double alpha)
    {
        // Spec §19.10: X = inv(P A + αI) P B with P = U0U0ᵀ from C's eigenvectors below the threshold,
        // A = K Kᵀ + Σ_prev, B = K Rᵀ — computed densely with MathNet's own eigen decomposition.
        var rng = new Random(f + n);
        var c = Spd(rng, f, decades: 3);
        var kPrev = Gaussian(rng, f, 5);
        var k = Gaussian(rng, f, n);
        var r = Gaussian(rng, d, n);
        var solver = NullSpaceSolver.FromCovariance(c, threshold, alpha, "test layer");
        solver.Preserve(kPrev);

        var evd = ToMathNet(c).Evd(Symmetricity.Symmetric);
        var cols = Enumerable.Range(0, f).Where(j => Math.Abs(evd.EigenValues[j].Real) < threshold).ToArray();
        Assert.Equal(cols.Length, solver.Rank);
        Assert.InRange(cols.Length, 1, f - 1);
        var u0 = Matrix<double>.Build.Dense(f, cols.Length, (i, j) => evd.EigenVectors[i, cols[j]]);
        var p = u0 * u0.Transpose();
        var K = ToMathNet(k); var Kp = ToMathNet(kPrev);
        var A = K * K.Transpose() + Kp * Kp.Transpose();
        var X = (p * A + alpha * Matrix<double>.Build.DenseIdentity(f)).Solve(p * K * ToMathNet(r).Transpose());   // f×d
        var dw = MatrixD.Multiply(r, solver.SolveKeysTransposed(k));
        AssertRel(RelFro(dw, X.Transpose()), 1e-9, "ΔW");
        // The update never touches the directions the statistics use: ΔW u = 0 for eigenvectors above the threshold.
        for (int j = 0; j < f; j++)
            if (!cols.Contains(j))
            {
                var out_ = ToMathNet(dw) * evd.EigenVectors.Column(j);
                Assert.True(out_.L2Norm() <= 1e-10 * ToMathNet(dw).FrobeniusNorm(), $"ΔW u_{j} = {out_.L2Norm():E3}");
            }
    }

    [Fact]
    public void AlphaEditRejectsAnEmptyNullSpaceAndZeroAlpha()
    {
        var c = MatrixD.Identity(8);
        var e = Assert.Throws<Kedit.KeditException>(() => NullSpaceSolver.FromCovariance(c, 0.5, 10, "layer 3"));
        Assert.Contains("layer 3", e.Message);
        Assert.Contains("nullspace_threshold", e.Message);
        Assert.Throws<Kedit.KeditException>(() => NullSpaceSolver.FromCovariance(c, 2.0, 0, "layer 3"));
    }

    [Fact]
    public void AlphaEditNamesEachRefusal()
    {
        var c = MatrixD.Identity(8);
        Assert.Equal("layer 3: no eigenvalue of the key covariance is below nullspace_threshold 0.5 (smallest 1); AlphaEdit has no null space to edit in — raise nullspace_threshold or edit another layer",
            Assert.Throws<Kedit.KeditException>(() => NullSpaceSolver.FromCovariance(c, 0.5, 10, "layer 3")).Message);
        foreach (var alpha in new[] { 0, -1, double.NaN, double.PositiveInfinity })
            Assert.StartsWith($"AlphaEdit needs L2 (α) > 0, got {alpha}: with α = 0 the null-space system is singular",
                Assert.Throws<Kedit.KeditException>(() => new NullSpaceSolver(new MatrixD(3, 1, new double[] { 1, 0, 0 }), alpha)).Message);
        Assert.Equal("AlphaEdit: the null space is empty", Assert.Throws<Kedit.KeditException>(() => new NullSpaceSolver(new MatrixD(3, 0), 1)).Message);
        Assert.Throws<ArgumentNullException>(() => new NullSpaceSolver(null!, 1));
        Assert.Throws<ArgumentNullException>(() => NullSpaceSolver.FromCovariance(null!, 1, 1, "layer 3"));
        var solver = new NullSpaceSolver(new MatrixD(3, 1, new double[] { 0, 1, 0 }), 2);
        var e = Assert.Throws<ArgumentException>(() => solver.SolveKeysTransposed(new MatrixD(4, 2)));
        Assert.StartsWith("keys must have 3 rows (f), got 4×2", e.Message);
        Assert.Equal("keys", e.ParamName);
        Assert.Throws<ArgumentException>(() => solver.Preserve(new MatrixD(2, 1)));
        Assert.Throws<ArgumentNullException>(() => solver.Preserve(null!));
    }

    [Fact]
    public void AlphaEditNullSpaceKeepsEigenvaluesStrictlyBelowTheThresholdByMagnitude()
    {
        // C = diag(−5, 0.001, 0.5, 3): |−5| and 0.5 are not below 0.5, so U0 = ±e₁ alone (rank 1).
        var c = new MatrixD(4, 4);
        c[0, 0] = -5; c[1, 1] = 0.001; c[2, 2] = 0.5; c[3, 3] = 3;
        var solver = NullSpaceSolver.FromCovariance(c, 0.5, 2, "layer 1");
        Assert.Equal((4, 1, 2.0, 0), (solver.KeyDim, solver.Rank, solver.Alpha, solver.PreservedKeys));
        Assert.Equal(new[] { 0.0, 1, 0, 0 }, solver.Basis.Data.Select(Math.Abs));
        var negative = new MatrixD(3, 3);
        negative[0, 0] = -2; negative[1, 1] = 3; negative[2, 2] = 4;
        Assert.Contains("(smallest 2)", Assert.Throws<Kedit.KeditException>(() => NullSpaceSolver.FromCovariance(negative, 1, 1, "layer 1")).Message);

        // In U0's one coordinate the system is α + Σ k₁² + k₁k₁ᵀ: with α = 2, preserved keys whose e₁ parts are 1 and 2
        // (Σ = 5) and one key k with k₁ = 3, Gᵀ = k₁/(2 + 5 + 9) e₁ᵀ = (3/16) e₁ᵀ (up to U0's sign, which cancels).
        var kept = new MatrixD(4, 2, new double[] { 9, 0, 1, 2, 0, 7, 0, 0 });
        solver.Preserve(kept.Block(0, 0, 4, 1));
        solver.Preserve(kept.Block(0, 1, 4, 1));
        Assert.Equal(2, solver.PreservedKeys);
        var gt = solver.SolveKeysTransposed(new MatrixD(4, 1, new double[] { 100, 3, 50, -8 }));
        Assert.Equal((1, 4), (gt.Rows, gt.Cols));
        Assert.Equal(new[] { 0, 3.0 / 16, 0, 0 }, gt.Data.Select(v => Math.Round(v, 15)));
    }

    [Fact]
    public void MemitFallsBackToLuAndReportsIt()
    {
        var rng = new Random(21);
        var c = Spd(rng, 30);
        c[4, 4] = -0.5;  // indefinite: Cholesky must refuse, LU must still give the reference answer
        var k = Gaussian(rng, 30, 2); var r = Gaussian(rng, 9, 2);
        var solver = new MemitSolver(c, "λ·C of layer 4");
        Assert.True(solver.UsesLuFallback);
        Assert.Contains("λ·C of layer 4", solver.FallbackReason);
        Assert.EndsWith("; using LU with partial pivoting", solver.FallbackReason);
        Assert.False(solver.FactorOnDevice);
        Assert.False(new MemitSolver(Spd(rng, 5)).FactorOnDevice);
        AssertRel(RelFro(solver.Solve(k, r), DenseMemit(c, k, r)), 1e-9, "ΔW via LU");
    }

    [Fact]
    public void MemitSolvesAnIndefiniteRequestSystemByLu()
    {
        // λC = diag(−1, 1, 1, 1) and one key 2·e₀: the n×n system I + Kᵀ(λC)⁻¹K is 1 − 4 = −3, which Cholesky refuses,
        // while λC + K Kᵀ = diag(3, 1, 1, 1) is invertible: ΔW must still be R Kᵀ (λC + K Kᵀ)⁻¹.
        var c = MatrixD.Identity(4); c[0, 0] = -1;
        var k = new MatrixD(4, 1); k[0, 0] = 2;
        var r = Gaussian(new Random(5), 3, 1);
        AssertRel(RelFro(new MemitSolver(c).Solve(k, r), DenseMemit(c, k, r)), 1e-12, "ΔW through the LU of the request system");
    }

    [Fact]
    public void MemitNamesASingularRequestSystem()
    {
        // λC = diag(−1, 1, 1, 1) and the key e₀: I + Kᵀ(λC)⁻¹K = 1 − 1 = 0 (and λC + K Kᵀ is singular too): no ΔW exists.
        var c = MatrixD.Identity(4); c[0, 0] = -1;
        var k = new MatrixD(4, 1); k[0, 0] = 1;
        var e = Assert.Throws<SingularMatrixException>(() => new MemitSolver(c).Solve(k, new MatrixD(3, 1)));
        Assert.StartsWith("I + Kᵀ(λC)⁻¹K is singular to working precision", e.Message);
    }

    [Fact]
    public void MemitRejectsMismatchedShapes()
    {
        var solver = new MemitSolver(MatrixD.Identity(5));
        Assert.Contains("keys must have 5 rows (f), got 4×2", Assert.Throws<ArgumentException>(() => solver.Solve(new MatrixD(4, 2), new MatrixD(3, 2))).Message);
        Assert.Contains("residuals have 3 columns but keys have 2", Assert.Throws<ArgumentException>(() => solver.Solve(new MatrixD(5, 2), new MatrixD(3, 3))).Message);
        Assert.Contains("λ·C of layer 2 must be square, got 3×4", Assert.Throws<ArgumentException>(() => new MemitSolver(new MatrixD(3, 4), "λ·C of layer 2")).Message);
        Assert.Throws<ArgumentNullException>(() => solver.Solve(null!, new MatrixD(3, 2)));
        Assert.Throws<ArgumentNullException>(() => solver.Solve(new MatrixD(5, 2), null!));
        Assert.Throws<ArgumentNullException>(() => solver.SolveKeysTransposed(null!));
        Assert.Throws<ArgumentNullException>(() => new MemitSolver((MatrixD)null!, "λ·C"));
        Assert.Throws<ArgumentNullException>(() => new MemitSolver(MatrixD.Identity(3), "λ·C", null!));
    }

    [Theory]
    [InlineData(37, 13, 25)]
    [InlineData(300, 20, 6)]
    public void D4sRecursionEqualsDirectSolveAtEveryStep(int f, int d, int steps)
    {
        var rng = new Random(f * 31 + steps);
        var c = Spd(rng, f); c.Scale(2.0);
        var state = D4sState.Rebuilding(() => c, c.Rows, d, new MemitSolver(c).Factor);
        state.ProbeInterval = 0; state.ReanchorInterval = 0;   // pure recursion, no re-anchoring
        var kAll = Matrix<double>.Build.Dense(f, 0); var rAll = Matrix<double>.Build.Dense(d, 0);
        for (int t = 0; t < steps; t++)
        {
            int n = 1 + t % 3;
            var k = Gaussian(rng, f, n, 3.0); var r = Gaussian(rng, d, n);
            state.Add(k, r);
            kAll = kAll.Append(ToMathNet(k)); rAll = rAll.Append(ToMathNet(r));
            var direct = (ToMathNet(c) + kAll * kAll.Transpose()).Solve(kAll * rAll.Transpose()).Transpose();
            AssertRel(RelFro(state.Gamma, direct), 1e-10, $"Γ at step {t + 1}");
            AssertRel(RelFro(state.SumKK, kAll * kAll.Transpose()), 1e-13, "S_KK");
            AssertRel(RelFro(state.SumRK, rAll * kAll.Transpose()), 1e-13, "S_RK");
        }
        Assert.Equal(0, state.ReanchorCount);
        Assert.True(state.DriftProbe(2) < 1e-10, $"probe {state.LastProbe}");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void D4sAddReturnsTheChangeOfGammaAsFactors(bool cholesky)
    {
        // Γ_new − Γ_old = (R − Γ_old K)(M_new⁻¹ K)ᵀ: checked against the dense difference, on both factor paths.
        var rng = new Random(cholesky ? 5 : 6);
        int f = 40, d = 9;
        var c = Spd(rng, f);
        if (!cholesky) c[2, 2] = -0.3;   // indefinite: the LU path
        var state = new D4sState(c, d);
        Assert.Equal(!cholesky, state.UsesLuFallback);
        for (int t = 0; t < 4; t++)
        {
            int n = 1 + t % 2;
            var before = state.Gamma.Clone();
            var (x, y) = state.Add(Gaussian(rng, f, n, 2.0), Gaussian(rng, d, n));
            Assert.Equal((d, n, f, n), (x.Rows, x.Cols, y.Rows, y.Cols));
            var change = ToMathNet(state.Gamma) - ToMathNet(before);
            AssertRel(RelFro(MatrixD.Multiply(x, y, false, true), change), 1e-9, $"change at step {t + 1}");
            // σ₁ of the factored change against a dense SVD.
            double sigma = SpectralNorm.OfProduct(x, y);
            Assert.True(Math.Abs(sigma - change.Svd(false).S[0]) < 1e-9 * sigma, $"σ₁ {sigma} vs {change.Svd(false).S[0]}");
        }
    }

    [Fact]
    public void D4sWithFrequentReanchoringStaysExact()
    {
        var rng = new Random(90);
        int f = 120, d = 17;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ReanchorInterval = 3, ProbeInterval = 2 };
        var kAll = Matrix<double>.Build.Dense(f, 0); var rAll = Matrix<double>.Build.Dense(d, 0);
        for (int t = 0; t < 10; t++)
        {
            var k = Gaussian(rng, f, 5); var r = Gaussian(rng, d, 5);   // 5 keys: blocked solve path
            s.Add(k, r);
            kAll = kAll.Append(ToMathNet(k)); rAll = rAll.Append(ToMathNet(r));
        }
        Assert.True(s.ReanchorCount >= 3);
        var direct = (ToMathNet(c) + kAll * kAll.Transpose()).Solve(kAll * rAll.Transpose()).Transpose();
        AssertRel(RelFro(s.Gamma, direct), 1e-10, "Γ");
        // the MEMIT solver built on a cached factor gives the one-shot batch answer for all 50 keys
        var batch = new MemitSolver(CholeskyFactor.Factor(c)).Solve(LinAlgTestUtil.FromMathNet(kAll), LinAlgTestUtil.FromMathNet(rAll));
        AssertRel(RelFro(batch, direct), 1e-10, "batch MEMIT on the same keys");
    }

    [Fact]
    public void D4sFirstStepEqualsMemitFormula()
    {
        var rng = new Random(77);
        int f = 37, d = 13, n = 3;
        var c = Spd(rng, f);
        var k = Gaussian(rng, f, n); var r = Gaussian(rng, d, n);
        var state = new D4sState(c, d);
        state.Add(k, r);
        for (int layersLeft = 1; layersLeft <= 3; layersLeft++)
        {
            var rDiv = r.Clone(); rDiv.Scale(1.0 / layersLeft);
            AssertRel(RelFro(state.Delta(layersLeft), DenseMemit(c, k, rDiv)), 1e-10, $"divisor {layersLeft}");
        }
    }

    /// <summary>Bad shapes and counts are refused before they touch the sums (survivors of a mutation run).</summary>
    [Fact]
    public void D4sRefusesMismatchedBatchesAndImpossibleRemovals()
    {
        var rng = new Random(79);
        int f = 11, d = 5;
        var state = new D4sState(Spd(rng, f), d);
        var k = Gaussian(rng, f, 2);
        Assert.Throws<ArgumentException>(() => state.Add(k, Gaussian(rng, d + 1, 2)));   // residual rows ≠ d
        Assert.Throws<ArgumentException>(() => state.Add(k, Gaussian(rng, d, 3)));       // residual columns ≠ keys
        Assert.Throws<ArgumentException>(() => state.Add(Gaussian(rng, f + 1, 2), Gaussian(rng, d, 2)));
        Assert.Equal(0, state.KeyCount);
        Assert.All(state.SumKK.Data, v => Assert.Equal(0.0, v));
        state.Add(k, Gaussian(rng, d, 2));
        Assert.Throws<InvalidOperationException>(() => state.Remove(Gaussian(rng, f, 3), Gaussian(rng, d, 3)));   // more keys than held
        Assert.Throws<ArgumentException>(() => state.Remove(k, Gaussian(rng, d, 3)));
        Assert.Equal(2, state.KeyCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => state.Delta(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new D4sState(Spd(rng, f), 0));
    }

    [Fact]
    public void D4sRemoveRestoresTheStateWithoutThatEdit()
    {
        var rng = new Random(78);
        int f = 41, d = 11;
        var c = Spd(rng, f);
        var ks = Enumerable.Range(0, 4).Select(_ => Gaussian(rng, f, 2)).ToArray();
        var rs = Enumerable.Range(0, 4).Select(_ => Gaussian(rng, d, 2)).ToArray();
        var all = new D4sState(c, d);
        for (int i = 0; i < 4; i++) all.Add(ks[i], rs[i]);
        all.Remove(ks[1], rs[1]);
        var without = new D4sState(c, d);
        foreach (int i in new[] { 0, 2, 3 }) without.Add(ks[i], rs[i]);
        AssertRel(RelFro(all.Gamma, without.Gamma), 1e-10, "Γ after removal");
        AssertRel(RelFro(all.SumKK, without.SumKK), 1e-12, "S_KK after removal");
        Assert.Equal(6, all.KeyCount);
        // and the factor left behind still drives correct recursion steps
        var k5 = Gaussian(rng, f, 1); var r5 = Gaussian(rng, d, 1);
        all.Add(k5, r5); without.Add(k5, r5);
        AssertRel(RelFro(all.Gamma, without.Gamma), 1e-10, "Γ after a further step");
    }

    [Fact]
    public void D4sRebuildingλCEqualsHoldingItThroughAddsRemovalsAndProbes()
    {
        var rng = new Random(83);
        int f = 40, d = 7;
        var c = Spd(rng, f);
        int builds = 0;
        var held = new D4sState(c, d) { ProbeInterval = 1 };
        var rebuilt = D4sState.Rebuilding(() => { builds++; return c.Clone(); }, f, d) ;
        rebuilt.ProbeInterval = 1;
        var steps = Enumerable.Range(0, 4).Select(_ => (K: Gaussian(rng, f, 2), R: Gaussian(rng, d, 2))).ToList();
        foreach (var (k, r) in steps) { held.Add(k, r); rebuilt.Add(k, r); }
        held.Remove(steps[1].K, steps[1].R); rebuilt.Remove(steps[1].K, steps[1].R);
        Assert.Equal(held.Gamma.Data, rebuilt.Gamma.Data);   // same λC values, same arithmetic: bit for bit
        Assert.Equal(held.LastProbe, rebuilt.LastProbe);
        Assert.True(builds >= 1 + 4 + 1, $"λC built {builds} times: once to factor, at each probe and for the refactorisation");
        Assert.Throws<InvalidOperationException>(() => D4sState.Rebuilding(() => new MatrixD(f + 1, f + 1), f, d));
    }

    [Fact]
    public void D4sFromSumsReproducesTheState()
    {
        var rng = new Random(79);
        int f = 33, d = 9;
        var c = Spd(rng, f);
        var a = new D4sState(c, d);
        for (int i = 0; i < 5; i++) a.Add(Gaussian(rng, f, 2), Gaussian(rng, d, 2));
        var b = D4sState.FromSums(c, a.SumKK, a.SumRK, a.KeyCount);
        AssertRel(RelFro(b.Gamma, a.Gamma), 1e-10, "Γ from sums");
        Assert.Equal(10, b.KeyCount);
    }

    [Fact]
    public void D4sProbeDetectsDriftAndReanchors()
    {
        var rng = new Random(80);
        int f = 29, d = 7;
        var c = Spd(rng, f);
        var s = new D4sState(c, d) { ProbeInterval = 1, ReanchorInterval = 0 };
        s.Add(Gaussian(rng, f, 1), Gaussian(rng, d, 1));
        int anchors = s.ReanchorCount;
        // corrupt Γ as accumulated rounding would: the next probe must catch it and re-anchor
        s.Gamma.Data[5] += 1e-3;
        Assert.True(s.DriftProbe() > 1e-8);
        var k = Gaussian(rng, f, 1); var r = Gaussian(rng, d, 1);
        s.Add(k, r);
        Assert.Equal(anchors + 1, s.ReanchorCount);
        Assert.True(s.DriftProbe() < 1e-12);
    }

    [Fact]
    public void D4sUsesLuWhenMIsIndefinite()
    {
        var rng = new Random(81);
        int f = 25, d = 6;
        var c = Spd(rng, f);
        c[2, 2] = -0.3;
        var s = new D4sState(c, d);
        Assert.True(s.UsesLuFallback);
        Assert.NotNull(s.FallbackReason);
        var k = Gaussian(rng, f, 2); var r = Gaussian(rng, d, 2);
        s.Add(k, r);
        AssertRel(RelFro(s.Delta(1), DenseMemit(c, k, r)), 1e-9, "LU path");
    }
}
