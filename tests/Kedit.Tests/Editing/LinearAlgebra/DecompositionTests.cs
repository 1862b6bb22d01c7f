using Kedit.Editing.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

public class DecompositionTests
{
    [Theory]
    [InlineData(37, 3)]
    [InlineData(300, 40)]
    [InlineData(5, 9)]      // wide: p = 5, R trapezoidal
    [InlineData(13, 13)]
    public void ThinQrIsOrthonormalAndReproducesA(int m, int n)
    {
        var rng = new Random(m * 17 + n);
        var a = Gaussian(rng, m, n);
        var qr = ThinQr.Compute(a);
        int p = Math.Min(m, n);
        Assert.Equal((m, p), (qr.Q.Rows, qr.Q.Cols));
        Assert.Equal((p, n), (qr.R.Rows, qr.R.Cols));
        AssertRel(RelFro(MatrixD.Multiply(qr.Q, qr.R), a), 1e-14, "QR = A");
        var qtq = MatrixD.Multiply(qr.Q, qr.Q, true, false);
        AssertRel(RelFro(qtq, MatrixD.Identity(p)), 1e-14, "QᵀQ = I");
        for (int i = 0; i < p; i++)
            for (int j = 0; j < Math.Min(i, n); j++) Assert.Equal(0.0, qr.R[i, j]);
    }

    [Fact]
    public void ThinQrHandlesRankDeficientColumns()
    {
        var rng = new Random(4);
        var a = Gaussian(rng, 20, 4);
        for (int i = 0; i < 20; i++) { a[i, 2] = 0; a[i, 3] = 2 * a[i, 0]; }
        var qr = ThinQr.Compute(a);
        AssertRel(RelFro(MatrixD.Multiply(qr.Q, qr.R), a), 1e-14, "QR = A");
    }

    [Theory]
    [InlineData(37, 13)]
    [InlineData(13, 37)]
    [InlineData(60, 60)]
    [InlineData(1, 7)]
    public void JacobiSvdMatchesMathNet(int m, int n)
    {
        var rng = new Random(m * 5 + n);
        var a = Gaussian(rng, m, n);
        var svd = ThinSvd.Compute(a);
        var reference = ToMathNet(a).Svd(computeVectors: false).S.ToArray();
        int p = Math.Min(m, n);
        Assert.Equal(p, svd.S.Length);
        for (int i = 0; i < p; i++)
            Assert.True(Math.Abs(svd.S[i] - reference[i]) <= 1e-12 * reference[0], $"σ_{i}: {svd.S[i]} vs {reference[i]}");
        // U diag(S) Vᵀ = A, orthonormal factors
        var us = svd.U.Clone();
        for (int r = 0; r < us.Rows; r++) for (int c = 0; c < p; c++) us[r, c] *= svd.S[c];
        AssertRel(RelFro(MatrixD.Multiply(us, svd.V, false, true), a), 1e-13, "U S Vᵀ = A");
        AssertRel(RelFro(MatrixD.Multiply(svd.U, svd.U, true, false), MatrixD.Identity(p)), 1e-13, "UᵀU");
        AssertRel(RelFro(MatrixD.Multiply(svd.V, svd.V, true, false), MatrixD.Identity(p)), 1e-13, "VᵀV");
    }

