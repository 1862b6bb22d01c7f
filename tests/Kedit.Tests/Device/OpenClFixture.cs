using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// The OpenCL backend for device tests, or a skip with the reason when this machine has no OpenCL
/// platform (CI installs PoCL, so there they run). A present device that fails to set up fails the test.
/// </summary>
public static class OpenClFixture
{
    static readonly Lazy<OpenClBackend?> s_backend = new(() => OpenClBackend.IsPlatformPresent(out _) ? OpenClBackend.Create() : null);

    /// <summary>A shared backend for kernel tests (never disposed by them).</summary>
    public static OpenClBackend Require()
    {
        if (!OpenClBackend.IsPlatformPresent(out var reason)) Skip.If(true, $"no OpenCL platform on this machine: {reason}");
        return s_backend.Value!;
    }

    /// <summary>A fresh backend (its own weight cache) for a test that hands it to a Transformer, which disposes it.</summary>
    public static OpenClBackend RequireFresh()
    {
        Require();
        return OpenClBackend.Create();
    }
}
