namespace Kedit.Backends;

/// <summary>
/// The OpenCL backend (any OpenCL 1.2 device: GPUs, or CPUs through PoCL). Kernels are the shared
/// device sources compiled as OpenCL C once per device and process.
/// </summary>
public sealed class OpenClBackend : DeviceBackend
{
    OpenClBackend(OpenClRuntime runtime) : base(runtime, "opencl") { }

    /// <summary>
    /// A backend on the first GPU, else the first OpenCL device (e.g. PoCL's CPU device);
    /// KEDIT_OPENCL_DEVICE=index picks a device from <see cref="ListDevices"/>. Throws
    /// <see cref="DeviceException"/> (a <see cref="KeditException"/>) naming what is missing when OpenCL is unavailable.
    /// </summary>
    public static OpenClBackend Create() => new(OpenClRuntime.Get());

    /// <summary>
    /// True when an OpenCL loader with at least one device is installed (nothing is compiled); otherwise
    /// <paramref name="reason"/> says what is missing. A present device can still fail in <see cref="Create"/>.
    /// </summary>
    public static bool IsPlatformPresent(out string reason)
    {
        if (!Kedit.Interop.OpenCl.IsLoaderAvailable(out reason)) return false;
        try
        {
            if (Kedit.Interop.OpenCl.ListDevices().Count > 0) return true;
            reason = "the OpenCL ICD loader found no platform with a device";
            return false;
        }
        catch (Kedit.Interop.NativeCallException e) { reason = e.Message; return false; }
    }

    /// <summary>Every OpenCL device on this machine, as "#index name (kind, platform, memory)".</summary>
    public static IReadOnlyList<string> ListDevices()
    {
        if (!Kedit.Interop.OpenCl.IsLoaderAvailable(out _)) return System.Array.Empty<string>();
        try { return Kedit.Interop.OpenCl.ListDevices().Select(d => d.ToString()).ToList(); }
        catch (Kedit.Interop.NativeCallException e) { throw new DeviceException($"OpenCL device discovery failed: {e.Message}", e); }
    }
}
