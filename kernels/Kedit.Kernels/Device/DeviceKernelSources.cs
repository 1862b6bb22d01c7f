using System.Reflection;
using System.Text;

namespace Kedit.Kernels.Device;

/// <summary>
/// The OpenCL C kernels of <c>--device opencl</c>: one source file per op, written with macros for qualifiers,
/// indices and barriers (dialect_opencl.h), embedded in this assembly. A program is that header, the reduction
/// width, then every op source. (The CUDA path is the ILGPU kernels in ../Ilgpu.)
/// </summary>
public static class DeviceKernelSources
{
    /// <summary>Op sources in program order (common helpers first).</summary>
    public static IReadOnlyList<string> OpFiles { get; } = new[]
    {
        "common.cl", "gemm.cl", "matvec.cl", "embed.cl", "layernorm.cl", "rmsnorm.cl", "activate.cl", "gated_act.cl", "add.cl", "rope.cl", "attention.cl",
        "norm_bwd.cl", "elementwise_bwd.cl", "attention_bwd.cl", "loss_bwd.cl",
        "linalg_macros.cl", "linalg.cl",
    };

    /// <summary>Kernel entry points the program defines.</summary>
    public static IReadOnlyList<string> KernelNames { get; } = new[]
    {
        "gemm_nn", "gemm_nt", "gemm_tn", "gemm_tt", "gemm_skinny_nn", "gemm_skinny_nt", "gemm_skinny_nt_serial", "matvec", "matvec_t",
        "embed", "layernorm", "rmsnorm", "activate", "gated_act", "add", "rope", "kv_store", "attention",
        "layernorm_bwd", "layernorm_bwd_params", "rmsnorm_bwd", "rmsnorm_bwd_params", "activate_bwd", "gated_act_bwd", "rope_bwd",
        "col_sum_acc", "embed_bwd", "attention_bwd_stats", "attention_bwd_dq", "attention_bwd_dkv", "log_softmax", "xent_grad", "kl_grad",
        "syrk_f32", "rank_k_update",
    };

    /// <summary>
    /// The complete program text. <paramref name="reduceWorkGroup"/> (a power of two) is the
    /// work-group size of the reduction kernels and bounds the attention head dimension.
    /// </summary>
    public static string Program(int reduceWorkGroup)
    {
        if (reduceWorkGroup < 1 || (reduceWorkGroup & (reduceWorkGroup - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(reduceWorkGroup), reduceWorkGroup, "the reduction work-group size must be a power of two");
        var sb = new StringBuilder();
        sb.Append(Read("dialect_opencl.h")).Append('\n');
        sb.Append("#define RWG ").Append(reduceWorkGroup).Append('\n');
        foreach (var f in OpFiles) sb.Append("/* ---- ").Append(f).Append(" ---- */\n").Append(Read(f)).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// Sources of the float64 program (editing linear algebra: covariance accumulation, blocked Cholesky,
    /// triangular solves), in order after the dialect header. A separate program so that devices without
    /// float64 still build <see cref="Program"/>; on OpenCL its build fails at once without cl_khr_fp64.
    /// </summary>
    public static IReadOnlyList<string> Float64OpFiles { get; } = new[] { "linalg_macros.cl", "linalg_fp64.cl" };

    /// <summary>Kernel entry points the float64 program defines.</summary>
    public static IReadOnlyList<string> Float64KernelNames { get; } = new[]
    {
        "syrk_f32_f64", "dgemm_tn", "dgemm_nn", "dgemm_nt", "chol_diag_f64", "chol_panel_f64", "trsm_fwd_f64", "trsm_bwd_f64",
    };

    /// <summary>The complete float64 program text (dialect header, then <see cref="Float64OpFiles"/>).</summary>
    public static string Float64Program()
    {
        var sb = new StringBuilder();
        sb.Append(Read("dialect_opencl.h")).Append('\n');
        foreach (var f in Float64OpFiles) sb.Append("/* ---- ").Append(f).Append(" ---- */\n").Append(Read(f)).Append('\n');
        return sb.ToString();
    }

    /// <summary>One embedded source file by name (e.g. "gemm.cl").</summary>
    public static string Read(string file)
    {
        using var s = typeof(DeviceKernelSources).Assembly.GetManifestResourceStream("Kedit.Kernels.Device." + file)
            ?? throw new InvalidOperationException($"kernel source {file} is not embedded in {typeof(DeviceKernelSources).Assembly.GetName().Name}");
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    }
}
