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
}
