using Kedit.Backends;
using Kedit.Editing.LinearAlgebra;

namespace Kedit.Editing;

/// <summary>
/// Where an edit's one-time linear algebra runs: the float64 Cholesky factorisations of λC (MEMIT, D4S's
/// starting factor) and C (ROME) with their solves, and PRUNE's σ_max(W0). The single seam between the editing
/// code and <see cref="DeviceLinearAlgebra"/>: the methods ask it for a factor or a σ_max and never branch on the
/// device themselves. On a CPU model everything stays on the host. On a device model a factorisation moves to the
/// device only from order <see cref="MinDeviceFactorOrder"/> and when the device has float64 (the host's results
/// are float64 and the device's must be too); σ_max moves from <see cref="MinDeviceSpectralElements"/> weight
/// elements. Below the thresholds the host is as fast or faster: one factorisation of order n costs n/64 × 3
/// kernel launches plus an n² float64 upload, against n³/3 host flops that take well under 10 ms for n &lt; 1024.
/// The small per-edit matrices (I + Kᵀ(λC)⁻¹K, n×n for n requests) and D4S's rank-1 updates stay on the host.
/// </summary>
public sealed class LinearAlgebraPlacement
{
    /// <summary>Default smallest order factored on the device (GPT-2 small's d_ff 3072 and larger qualify; fixtures do not).</summary>
    public const int DefaultMinDeviceFactorOrder = 1024;

    /// <summary>Default smallest weight (rows × cols) whose σ_max runs on the device: 2²⁰ elements, e.g. 512×2048.</summary>
    public const long DefaultMinDeviceSpectralElements = 1L << 20;

    LinearAlgebraPlacement(DeviceLinearAlgebra? device, int minFactorOrder, long minSpectralElements)
    {
        if (minFactorOrder < 0) throw new ArgumentOutOfRangeException(nameof(minFactorOrder), minFactorOrder, "the threshold must be non-negative");
        if (minSpectralElements < 0) throw new ArgumentOutOfRangeException(nameof(minSpectralElements), minSpectralElements, "the threshold must be non-negative");
        Device = device; MinDeviceFactorOrder = minFactorOrder; MinDeviceSpectralElements = minSpectralElements;
    }

    /// <summary>Everything on the host.</summary>
    public static LinearAlgebraPlacement Host { get; } = new(null, DefaultMinDeviceFactorOrder, DefaultMinDeviceSpectralElements);

    /// <summary>
    /// The placement for a model on <paramref name="backend"/>: <see cref="Host"/> for the CPU backend, else that
    /// backend's device above the thresholds (pass 0 to put every factorisation / σ_max on the device).
    /// </summary>
    public static LinearAlgebraPlacement For(IBackend backend, int minFactorOrder = DefaultMinDeviceFactorOrder,
        long minSpectralElements = DefaultMinDeviceSpectralElements)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return backend is DeviceBackend device
            ? new LinearAlgebraPlacement(new DeviceLinearAlgebra(device), minFactorOrder, minSpectralElements)
            : new LinearAlgebraPlacement(null, minFactorOrder, minSpectralElements);
    }

    /// <summary>
    /// The default for a model on <paramref name="backend"/>: <see cref="For"/> with the default thresholds, except on
    /// a device that is the host CPU itself (ILGPU's CPU accelerator, a correctness runtime far slower than the managed
    /// float64 code), where everything stays on the host.
    /// </summary>
    public static LinearAlgebraPlacement Default(IBackend backend) =>
        backend is DeviceBackend { IsHostCpu: true } ? Host : For(backend);

    /// <summary>The device's linear algebra, or null on the host.</summary>
    public DeviceLinearAlgebra? Device { get; }
    /// <summary>Smallest order factored on the device.</summary>
    public int MinDeviceFactorOrder { get; }
    /// <summary>Smallest rows × cols whose σ_max is computed on the device.</summary>
    public long MinDeviceSpectralElements { get; }

    /// <summary>True when a factorisation of order <paramref name="order"/> runs on the device.</summary>
    public bool FactorsOnDevice(int order) => Device != null && order >= MinDeviceFactorOrder && Device.HasFloat64;

    /// <summary>True when σ_max of a rows×cols weight runs on the device.</summary>
    public bool SpectralNormOnDevice(int rows, int cols) => Device != null && (long)rows * cols >= MinDeviceSpectralElements;

    /// <summary>
    /// Cholesky of <paramref name="a"/> (only its upper triangle is read) where this placement puts it; false, with
    /// the failing pivot and its value, when <paramref name="a"/> is not positive definite (callers fall back to LU).
    /// </summary>
    public bool TryFactor(MatrixD a, out ISpdFactor? factor, out int failedPivot, out double pivotValue)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (FactorsOnDevice(a.Rows))
        {
            bool ok = Device!.TryFactor(a, out var d, out failedPivot, out pivotValue);
            factor = d;
            return ok;
        }
        return CholeskyFactor.TryFactorOnHost(a, out factor, out failedPivot, out pivotValue);
    }

    /// <summary>As <see cref="TryFactor"/>; throws <see cref="NotPositiveDefiniteException"/> naming <paramref name="what"/>.</summary>
    public ISpdFactor Factor(MatrixD a, string what = "matrix")
    {
        if (!TryFactor(a, out var f, out int p, out double v)) throw new NotPositiveDefiniteException(what, p, v);
        return f!;
    }

    /// <summary>
    /// A host <see cref="CholeskyFactor"/> (one that takes rank-1 updates, for D4S), factored on the device when this
    /// placement puts the order there and downloaded once. False, with the failing pivot, when not positive definite.
    /// </summary>
    public bool TryFactorToHost(MatrixD a, out CholeskyFactor? factor, out int failedPivot, out double pivotValue)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (!FactorsOnDevice(a.Rows)) return CholeskyFactor.TryFactor(a, out factor, out failedPivot, out pivotValue);
        factor = null;
        if (!Device!.TryFactor(a, out var d, out failedPivot, out pivotValue)) return false;
        using (d) factor = CholeskyFactor.FromUpper(d!.Upper());
        return true;
    }

    /// <summary>
    /// σ_max of a weight W (d×f) given in its stored layout: [d, f], or [f, d] when <paramref name="inputMajor"/>
    /// (Conv1D). On the device: Golub–Kahan–Lanczos on the stored matrix (σ_max(W) = σ_max(Wᵀ)) with float32 products
    /// on the device, accurate to about 1e-6 relative (the products' precision). On the host: the same iteration in
    /// float64 on W in math orientation, to 1e-10.
    /// </summary>
    public SpectralNormResult SpectralNorm(float[] stored, int d, int f, bool inputMajor)
    {
        ArgumentNullException.ThrowIfNull(stored);
        if ((long)d * f != stored.Length) throw new ArgumentException($"{stored.Length} values are not a {d}×{f} weight", nameof(stored));
        int rows = inputMajor ? f : d, cols = inputMajor ? d : f;
        if (SpectralNormOnDevice(rows, cols))
        {
            var be = Device!.Backend;
            using var w = be.Allocate(rows, cols);
            be.Upload(stored, w);
            return Device.SpectralNormLanczos(w);
        }
        var m = new MatrixD(d, f);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < f; j++) m.Data[(long)i * f + j] = stored[inputMajor ? (long)j * d + i : (long)i * f + j];
        return LinearAlgebra.SpectralNorm.Largest(m);
    }
}
