using Kedit.Backends;
using Kedit.Editing;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// The seam that puts an edit's factorisations and σ_max on the host or the device (<see cref="LinearAlgebraPlacement"/>),
/// the MEMIT solver and EditContext through it: thresholds decide, and the device results are the host's.
/// One subclass per device, as the other device tests.
/// </summary>
public abstract class LinearAlgebraPlacementTests<TDevice> where TDevice : IDeviceFixture
{
    static MatrixD Random(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var m = new MatrixD(rows, cols);
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = rng.NextDouble() * 2 - 1;
        return m;
    }

    static MatrixD Spd(int n, int seed)
    {
        var x = Random(n + 5, n, seed);
        var a = MatrixD.Multiply(x, x, true, false);
        for (int i = 0; i < n; i++) a[i, i] += 0.5;
        return a;
    }

    static double RelDiff(MatrixD expected, MatrixD actual)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Data.Length; i++) { double e = actual.Data[i] - expected.Data[i]; num += e * e; den += expected.Data[i] * expected.Data[i]; }
        return Math.Sqrt(num / den);
    }

    static DeviceBackend RequireFloat64(DeviceBackend be)
    {
        Skip.IfNot(new DeviceLinearAlgebra(be).HasFloat64, $"{be.DeviceName} has no float64");
        return be;
    }

    [SkippableFact]
    public void FactorsAtOrAboveTheThresholdOnTheDeviceWithTheHostsSolutionsAndPivots()
    {
        var p = LinearAlgebraPlacement.For(RequireFloat64(TDevice.Require()), minFactorOrder: 100);
        Assert.False(p.FactorsOnDevice(99));
        Assert.True(p.FactorsOnDevice(100));
        Assert.IsType<CholeskyFactor>(p.Factor(Spd(99, 2)));

        var a = Spd(130, 3);
        var f = p.Factor(a);
        Assert.IsType<DeviceCholesky>(f);
        var host = CholeskyFactor.Factor(a);
        var rows = Random(5, 130, 4);
        var expected = rows.Clone(); host.SolveRowsInPlace(expected);
        f.SolveRowsInPlace(rows);
        Assert.True(RelDiff(expected, rows) < 1e-10, $"device solve differs by {RelDiff(expected, rows):E2}");
        Assert.Equal(host.LogDeterminant(), f.LogDeterminant(), 8);

        // Not positive definite: the same first failing pivot as the host reports.
        var bad = a.Clone(); bad[70, 70] = -1;
        Assert.False(CholeskyFactor.TryFactor(bad, out _, out int hostPivot, out _));
        Assert.False(p.TryFactor(bad, out var none, out int devPivot, out _));
        Assert.Null(none);
        Assert.Equal(hostPivot, devPivot);
    }

    [SkippableFact]
    public void AHostFactorFromTheDeviceTakesRankOneUpdatesLikeTheHostsOwn()
    {
        var p = LinearAlgebraPlacement.For(RequireFloat64(TDevice.Require()), minFactorOrder: 0);
        var a = Spd(97, 5);
        Assert.True(p.TryFactorToHost(a, out var fromDevice, out _, out _));
        var host = CholeskyFactor.Factor(a);
        Assert.True(RelDiff(host.Upper(), fromDevice!.Upper()) < 1e-12);
        var x = Random(3, 97, 6);
        host.RankOneUpdates(x); fromDevice.RankOneUpdates(x);
        Assert.True(RelDiff(host.Upper(), fromDevice.Upper()) < 1e-12);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void SigmaMaxOfAStoredWeightInEitherLayoutMatchesTheHost(bool inputMajor)
    {
        int d = 70, f = 150;
        var w = Random(d, f, 7);
        var stored = new float[d * f];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < f; j++) stored[inputMajor ? j * d + i : i * f + j] = (float)w[i, j];
        var math = new MatrixD(d, f);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < f; j++) math[i, j] = stored[inputMajor ? j * d + i : i * f + j];
        double expected = SpectralNorm.Largest(math).Value;
        // The host path is the float64 iteration on the math-orientation matrix, bit for bit.
        Assert.Equal(expected, LinearAlgebraPlacement.Host.SpectralNorm(stored, d, f, inputMajor).Value);

        var p = LinearAlgebraPlacement.For(TDevice.Require(), minSpectralElements: d * f);
        Assert.True(p.SpectralNormOnDevice(d, f));
        Assert.False(p.SpectralNormOnDevice(d, f - 1));
        double device = p.SpectralNorm(stored, d, f, inputMajor).Value;
        Assert.True(Math.Abs(device - expected) <= 1e-5 * expected, $"device σ_max {device:R}, host {expected:R}");
    }

    [SkippableFact]
    public void MemitSolverThroughTheDeviceMatchesTheHostSolver()
    {
        var p = LinearAlgebraPlacement.For(RequireFloat64(TDevice.Require()), minFactorOrder: 0);
        var lambdaC = Spd(120, 8);
        var keys = Random(120, 4, 9);
        var device = new MemitSolver(lambdaC, "λ·C", p.TryFactor);
        Assert.True(device.FactorOnDevice);
        Assert.Null(device.Factor);                 // no host factor to share
        Assert.NotNull(device.SpdFactor);
        var host = new MemitSolver(lambdaC);
        Assert.False(host.FactorOnDevice);
        double diff = RelDiff(host.SolveKeysTransposed(keys), device.SolveKeysTransposed(keys));
        Assert.True(diff < 1e-10, $"device MEMIT solve differs by {diff:E2}");
    }

    [SkippableFact]
    public void EditContextUsesTheModelsDeviceAboveTheDefaultThresholdAndRefactorsWhenThePlacementChanges()
    {
        var be = RequireFloat64(TDevice.RequireFresh());
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"), be);
        // The statistics come from the CPU model: this test is about placement (device covariance is DeviceEditTests').
        using var cpu = Transformer.Load(TestPaths.Fixture("gpt2"));
        var stats = new Covariance(new[] { 1 }, model.Config.Intermediate);
        stats.Accumulate(cpu, TextCorpus.Documents(Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", "corpus.jsonl"), cpu.Tokenizer));
        var ctx = new EditContext(model, new[] { 1 }, stats, 100, new ZSettings(1, 0, 0, 0, 0));
        // By default a device that is the host CPU (ILGPU's CPU accelerator) leaves the linear algebra on the host; a real
        // accelerator gets it above the thresholds.
        if (be.IsHostCpu) Assert.Same(LinearAlgebraPlacement.Host, ctx.Placement);
        else Assert.Same(be, ctx.Placement.Device!.Backend);
        ctx.Placement = LinearAlgebraPlacement.For(be);
        Assert.Same(be, ctx.Placement.Device!.Backend);
        // The fixture's d_ff = 256 is below the default order: factored on the host.
        Assert.True(model.Config.Intermediate < LinearAlgebraPlacement.DefaultMinDeviceFactorOrder);
        var hostSolver = ctx.MemitSolver(1);
        Assert.False(hostSolver.FactorOnDevice);
        Assert.Same(hostSolver, ctx.MemitSolver(1));   // cached

        ctx.Placement = LinearAlgebraPlacement.For(be, minFactorOrder: 0, minSpectralElements: 0);
        var deviceSolver = ctx.MemitSolver(1);
        Assert.True(deviceSolver.FactorOnDevice);
        Assert.IsType<DeviceCholesky>(ctx.CovarianceFactor(1));
        var keys = Random(model.Config.Intermediate, 3, 10);
        double diff = RelDiff(hostSolver.SolveKeysTransposed(keys), deviceSolver.SolveKeysTransposed(keys));
        Assert.True(diff < 1e-9, $"device λC solve differs by {diff:E2}");
    }
}

/// <summary>The CPU backend's placement, which needs no device.</summary>
public class LinearAlgebraPlacementOnTheCpuTests
{
    [Fact]
    public void TheCpuBackendKeepsEverythingOnTheHost()
    {
        var p = LinearAlgebraPlacement.For(CpuBackend.Instance, minFactorOrder: 0, minSpectralElements: 0);
        Assert.Null(p.Device);
        Assert.False(p.FactorsOnDevice(5000));
        Assert.False(p.SpectralNormOnDevice(5000, 5000));
        Assert.IsType<CholeskyFactor>(p.Factor(Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil.Spd(new Random(1), 20)));
        Assert.Throws<ArgumentOutOfRangeException>(() => LinearAlgebraPlacement.For(CpuBackend.Instance, minFactorOrder: -1));
    }
}

public sealed class LinearAlgebraPlacementTestsOnIlgpuCpu : LinearAlgebraPlacementTests<IlgpuCpuDevice> { }
public sealed class LinearAlgebraPlacementTestsOnCuda : LinearAlgebraPlacementTests<IlgpuCudaDevice> { }
