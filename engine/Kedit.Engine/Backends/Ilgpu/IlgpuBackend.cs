namespace Kedit.Backends;

/// <summary>
/// The device backend over ILGPU: every op of <see cref="DeviceBackend"/> a C# kernel from Kedit.Kernels' Ilgpu folder.
/// <c>--device ilgpu-cpu</c> runs them on ILGPU's CPU accelerator (a correctness runtime: slow, above all at barriers,
/// never a speed path); <c>--device cuda</c> on ILGPU's CUDA accelerator; <c>--device opencl</c> on ILGPU's OpenCL
/// accelerator, where a device qualifies for ILGPU.
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

    /// <summary>
    /// A backend on OpenCL device KEDIT_OPENCL_DEVICE (default 0) among those ILGPU can use. Throws
    /// <see cref="DeviceException"/> (one line naming the devices present) when none qualifies.
    /// </summary>
    public static IlgpuBackend CreateOpenCl() => new(IlgpuRuntime.OpenCl(), "opencl");

    /// <summary>True when <see cref="CreateOpenCl"/> succeeds on this machine; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsOpenClAvailable(out string reason)
    {
        try { IlgpuRuntime.OpenCl(); reason = ""; return true; }
        catch (KeditException e) { reason = e.Message; return false; }
    }
}
