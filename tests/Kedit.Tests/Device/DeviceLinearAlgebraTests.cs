using Kedit.Backends;
using Kedit.Editing.LinearAlgebra;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// The device linear algebra against the host implementations (DenseOps, CholeskyFactor, SpectralNorm) on
/// seeded random inputs of several shapes, ragged (non-multiple-of-64) ones included. Where a kernel writes
/// into memory it does not read (the mirrored triangle of a Gram sum, the lower triangle of a factor),
/// that memory is poisoned with NaN first, so an unwritten or wrongly read element fails.
/// </summary>
public abstract class DeviceLinearAlgebraTests<TDevice> where TDevice : IDeviceFixture
{
    static DeviceLinearAlgebra Require() => new(TDevice.Require());

    static DeviceLinearAlgebra RequireFloat64()
    {
        var la = Require();
        Skip.IfNot(la.HasFloat64, $"the device has no float64: {la.Float64Failure}");
        return la;
    }


    static MatrixD RandomMatrix(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var m = new MatrixD(rows, cols);
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = rng.NextDouble() * 2 - 1;
        return m;
    }

    /// <summary>A well-conditioned SPD matrix XᵀX/m + I/2 (eigenvalues in [1/2, ~5]).</summary>
    static MatrixD Spd(int n, int seed)
    {
        var x = RandomMatrix(n + 7, n, seed);
        var a = MatrixD.Multiply(x, x, true, false);
        a.Scale(1.0 / (n + 7));
        for (int i = 0; i < n; i++) a[i, i] += 0.5;
        return a;
    }

    static double RelL2(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(double.IsNaN(actual[i]), $"element {i} is NaN (not written, or read from poisoned memory)");
            double e = actual[i] - expected[i];
            num += e * e; den += expected[i] * expected[i];
        }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    [SkippableTheory]
    [InlineData(1, 1, false)]
    [InlineData(7, 3, false)]
    [InlineData(130, 65, false)]
    [InlineData(64, 128, false)]
    [InlineData(200, 97, false)]
    [InlineData(7, 3, true)]
    [InlineData(130, 65, true)]
    [InlineData(200, 97, true)]
    public void CovarianceMatchesTheHostFloat64GramSum(int rows, int f, bool forceFloat32)
    {
        var la = Require();
        if (!forceFloat32) Skip.IfNot(la.HasFloat64, $"the device has no float64: {la.Float64Failure}");
        using var cov = la.CreateCovariance(f, forceFloat32);
        Assert.Equal(!forceFloat32, cov.UsesFloat64);
        // Two blocks, as Covariance.Add folds documents in one after another (the host path, in float64).
        var expected = new MatrixD(f, f);
        for (int block = 0; block < 2; block++)
        {
            int n = rows + block * 5;
            var keys = DeviceTestData.Random(n * f, 100 * rows + f + block);
            var km = MatrixD.FromSingle(n, f, keys);
            DenseOps.Gemm(true, false, 1.0, km, km, 1.0, expected);
            cov.Add(keys, n);
        }
        Assert.Equal(2L * rows + 5, cov.Count);
        var sum = cov.Sum();
        // Exact float products summed in float64 differ from the host only in summation order;
        // float32 blocks carry float32 rounding (relative ~1e-7 · √rows).
        Assert.True(RelL2(expected.Data, sum.Data) <= (forceFloat32 ? 2e-6 : 1e-13), $"rel {RelL2(expected.Data, sum.Data):E2}");
        for (int i = 0; i < f; i++)
            for (int j = 0; j < i; j++) Assert.Equal(sum[j, i], sum[i, j]);   // mirrored bit for bit
    }

    [SkippableFact]
    public void CovarianceWritesTheMirroredTriangleOverPoisonAndAddsToTheUpperOne()
    {
        var la = RequireFloat64();
        int f = 70, n = 33;
        var be = la.Backend;
        // The float64 kernel directly: start the sum from a known upper triangle and a NaN lower triangle.
        var start = Spd(f, 3);
        for (int i = 0; i < f; i++) for (int j = 0; j < i; j++) start[i, j] = double.NaN;
        var keys = DeviceTestData.Random(n * f, 4);
        using var sum = la.UploadDoubles(start.Data);
        using var dk = be.Allocate(n, f);
        be.Upload(keys, dk);
        la.LaunchGemm("syrk_f32_f64", f, f, n, be.Dev(dk).Buffer, 0, f, be.Dev(dk).Buffer, 0, f, sum, 0, f, 1f, 1f, 2);
        var got = new MatrixD(f, f);
        la.DownloadDoubles(sum, got.Data);
        var km = MatrixD.FromSingle(n, f, keys);
        var expected = Spd(f, 3);
        DenseOps.Gemm(true, false, 1.0, km, km, 1.0, expected);
        for (int i = 0; i < f; i++) for (int j = 0; j < i; j++) expected[i, j] = expected[j, i];
        Assert.True(RelL2(expected.Data, got.Data) <= 1e-13);
    }

