using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// `--device cuda` (ILGPU's CUDA accelerator). On a machine without CUDA it must fail with one clear line, from the
/// API and from the CLI (those tests skip where a device exists); where one exists it names the device. The kernels
/// and models on CUDA are the *OnCuda device test classes.
/// </summary>
public class CudaBackendTests
{
    [SkippableFact]
    public void WithoutACudaDeviceCreateFailsWithOneClearLine()
    {
        Skip.If(IlgpuBackend.IsCudaAvailable(out string reason), "a CUDA device is present: CreateNamesTheCudaDevice runs instead");
        var e = Assert.ThrowsAny<KeditException>(() => IlgpuBackend.CreateCuda());
        Assert.StartsWith("CUDA is not available on this machine", e.Message);
        Assert.Equal(reason, e.Message); // the reason IsCudaAvailable gives is the error CreateCuda raises
        Assert.DoesNotContain('\n', e.Message);
    }

    [SkippableFact]
    public void TheCliSaysSoInOneLineAndExitsOne()
    {
        Skip.If(IlgpuBackend.IsCudaAvailable(out _), "a CUDA device is present");
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int code = Cli.Cli.Run(new[] { "generate", "--model", TestPaths.Fixture("gpt2"), "--prompt", "hello", "--max-new-tokens", "2", "--device", "cuda" }, stdout, stderr);
        Assert.Equal(1, code);
        string err = stderr.ToString().TrimEnd();
        Assert.Contains("CUDA is not available on this machine", err);
        Assert.DoesNotContain('\n', err);
        Assert.Equal("", stdout.ToString());
    }

    [SkippableFact]
    public void CreateNamesTheCudaDevice()
    {
        Skip.IfNot(IlgpuBackend.IsCudaAvailable(out var reason), reason);
        var be = IlgpuBackend.CreateCuda();
        Assert.Contains("CUDA", be.DeviceName);
        Assert.Equal("cuda", be.Name);
    }
}
