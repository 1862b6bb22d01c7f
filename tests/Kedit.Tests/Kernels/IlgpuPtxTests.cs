using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using Kedit.Kernels.Ilgpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>
/// Every ILGPU kernel compiles to PTX for Ampere (sm_80) and Hopper (sm_90) without a GPU: ILGPU's PTX backend
/// runs on the host. This proves code generation only; no kernel has run on a GPU here (bench/gpu-check.sh runs them).
/// </summary>
public class IlgpuPtxTests
{
    [Theory]
    [InlineData(80)]
    [InlineData(90)]
    public void EveryKernelCompilesToPtx(int sm)
    {
        var arch = new CudaArchitecture(sm / 10, sm % 10);
        using var context = Context.Create(b => b.EnableAlgorithms());
        // PTX ISA 8.0 (CUDA 12.0) is the first that knows both sm_80 and sm_90.
        var isa = CudaInstructionSet.ISA_80;
        var backend = new PTXBackend(context, new CudaCapabilityContext(arch), arch, isa, null);
        Assert.Contains(IlgpuKernelCatalog.EntryPoints, m => m.Name == nameof(GemmKernels.TiledGemm));
        Assert.True(IlgpuKernelCatalog.EntryPoints.Count >= 25, $"only {IlgpuKernelCatalog.EntryPoints.Count} kernels found");
        foreach (var method in IlgpuKernelCatalog.EntryPoints)
        {
            var entry = IlgpuKernelCatalog.IsImplicitlyGrouped(method) ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
                : EntryPointDescription.FromExplicitlyGroupedKernel(method);
            var compiled = (PTXCompiledKernel)backend.Compile(entry, default);
            // ILGPU 1.5.3 writes the lowest architecture that has every capability it uses (CudaCapabilityContext's
            // TargetArchitecture, at most sm_80): such PTX is JIT-compiled by the driver for any newer GPU.
            string target = compiled.PTXAssembly.Split('\n').FirstOrDefault(l => l.StartsWith(".target sm_", StringComparison.Ordinal)) ?? "(no .target line)";
            Assert.True(int.TryParse(target.AsSpan(".target sm_".Length).TrimEnd(), out int targetSm) && targetSm >= 20 && targetSm <= sm,
                $"{method.DeclaringType!.Name}.{method.Name}: {target} for an sm_{sm} backend");
            Assert.Contains(".entry", compiled.PTXAssembly);
        }
    }
}