    [SkippableTheory]
    [InlineData(1, 1, 1, false)]
    [InlineData(37, 70, 1, false)]
    [InlineData(37, 70, 1, true)]
    [InlineData(96, 130, 10, false)]
    [InlineData(96, 130, 10, true)]
    [InlineData(65, 3, 4, true)]
    public void RankKUpdateMatchesTheHostDeltaInBothStoredLayouts(int d, int f, int r, bool inputMajor)
    {
        var la = Require();
        var u = RandomMatrix(d, r, d + f + r); var v = RandomMatrix(f, r, 3 * d + f);
        var w0 = DeviceTestData.Random(d * f, 9);
        // Host: ΔW = U Vᵀ in float64, added to the stored weight as EditedLayer.AddDelta does.
        var delta = MatrixD.Multiply(u, v, false, true);
        var expected = (float[])w0.Clone();
        for (int i = 0; i < d; i++)
            for (int j = 0; j < f; j++) expected[inputMajor ? j * d + i : i * f + j] += (float)delta[i, j];
        var got = (float[])w0.Clone();
        la.RankKUpdate(got, inputMajor, u, v);
        double num = 0, den = 0;
        for (int i = 0; i < got.Length; i++)
        {
            Assert.False(float.IsNaN(got[i]));
            num += Math.Pow(got[i] - expected[i], 2); den += (double)expected[i] * expected[i];
        }
        Assert.True(Math.Sqrt(num / den) <= 1e-6, $"rel {Math.Sqrt(num / den):E2}");
    }

    [SkippableFact]
    public void RankKUpdateRejectsAMismatchedWeight()
    {
        var la = Require();
        Assert.Throws<ArgumentException>(() => la.RankKUpdate(new float[10], false, RandomMatrix(3, 2, 1), RandomMatrix(4, 2, 2)));
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(150)]
    [InlineData(200)]
    public void CholeskyMatchesTheHostFactorWithThePoisonedLowerTriangleNeverRead(int n)
    {
        var la = RequireFloat64();
        var a = Spd(n, n);
        var expected = CholeskyFactor.Factor(a).Upper();
        var poisoned = a.Clone();
        for (int i = 0; i < n; i++) for (int j = 0; j < i; j++) poisoned[i, j] = double.NaN;
        using var f = la.Factor(poisoned);
        var r = f.Upper();
        Assert.True(RelL2(expected.Data, r.Data) <= 1e-13, $"rel {RelL2(expected.Data, r.Data):E2}");
        Assert.Equal(CholeskyFactor.Factor(a).LogDeterminant(), f.LogDeterminant(), 9);
    }

    [SkippableTheory]
    [InlineData(1, 1)]
    [InlineData(70, 1)]
    [InlineData(130, 10)]
    [InlineData(200, 67)]
    public void SolvesMatchTheHostFactorsSolves(int n, int k)
    {
        var la = RequireFloat64();
        var a = Spd(n, 2 * n + k);
        var host = CholeskyFactor.Factor(a);
        using var dev = la.Factor(a);
        var rows = RandomMatrix(k, n, k);
        var expectedRows = rows.Clone(); host.SolveRowsInPlace(expectedRows);
        var gotRows = rows.Clone(); dev.SolveRowsInPlace(gotRows);
        Assert.True(RelL2(expectedRows.Data, gotRows.Data) <= 1e-12, $"rows rel {RelL2(expectedRows.Data, gotRows.Data):E2}");
        var cols = RandomMatrix(n, k, k + 1);
        var expectedCols = host.Solve(cols);
        var gotCols = dev.Solve(cols);
        Assert.True(RelL2(expectedCols.Data, gotCols.Data) <= 1e-12);
        // And an independent check: M·X reproduces the right-hand sides.
        var back = MatrixD.Multiply(a, gotCols);
        Assert.True(RelL2(cols.Data, back.Data) <= 1e-12);
    }

