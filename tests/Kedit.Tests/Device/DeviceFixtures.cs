using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// The device a device test class runs on: each test class is abstract over it and has one subclass per device
/// (…OnIlgpuCpu, …OnCuda), as ILGPU splits its own tests per accelerator.
/// </summary>
public interface IDeviceFixture
{
    /// <summary>A shared backend for kernel tests (never disposed by them), or a skip saying why there is none.</summary>
    static abstract DeviceBackend Require();
    /// <summary>A fresh backend (its own weight cache) for a test that hands it to a Transformer, which disposes it.</summary>
    static abstract DeviceBackend RequireFresh();
}

/// <summary>ILGPU's CPU accelerator: always present, so these tests never skip.</summary>
public sealed class IlgpuCpuDevice : IDeviceFixture
{
    static readonly Lazy<IlgpuBackend> s_backend = new(IlgpuBackend.CreateCpu);
    public static DeviceBackend Require() => s_backend.Value;
    public static DeviceBackend RequireFresh() => IlgpuBackend.CreateCpu();
}

/// <summary>
/// ILGPU's CUDA accelerator, skipped with the reason where there is no NVIDIA driver or GPU (every machine
/// this project has run on so far: these cases have never run; bench/gpu-check.sh runs them on a GPU machine).
/// </summary>
public sealed class IlgpuCudaDevice : IDeviceFixture
{
    static readonly Lazy<IlgpuBackend?> s_backend = new(() => IlgpuBackend.IsCudaAvailable(out _) ? IlgpuBackend.CreateCuda() : null);

    public static DeviceBackend Require()
    {
        if (!IlgpuBackend.IsCudaAvailable(out var reason)) Skip.If(true, reason);
        return s_backend.Value!;
    }

    public static DeviceBackend RequireFresh()
    {
        Require();
        return IlgpuBackend.CreateCuda();
    }
}
