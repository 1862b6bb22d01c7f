using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// `--device cuda` and `--device opencl` (ILGPU's CUDA and OpenCL accelerators). On a machine without such a device
/// (this one: no NVIDIA GPU, and ILGPU can use none of PoCL's OpenCL devices) each must fail with one clear line,
/// from the API and from the CLI (those tests skip where a device exists); where one exists it names the device.
/// The kernels and models on CUDA are the *OnCuda device test classes.
/// </summary>
public class AcceleratorAvailabilityTests
{
    public static TheoryData<string, string> Accelerators => new() { { "cuda", "CUDA" }, { "opencl", "OpenCL" } };

    static bool IsAvailable(string device, out string reason) =>
        device == "cuda" ? IlgpuBackend.IsCudaAvailable(out reason) : IlgpuBackend.IsOpenClAvailable(out reason);

    [SkippableTheory, MemberData(nameof(Accelerators))]
    public void WithoutADeviceCreateFailsWithOneClearLine(string device, string api)
    {
        Skip.If(IsAvailable(device, out string reason), $"a {api} device is present: CreateNamesTheDevice runs instead");
        var e = Assert.ThrowsAny<KeditException>(() => Devices.Create(device));
        Assert.StartsWith($"{api} is not available on this machine", e.Message);
        Assert.Equal(reason, e.Message); // the reason IsAvailable gives is the error Create raises
        Assert.DoesNotContain('\n', e.Message);
    }

    [SkippableFact]
    public void TheOpenClErrorNamesTheDevicesIlgpuCannotUse()
    {
        Skip.If(IlgpuBackend.IsOpenClAvailable(out string reason), "ILGPU can use an OpenCL device here");
        // With an OpenCL driver installed (CI installs none; a developer machine may have PoCL) the error says which
        // devices exist and that ILGPU can use none of them; without one, that there is no driver.
        Assert.True(reason.Contains("ILGPU needs OpenCL C 2.0 and can use none of the OpenCL devices here (") || reason.Contains("no OpenCL driver installed")
            || reason.Contains("ILGPU could not load the OpenCL driver"), reason);
        if (File.Exists("/etc/OpenCL/vendors/pocl.icd")) Assert.Contains("Portable Computing Language", reason);
    }

    [SkippableTheory, MemberData(nameof(Accelerators))]
    public void TheCliSaysSoInOneLineAndExitsOne(string device, string api)
    {
        Skip.If(IsAvailable(device, out _), $"a {api} device is present");
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int code = Cli.Cli.Run(new[] { "generate", "--model", TestPaths.Fixture("gpt2"), "--prompt", "hello", "--max-new-tokens", "2", "--device", device }, stdout, stderr);
        Assert.Equal(1, code);
        string err = stderr.ToString().TrimEnd();
        Assert.Contains($"{api} is not available on this machine", err);
        Assert.DoesNotContain('\n', err);
        Assert.Equal("", stdout.ToString());
    }

    [SkippableTheory, MemberData(nameof(Accelerators))]
    public void CreateNamesTheDevice(string device, string api)
    {
        Skip.IfNot(IsAvailable(device, out var reason), reason);
        var be = (DeviceBackend)Devices.Create(device);
        Assert.Contains(api, be.DeviceName);
        Assert.Equal(device, be.Name);
    }
}
