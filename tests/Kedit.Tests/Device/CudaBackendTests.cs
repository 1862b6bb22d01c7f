using Kedit.Backends;
using Kedit.IO;
using Kedit.Kernels.Cpu;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// The CUDA backend where a CUDA device exists (skipped elsewhere); on machines without one, creating it
/// must fail with a clear KeditException rather than crash (that test skips where a device exists).
/// </summary>
public class CudaBackendTests
{
    [SkippableFact]
    public void WithoutACudaDeviceCreateFailsWithAClearMessage()
    {
        Skip.If(CudaBackend.IsAvailable(out string reason), "a CUDA device is present: CreateNamesTheCudaDevice runs instead");
        var e = Assert.ThrowsAny<KeditException>(() => CudaBackend.Create());
        Assert.Contains("CUDA", e.Message);
        Assert.Equal(reason, e.Message); // the reason IsAvailable gives is the error Create raises
        Assert.DoesNotContain("   at ", e.Message); // one line, no stack trace
    }

    [SkippableFact]
    public void CreateNamesTheCudaDevice()
    {
        Skip.IfNot(CudaBackend.IsAvailable(out var reason), $"no CUDA device: {reason}");
        using var be = CudaBackend.Create();
        Assert.Contains("CUDA", be.DeviceName);
    }

    [SkippableFact]
    public void GemmMatchesSgemm()
    {
        Skip.IfNot(CudaBackend.IsAvailable(out var reason), $"no CUDA device: {reason}");
        var be = CudaBackend.Create();
        int m = 70, n = 45, k = 33;
        var rng = new Random(1);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var b = Enumerable.Range(0, n * k).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var expected = new float[m * n];
        Gemm.Sgemm(false, true, m, n, k, 1f, a, k, b, k, 0f, expected, n);
        using var da = be.Allocate(m, k); using var db = be.Allocate(n, k); using var dc = be.Allocate(m, n);
        be.Upload(a, da); be.Upload(b, db); be.Upload(Enumerable.Repeat(float.NaN, m * n).ToArray(), dc);
        be.Gemm(false, true, da, db, dc);
        var got = new float[m * n];
        be.Download(dc, got);
        Compare.Close("cuda gemm_nt", got, expected.Select(v => (double)v).ToArray(), 2e-6);
    }

    [SkippableTheory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("gptj")]
    public void FixtureModelsMatchGoldens(string name)
    {
        Skip.IfNot(CudaBackend.IsAvailable(out var reason), $"no CUDA device: {reason}");
        using var model = Transformer.Load(TestPaths.Fixture(name), CudaBackend.Create());
        using var gold = SafetensorsFile.Open(TestPaths.Fixture(name, "golden_forward.safetensors"));
        var ids = gold.ReadInt64("seq0.ids").Select(i => (int)i).ToArray();
        var r = model.Forward(TokenBatch.Single(ids));
        Compare.Close($"cuda {name} logits", r.Logits, gold.ReadFloat64("seq0.logits"), 1e-5, 1e-4);
    }
}