    [SkippableTheory]
    [InlineData(3)]
    [InlineData(70)]
    [InlineData(129)]
    public void CholeskyReportsTheSameFailingPivotAsTheHost(int n)
    {
        var la = RequireFloat64();
        var a = Spd(n, 5);
        int bad = n * 2 / 3;
        a[bad, bad] = -1.0;   // the Schur complement at this pivot is negative; earlier pivots are fine
        Assert.False(CholeskyFactor.TryFactor(a, out _, out int hostPivot, out double hostValue));
        Assert.False(la.TryFactor(a, out var f, out int pivot, out double value));
        Assert.Null(f);
        Assert.Equal(hostPivot, pivot);
        Assert.Equal(hostValue, value, 10);
        var e = Assert.Throws<NotPositiveDefiniteException>(() => la.Factor(a, "λ·C of layer 3"));
        Assert.Contains("λ·C of layer 3", e.Message);
        Assert.Equal(hostPivot, e.PivotIndex);
    }

    [SkippableTheory]
    [InlineData(1, 1)]
    [InlineData(1, 37)]
    [InlineData(37, 1)]
    [InlineData(65, 130)]
    [InlineData(200, 97)]
    public void PowerIterationMatchesTheSigmaMaxOfAnSvd(int rows, int cols)
    {
        var la = Require();
        // Noise plus a planted top component (σ well above the noise's), as in a trained weight's spectrum head.
        var rng = new Random(rows * 31 + cols);
        var a = new double[rows]; var b = new double[cols];
        for (int i = 0; i < rows; i++) a[i] = rng.NextDouble() - 0.5;
        for (int j = 0; j < cols; j++) b[j] = rng.NextDouble() - 0.5;
        double na = Math.Sqrt(a.Sum(x => x * x)), nb = Math.Sqrt(b.Sum(x => x * x));
        var w = new float[rows * cols];
        double noise = 1.0 / Math.Sqrt(Math.Max(rows, cols));
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                w[i * cols + j] = (float)(4 * a[i] / na * b[j] / nb + noise * (rng.NextDouble() - 0.5));
        // Reference: MathNet's SVD, and the host Lanczos where it certifies convergence (it caps its steps at
        // min(rows, cols), so on a single-row matrix it stops after one step, unconverged).
        double expected = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(rows, cols, (i, j) => w[i * cols + j]).L2Norm();
        var host = SpectralNorm.Largest(MatrixD.FromSingle(rows, cols, w));
        if (host.Converged) Assert.True(Math.Abs(host.Value - expected) <= 1e-10 * expected);
        var got = la.SpectralNorm(w, rows, cols);
        Assert.True(got.Converged, $"power iteration did not converge in {got.Steps} steps");
        Assert.True(Math.Abs(got.Value - expected) <= 1e-5 * expected, $"σ {got.Value:R} vs {expected:R}");
        // The stored layout does not matter: σ_max(Wᵀ) = σ_max(W).
        var wt = new float[w.Length];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) wt[j * rows + i] = w[i * cols + j];
        Assert.True(Math.Abs(la.SpectralNorm(wt, cols, rows).Value - expected) <= 1e-5 * expected);
    }

    [SkippableTheory]
    [InlineData(37, 1)]
    [InlineData(65, 130)]
    [InlineData(200, 97)]
    public void LanczosWithDeviceProductsMatchesTheSigmaMaxOfAnSvdOnAFlatSpectrum(int rows, int cols)
    {
        var la = Require();
        // Plain noise: σ₁ and σ₂ are close, where power iteration would need hundreds of steps.
        var w = DeviceTestData.Random(rows * cols, rows + 7 * cols);
        double expected = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(rows, cols, (i, j) => w[i * cols + j]).L2Norm();
        using var dw = la.Backend.Allocate(rows, cols);
        la.Backend.Upload(w, dw);
        var got = la.SpectralNormLanczos(dw);
        Assert.True(got.Converged, $"Lanczos did not converge in {got.Steps} steps");
        Assert.True(Math.Abs(got.Value - expected) <= 1e-5 * expected, $"σ {got.Value:R} vs {expected:R}");
    }

    [SkippableFact]
    public void PowerIterationOfAZeroMatrixIsZero()
    {
        var la = Require();
        var r = la.SpectralNorm(new float[12], 3, 4);
        Assert.Equal(0, r.Value);
        Assert.True(r.Converged);
    }
}

public sealed class DeviceLinearAlgebraTestsOnIlgpuCpu : DeviceLinearAlgebraTests<IlgpuCpuDevice> { }
public sealed class DeviceLinearAlgebraTestsOnCuda : DeviceLinearAlgebraTests<IlgpuCudaDevice> { }
