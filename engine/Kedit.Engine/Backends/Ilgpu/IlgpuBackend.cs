namespace Kedit.Backends;

/// <summary>
/// The device backend over ILGPU: the same ops as <see cref="OpenClBackend"/>, each a C# kernel from Kedit.Kernels'
/// Ilgpu folder. <c>--device ilgpu-cpu</c> runs them on ILGPU's CPU accelerator (a correctness runtime: slow,
/// above all at barriers, never a speed path); <c>--device cuda</c> on ILGPU's CUDA accelerator.
/// </summary>
public sealed class IlgpuBackend : DeviceBackend
{
    IlgpuBackend(IlgpuRuntime runtime, string name) : base(runtime, name) { }

    /// <summary>A backend on ILGPU's CPU accelerator (shared by every such backend in the process).</summary>
    public static IlgpuBackend CreateCpu() => new(IlgpuRuntime.Cpu(), "ilgpu-cpu");

    /// <summary>
    /// A backend on CUDA device KEDIT_CUDA_DEVICE (default 0) through ILGPU. Throws <see cref="DeviceException"/>
    /// (a <see cref="KeditException"/>, one line) when there is no CUDA driver or device.
    /// </summary>
    public static IlgpuBackend CreateCuda() => new(IlgpuRuntime.Cuda(), "cuda");

    /// <summary>True when <see cref="CreateCuda"/> succeeds on this machine; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsCudaAvailable(out string reason)
    {
        try { IlgpuRuntime.Cuda(); reason = ""; return true; }
        catch (KeditException e) { reason = e.Message; return false; }
    }
}
