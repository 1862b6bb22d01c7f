using System.Reflection;
using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Every ILGPU kernel entry point in this folder: the public static methods of the kernel classes (generic ones
/// instantiated as they are used: float32 and float64, the GEMM and embedding also with F16/BF16 weights, the GEMM with float32 keys summed in float64), implicitly grouped where the first parameter is an index, explicitly
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

    /// <summary>The type arguments a generic kernel is used with: one element type, a table's stored type and load (embedding), or the GEMM's (T, A's and B's stored types, their loads).</summary>
    static readonly Type[][] s_instantiations =
    {
        new[] { typeof(float) }, new[] { typeof(double) },
        new[] { typeof(float), typeof(AsStored<float>) }, new[] { typeof(ushort), typeof(BFloat16Weight) }, new[] { typeof(ushort), typeof(Float16Weight) },
        new[] { typeof(float), typeof(float), typeof(float), typeof(AsStored<float>) },
        new[] { typeof(double), typeof(double), typeof(double), typeof(AsStored<double>) },
        new[] { typeof(float), typeof(float), typeof(ushort), typeof(BFloat16Weight) },
        new[] { typeof(float), typeof(float), typeof(ushort), typeof(Float16Weight) },
        new[] { typeof(double), typeof(float), typeof(float), typeof(WidenedKeys) },
    };

    /// <summary>The entry points.</summary>
    public static IReadOnlyList<MethodInfo> EntryPoints { get; } = s_kernelClasses
        .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
        .SelectMany(m => m.IsGenericMethodDefinition
            ? s_instantiations.Where(a => a.Length == m.GetGenericArguments().Length).Select(a => m.MakeGenericMethod(a))
            : new[] { m })
        .ToArray();

    /// <summary>True for a kernel whose first parameter is its index (launched with ILGPU's automatic grouping).</summary>
    public static bool IsImplicitlyGrouped(MethodInfo kernel) =>
        kernel.GetParameters() is { Length: > 0 } p && p[0].ParameterType is var i && (i == typeof(Index1D) || i == typeof(Index2D));
}
