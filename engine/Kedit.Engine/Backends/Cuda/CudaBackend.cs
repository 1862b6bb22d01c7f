namespace Kedit.Backends;

/// <summary>
/// The CUDA backend: the shared device kernels compiled by NVRTC and launched through the CUDA driver
/// API. Its host side is deliberately thin; the ops are the same as <see cref="OpenClBackend"/>'s.
/// </summary>
public sealed class CudaBackend : DeviceBackend
{
    CudaBackend(CudaRuntime runtime) : base(runtime, "cuda") { }

    /// <summary>
    /// A backend on CUDA device KEDIT_CUDA_DEVICE (default 0). Throws <see cref="DeviceException"/>
    /// (a <see cref="KeditException"/>) naming what is missing (driver, NVRTC, device) when CUDA is unavailable.
    /// </summary>
    public static CudaBackend Create() => new(CudaRuntime.Get());

    /// <summary>True when <see cref="Create"/> succeeds on this machine; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsAvailable(out string reason)
    {
        try { CudaRuntime.Get(); reason = ""; return true; }
        catch (KeditException e) { reason = e.Message; return false; }
    }
}
