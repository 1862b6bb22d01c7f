using System.Reflection;
using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Every ILGPU kernel entry point in this folder: the public static methods of the kernel classes (generic ones
/// instantiated for float32 and float64), implicitly grouped where the first parameter is an index, explicitly
/// grouped (their own group shape and shared memory) otherwise. The PTX compile test walks this list, so a kernel
/// added to a kernel class cannot escape it.
/// </summary>
public static class IlgpuKernelCatalog
{
    static readonly Type[] s_kernelClasses =
    {
        typeof(GemmKernels), typeof(NormKernels), typeof(ElementwiseKernels), typeof(EmbeddingKernels), typeof(RopeKernels),
        typeof(AttentionKernels), typeof(LossKernels), typeof(CholeskyKernels),
    };

    /// <summary>The entry points.</summary>
    public static IReadOnlyList<MethodInfo> EntryPoints { get; } = s_kernelClasses
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
        .SelectMany(m => m.IsGenericMethodDefinition ? new[] { m.MakeGenericMethod(typeof(float)), m.MakeGenericMethod(typeof(double)) } : new[] { m })
        .ToArray();

    /// <summary>True for a kernel whose first parameter is its index (launched with ILGPU's automatic grouping).</summary>
    public static bool IsImplicitlyGrouped(MethodInfo kernel) =>
        kernel.GetParameters() is { Length: > 0 } p && p[0].ParameterType is var i && (i == typeof(Index1D) || i == typeof(Index2D));
}
