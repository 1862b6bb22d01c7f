using System.Reflection;
using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Every ILGPU kernel entry point in this folder: the public static methods of the kernel classes whose first
/// parameter is an index (generic ones instantiated for float32 and float64). The PTX compile test walks this
/// list, so a kernel added to a kernel class cannot escape it.
/// </summary>
public static class IlgpuKernelCatalog
{
    static readonly Type[] s_kernelClasses =
    {
        typeof(GemmKernels), typeof(NormKernels), typeof(ElementwiseKernels), typeof(EmbeddingKernels), typeof(RopeKernels),
        typeof(AttentionKernels), typeof(LossKernels), typeof(CholeskyKernels),
    };

    /// <summary>The entry points, each an implicitly grouped kernel.</summary>
    public static IReadOnlyList<MethodInfo> EntryPoints { get; } = s_kernelClasses
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
        .Where(m => m.GetParameters() is { Length: > 0 } p && p[0].ParameterType is var i && (i == typeof(Index1D) || i == typeof(Index2D)))
        .SelectMany(m => m.IsGenericMethodDefinition ? new[] { m.MakeGenericMethod(typeof(float)), m.MakeGenericMethod(typeof(double)) } : new[] { m })
        .ToArray();
}