    [Fact]
    public void JacobiSvdKeepsSmallSingularValuesRelativelyAccurate()
    {
        // graded matrix: singular values 1 … 1e-12 exactly, via random orthogonal factors
        var rng = new Random(9);
        int n = 8;
        var q1 = ThinQr.Compute(Gaussian(rng, 20, n)).Q;
        var q2 = ThinQr.Compute(Gaussian(rng, n, n)).Q;
        var s = Enumerable.Range(0, n).Select(i => Math.Pow(10, -12.0 * i / (n - 1))).ToArray();
        var us = q1.Clone();
        for (int r = 0; r < us.Rows; r++) for (int c = 0; c < n; c++) us[r, c] *= s[c];
        var a = MatrixD.Multiply(us, q2, false, true);
        var svd = ThinSvd.Compute(a);
        for (int i = 0; i < n; i++)
            Assert.True(Math.Abs(svd.S[i] - s[i]) <= 1e-3 * s[i] + 1e-15, $"σ_{i}: {svd.S[i]:E6} vs {s[i]:E6}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    [InlineData(300)]
    public void SymmetricEigenvaluesMatchMathNet(int n)
    {
        var rng = new Random(n + 100);
        var g = Gaussian(rng, n, n);
        var a = MatrixD.Add(g, g.Transpose());
        var ev = SymmetricEigen.Eigenvalues(a);
        var reference = ToMathNet(a).Evd(Symmetricity.Symmetric).EigenValues.Select(c => c.Real).OrderBy(x => x).ToArray();
        double scale = reference.Max(Math.Abs);
        for (int i = 0; i < n; i++)
            Assert.True(Math.Abs(ev[i] - reference[i]) <= 1e-12 * scale, $"λ_{i}: {ev[i]} vs {reference[i]}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    [InlineData(172)]
    [InlineData(300)]   // large enough for the column-sliced parallel passes
    public void SymmetricEigenvectorsReconstructTheMatrix(int n)
    {
        var rng = new Random(n + 7);
        var a = Spd(rng, n, decades: 3);
        var (values, vectors) = SymmetricEigen.Decompose(a);
        // Same spectrum as MathNet, ascending; V orthonormal; A V = V Λ column by column.
        var reference = ToMathNet(a).Evd(Symmetricity.Symmetric).EigenValues.Select(c => c.Real).OrderBy(x => x).ToArray();
        double scale = reference.Max(Math.Abs);
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(values[i] - reference[i]) <= 1e-12 * scale, $"λ_{i}: {values[i]} vs {reference[i]}");
        var v = ToMathNet(vectors);
        Assert.True((v.TransposeThisAndMultiply(v) - Matrix<double>.Build.DenseIdentity(n)).FrobeniusNorm() < 1e-12 * n, "VᵀV = I");
        var residual = ToMathNet(a) * v - v * Matrix<double>.Build.DenseOfDiagonalArray(values);
        Assert.True(residual.FrobeniusNorm() <= 1e-12 * scale * n, $"‖AV − VΛ‖ = {residual.FrobeniusNorm():E3}");
    }

    [Fact]
    public void SymmetricEigenvaluesOfDiagonalAndRepeated()
    {
        var a = MatrixD.Identity(5);
        a[0, 0] = 3; a[4, 4] = -2;
        Assert.Equal(new[] { -2.0, 1, 1, 1, 3 }, SymmetricEigen.Eigenvalues(a));
    }

    [Theory]
    [InlineData(100, 300)]
    [InlineData(64, 172)]
    [InlineData(40, 25)]
    [InlineData(1, 37)]   // thin shapes: the Krylov space fills the smaller side, the next step is exact
    [InlineData(37, 1)]
    [InlineData(2, 9)]
    public void LanczosSigmaMaxMatchesMathNet(int rows, int cols)
    {
        var rng = new Random(rows * cols);
        var w = Gaussian(rng, rows, cols, 0.05);
        var reference = ToMathNet(w).Svd(computeVectors: false).S[0];
        var res = SpectralNorm.Largest(w);
        Assert.True(res.Converged);
        Assert.True(Math.Abs(res.Value - reference) <= 1e-10 * reference, $"{res.Value} vs {reference} after {res.Steps} steps");
    }

    [Fact]
    public void LanczosSeparatesCloseTopSingularValues()
    {
        // σ_1 = 1, σ_2 = 1 − 1e-6: power iteration would need ~1e7 steps; Lanczos must still be exact
        var rng = new Random(31);
        int d = 50, f = 120;
        var q1 = ThinQr.Compute(Gaussian(rng, d, d)).Q;
        var q2 = ThinQr.Compute(Gaussian(rng, f, d)).Q;
        var s = Enumerable.Range(0, d).Select(i => i == 0 ? 1.0 : i == 1 ? 1 - 1e-6 : 0.9 * rng.NextDouble()).ToArray();
        var us = q1.Clone();
        for (int r = 0; r < d; r++) for (int c = 0; c < d; c++) us[r, c] *= s[c];
        var w = MatrixD.Multiply(us, q2, false, true);
        // products given only as delegates over float32 storage, as the engine uses it
        var w32 = w.Data.Select(v => (float)v).ToArray();
        var w32d = MatrixD.FromSingle(d, f, w32);
        var res = SpectralNorm.Largest(d, f,
            (x, y) => { for (int i = 0; i < d; i++) { double acc = 0; for (int j = 0; j < f; j++) acc += w32[i * f + j] * x[j]; y[i] = acc; } },
            (x, y) => { y.Clear(); for (int i = 0; i < d; i++) for (int j = 0; j < f; j++) y[j] += w32[i * f + j] * x[i]; });
        var reference = ToMathNet(w32d).Svd(computeVectors: false).S[0];
        Assert.True(Math.Abs(res.Value - reference) <= 1e-10 * reference, $"{res.Value} vs {reference}");
    }

    [Fact]
    public void LanczosOfZeroMatrixIsZero()
        => Assert.Equal(0.0, SpectralNorm.Largest(new MatrixD(4, 6)).Value);

    [Fact]
    public void ConditionNumberOfLowRankUpdateMatchesDenseSvd()
    {
        var rng = new Random(55);
        int d = 13, f = 37, m = 3;
        var w0 = Gaussian(rng, d, f);
        var x = Gaussian(rng, d, m, 2.0); var y = Gaussian(rng, f, m);
        var cn = new ConditionNumber(w0);
        var dense = ToMathNet(w0) + ToMathNet(x) * ToMathNet(y).Transpose();
        var s = dense.Svd(computeVectors: false).S;
        var res = cn.Compute(x, y);
        Assert.True(Math.Abs(res.SigmaMax - s[0]) <= 1e-12 * s[0], $"σ_max {res.SigmaMax} vs {s[0]}");
        Assert.True(Math.Abs(res.SigmaMin - s[d - 1]) <= 1e-9 * s[d - 1], $"σ_min {res.SigmaMin} vs {s[d - 1]}");
        Assert.True(Math.Abs(res.Kappa - s[0] / s[d - 1]) <= 1e-9 * res.Kappa);
        // W0 alone, and the delegate-based constructor gives the same numbers
        var s0 = ToMathNet(w0).Svd(computeVectors: false).S;
        Assert.True(Math.Abs(cn.Compute().Kappa - s0[0] / s0[d - 1]) <= 1e-9 * s0[0] / s0[d - 1]);
        var cn2 = new ConditionNumber(cn.Gram0, f, (v, o) => DenseOps.MatVec(w0, v, o));
        Assert.Equal(res.Kappa, cn2.Compute(x, y).Kappa, 10);
    }

    [Fact]
    public void ConditionNumberRejectsTallMatricesAndMismatchedFactors()
    {
        Assert.Throws<ArgumentException>(() => new ConditionNumber(new MatrixD(5, 3)));
        var cn = new ConditionNumber(MatrixD.Identity(3));
        Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(3, 2), new MatrixD(3, 1)));
        Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(3, 2), null));
    }

    [Fact]
    public void ConditionNumberOfBiggerCase()
    {
        var rng = new Random(56);
        int d = 60, f = 300, m = 9;
        var w0 = Gaussian(rng, d, f, 0.1);
        var x = Gaussian(rng, d, m); var y = Gaussian(rng, f, m, 0.3);
        var res = new ConditionNumber(w0).Compute(x, y);
        var s = (ToMathNet(w0) + ToMathNet(x) * ToMathNet(y).Transpose()).Svd(computeVectors: false).S;
        Assert.True(Math.Abs(res.Kappa - s[0] / s[d - 1]) <= 1e-9 * res.Kappa, $"κ {res.Kappa} vs {s[0] / s[d - 1]}");
    }

    [Theory]
    [InlineData(7, 0)]
    [InlineData(7, 1)]
    [InlineData(7, 3)]
    public void SpectralNormOfAProductMatchesTheDenseSvd(int rows, int m)
    {
        var rng = new Random(70 + m);
        var x = Gaussian(rng, rows, m); var y = Gaussian(rng, 11, m);
        double expected = m == 0 ? 0 : (ToMathNet(x) * ToMathNet(y).Transpose()).Svd(computeVectors: false).S[0];
        Assert.Equal(expected, SpectralNorm.OfProduct(x, y), 1e-12 * Math.Max(expected, 1));
    }

    [Fact]
    public void LanczosStopsWhereTheKrylovSpaceIsInvariantOrAtItsStepCap()
    {
        // Rank one, W = 3 u vᵀ: u₁ = ±u spans the whole range, so the second left vector vanishes (α₂ = 0) and the
        // invariant-subspace exit returns σ = 3 after two steps.
        var u = new MatrixD(5, 1, new double[] { 1, 2, 2, 0, 0 }); u.Scale(1.0 / 3);
        var v = new MatrixD(4, 1, new double[] { 0, 0.6, 0, 0.8 });
        var w = MatrixD.Multiply(u, v, false, true); w.Scale(3);
        var one = SpectralNorm.Largest(w);
        Assert.Equal((2, true), (one.Steps, one.Converged));
        Assert.Equal(3.0, one.Value, 1e-14);
        // One row: likewise, the second left vector has nowhere to go.
        var row = Gaussian(new Random(8), 1, 37);
        var r = SpectralNorm.Largest(row);
        Assert.Equal((2, true), (r.Steps, r.Converged));
        Assert.Equal(row.FrobeniusNorm(), r.Value, 1e-14 * row.FrobeniusNorm());
        // One column: the second right vector vanishes (β₁ = 0) after one step.
        var col = Gaussian(new Random(9), 37, 1);
        var c = SpectralNorm.Largest(col);
        Assert.Equal((1, true), (c.Steps, c.Converged));
        Assert.Equal(col.FrobeniusNorm(), c.Value, 1e-14 * col.FrobeniusNorm());
        // A step cap that is too small: not converged, a lower bound, and exactly maxSteps products.
        var g = Gaussian(new Random(10), 40, 60);
        var sigma = ToMathNet(g).Svd(computeVectors: false).S[0];
        var capped = SpectralNorm.Largest(g, maxSteps: 3);
        Assert.Equal((3, false), (capped.Steps, capped.Converged));
        Assert.InRange(capped.Value, 0.5 * sigma, sigma * (1 + 1e-12));
        // Empty shapes and the zero matrix: σ = 0, certified, with no (or one) product.
        Assert.Equal(new SpectralNormResult(0, 0, true), SpectralNorm.Largest(new MatrixD(0, 3)));
        Assert.Equal(new SpectralNormResult(0, 0, true), SpectralNorm.Largest(new MatrixD(3, 0)));
        Assert.Equal(new SpectralNormResult(0, 1, true), SpectralNorm.Largest(new MatrixD(4, 6)));
        Assert.Throws<ArgumentNullException>(() => SpectralNorm.Largest((MatrixD)null!));
        Assert.Throws<ArgumentNullException>(() => SpectralNorm.Largest(2, 2, null!, (_, _) => { }));
        Assert.Throws<ArgumentNullException>(() => SpectralNorm.Largest(2, 2, (_, _) => { }, null!));
    }

    [Fact]
    public void LanczosReachesTheToleranceItIsGiven()
    {
        // A loose tolerance stops earlier than the default one, and both stay within their own bound of σ.
        var g = Gaussian(new Random(12), 60, 80);
        var sigma = ToMathNet(g).Svd(computeVectors: false).S[0];
        var loose = SpectralNorm.Largest(g, relativeTolerance: 1e-3);
        var tight = SpectralNorm.Largest(g);
        Assert.True(loose.Converged && tight.Converged);
        Assert.True(loose.Steps < tight.Steps, $"loose {loose.Steps} steps, tight {tight.Steps}");
        Assert.InRange(loose.Value, sigma * (1 - 1e-3), sigma * (1 + 1e-12));
        Assert.Equal(sigma, tight.Value, 1e-10 * sigma);
    }

    [Fact]
    public void ConditionNumberFromGramCountsNegativeRoundingAsZero()
    {
        var r = ConditionNumber.FromGram(new MatrixD(2, 2, new double[] { 4, 0, 0, 1 }));
        Assert.Equal(new ConditionResult(2, 1, 2), r);
        var singular = ConditionNumber.FromGram(new MatrixD(2, 2, new double[] { 4, 0, 0, -1e-18 }));
        Assert.Equal(new ConditionResult(2, 0, double.PositiveInfinity), singular);
        Assert.Equal(new ConditionResult(0, 0, double.PositiveInfinity), ConditionNumber.FromGram(new MatrixD(2, 2)));
        var empty = ConditionNumber.FromGram(new MatrixD(0, 0));
        Assert.Equal((0.0, 0.0), (empty.SigmaMax, empty.SigmaMin));
        Assert.True(double.IsNaN(empty.Kappa));
    }

    [Fact]
    public void ConditionNumberNamesEachRefusal()
    {
        var cn = new ConditionNumber(MatrixD.Identity(3));
        Assert.Equal((3, 3), (cn.OutputDim, cn.KeyDim));
        Assert.StartsWith("W0 must be wide (d ≤ f) in math orientation, got 5×3", Assert.Throws<ArgumentException>(() => new ConditionNumber(new MatrixD(5, 3))).Message);
        Assert.StartsWith("G0 must be square, got 2×3", Assert.Throws<ArgumentException>(() => new ConditionNumber(new MatrixD(2, 3), 4, (_, _) => { })).Message);
        Assert.StartsWith("W0 must be wide (d ≤ f): d = 3, f = 2", Assert.Throws<ArgumentException>(() => new ConditionNumber(MatrixD.Identity(3), 2, (_, _) => { })).Message);
        var fromGram = new ConditionNumber(MatrixD.Identity(3), 3, (_, _) => { });
        Assert.Equal((3, 3), (fromGram.OutputDim, fromGram.KeyDim));
        Assert.Throws<ArgumentNullException>(() => new ConditionNumber(null!));
        Assert.Throws<ArgumentNullException>(() => new ConditionNumber(null!, 3, (_, _) => { }));
        Assert.Throws<ArgumentNullException>(() => new ConditionNumber(MatrixD.Identity(3), 3, null!));
        Assert.StartsWith("give both factors X and Y, or neither", Assert.Throws<ArgumentException>(() => cn.Compute(null, new MatrixD(3, 1))).Message);
        Assert.StartsWith("give both factors X and Y, or neither", Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(3, 1), null)).Message);
        Assert.StartsWith("X must have 3 rows (d), got 2×1", Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(2, 1), new MatrixD(3, 1))).Message);
        Assert.StartsWith("Y must have 3 rows (f), got 4×1", Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(3, 1), new MatrixD(4, 1))).Message);
        Assert.StartsWith("X and Y need the same number of columns, got 2 and 1", Assert.Throws<ArgumentException>(() => cn.Compute(new MatrixD(3, 2), new MatrixD(3, 1))).Message);
        // κ(I + x yᵀ) with x = y = e₀: diag(2, 1, 1), κ = 2 exactly.
        var e0 = new MatrixD(3, 1, new double[] { 1, 0, 0 });
        Assert.Equal(new ConditionResult(2, 1, 2), cn.Compute(e0, e0));
    }

    [Fact]
    public void LanczosIsScaleInvariant()
    {
        // W and 2^±30·W: every vector is the same to the bit and every α, β scales exactly, so the stopping tests (relative
        // to θ) must stop at the same step with the same verdict, and σ must scale. Full rank with the default and a loose
        // tolerance; rank 3 with tolerance 0 (only the invariant-subspace tests can stop it); rank 1.
        var rng = new Random(15);
        var full = Gaussian(rng, 60, 80);
        var rank3 = MatrixD.Multiply(Gaussian(rng, 40, 3), Gaussian(rng, 30, 3), false, true);
        var rank1 = MatrixD.Multiply(Gaussian(rng, 5, 1), Gaussian(rng, 4, 1), false, true);
        foreach (var (w, tol) in new[] { (full, 1e-10), (full, 1e-3), (rank3, 0.0), (rank1, 1e-10) })
        {
            var sigma = ToMathNet(w).Svd(computeVectors: false).S[0];
            var one = SpectralNorm.Largest(w, relativeTolerance: tol);
            Assert.True(one.Converged);
            Assert.InRange(one.Value, sigma * (1 - Math.Max(tol, 1e-10)), sigma * (1 + 1e-12));
            foreach (var scale in new[] { Math.Pow(2, -30), Math.Pow(2, 30) })
            {
                var ws = w.Clone(); ws.Scale(scale);
                var r = SpectralNorm.Largest(ws, relativeTolerance: tol);
                Assert.Equal((one.Steps, one.Converged), (r.Steps, r.Converged));
                Assert.Equal(scale * one.Value, r.Value, 1e-13 * scale * one.Value);
            }
        }
    }
}
