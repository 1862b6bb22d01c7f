using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using Kedit.Kernels.Ilgpu;

namespace Kedit.Backends;

/// <summary>
/// The host side of an ILGPU accelerator (ILGPU's CPU accelerator, CUDA or OpenCL): buffers are ILGPU memory, and
/// each operation <see cref="DeviceBackend"/> launches runs the C# kernel of the same op from Kedit.Kernels' Ilgpu
/// folder, compiled by ILGPU on first use (MSIL on the CPU accelerator, PTX on CUDA, OpenCL C on OpenCL) and cached
/// for the process. The kernels walk a grid-stride range of output rows or elements (<see cref="Lanes"/>; no
/// work-group barriers, which the CPU accelerator runs slowly), so the grid passed to <see cref="DeviceRuntime.Launch"/>
/// only gives the row count of the per-row kernels; each op otherwise uses its own index space.
/// </summary>
internal sealed unsafe class IlgpuRuntime : DeviceRuntime
{
    static readonly object s_gate = new();
    static IlgpuRuntime? s_cpu, s_cuda, s_openCl;

    static IlgpuRuntime()
    {
        // ILGPU imports the drivers as "OpenCL" and "cuda", which .NET probes as libOpenCL.so / libcuda.so: names only
        // the -dev packages install. The drivers' own sonames are the fallback, so a runtime-only install is found.
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
        {
            if (assembly != typeof(Context).Assembly || !OperatingSystem.IsLinux()) return IntPtr.Zero;
            string? soname = name switch { "OpenCL" => "libOpenCL.so.1", "cuda" => "libcuda.so.1", _ => null };
            return soname != null && NativeLibrary.TryLoad(soname, out var handle) ? handle : IntPtr.Zero;
        };
    }

    readonly Context _context;
    readonly Accelerator _acc;
    readonly ConcurrentDictionary<long, MemoryBuffer1D<byte, Stride1D.Dense>> _buffers = new();
    readonly ConcurrentDictionary<string, Delegate> _kernels = new();
    readonly object _launchGate = new();
    long _nextHandle;

    IlgpuRuntime(Context context, Accelerator accelerator, string kind)
    {
        _context = context; _acc = accelerator;
        IsHostCpu = accelerator is CPUAccelerator;
        DeviceName = accelerator is CPUAccelerator cpu ? $"ILGPU CPU accelerator ({cpu.NumThreads} threads)"
            : $"ILGPU {kind} accelerator {accelerator.Name} ({accelerator.MemorySize / 1048576} MiB)";
        // CUDA and the CPU accelerator always run float64; an OpenCL device only with cl_khr_fp64.
        if (accelerator is CLAccelerator cl && !cl.Capabilities.Float64)
            Float64Missing = $"{accelerator.Name} lacks the OpenCL float64 extension (cl_khr_fp64)";
    }

    public override string DeviceName { get; }
    /// <summary>Bounds the attention head dimension (the kernels themselves have no limit).</summary>
    public override int ReduceWorkGroup => 256;
    public override bool IsHostCpu { get; }
    public override string? Float64Missing { get; }

    /// <summary>ILGPU's CPU accelerator: a correctness runtime for the kernels, never a speed path.</summary>
    public static IlgpuRuntime Cpu()
    {
        lock (s_gate)
        {
            if (s_cpu != null) return s_cpu;
            // Groups of 2 threads (the least ILGPU allows), about one thread per core in all: the kernels need no
            // larger groups, and its default device (16 threads a group whatever the cores) spends each launch
            // switching threads (a 4,096-element launch: ~0.1 ms here against ~0.6 ms, 2 loaded cores).
            var device = new CPUDevice(numThreadsPerWarp: 2, numWarpsPerMultiprocessor: 1, numMultiprocessors: Math.Max(1, Environment.ProcessorCount / 2));
            var context = Context.Create(b => b.CPU(device).EnableAlgorithms());
            return s_cpu = new IlgpuRuntime(context, context.CreateCPUAccelerator(0), "CPU");
        }
    }

    /// <summary>The environment variable that picks a CUDA device by its index among ILGPU's CUDA devices (default 0).</summary>
    public const string CudaDeviceVariable = "KEDIT_CUDA_DEVICE";

    /// <summary>ILGPU's CUDA accelerator; a <see cref="DeviceException"/> naming what is missing where there is none.</summary>
    public static IlgpuRuntime Cuda()
    {
        lock (s_gate)
            return s_cuda ??= Open("CUDA", CudaDeviceVariable, b => b.Cuda(), c => c.GetCudaDevices().Count,
                () => "ILGPU found no CUDA device (no NVIDIA driver or GPU)", (c, i) => c.CreateCudaAccelerator(i));
    }

    /// <summary>The environment variable that picks an OpenCL device by its index among the devices ILGPU can use (default 0).</summary>
    public const string OpenClDeviceVariable = "KEDIT_OPENCL_DEVICE";

    /// <summary>
    /// ILGPU's OpenCL accelerator (AMD or Intel GPUs through their OpenCL drivers); a <see cref="DeviceException"/>
    /// naming the devices present where none qualifies for ILGPU (it needs OpenCL C 2.0; PoCL's CPU device offers 1.2).
    /// </summary>
    public static IlgpuRuntime OpenCl()
    {
        lock (s_gate)
            return s_openCl ??= Open("OpenCL", OpenClDeviceVariable, b => b.OpenCL(), c => c.GetCLDevices().Count, () =>
                PresentOpenClDevices() is { Length: > 0 } present
                    ? $"ILGPU needs OpenCL C 2.0 and can use none of the OpenCL devices here ({present}); use --device cpu or ilgpu-cpu"
                    : "ILGPU found no OpenCL platform with a device (no OpenCL driver installed)",
                (c, i) => c.CreateCLAccelerator(i));
    }

    /// <summary>
    /// A context of one ILGPU accelerator kind and its device number <paramref name="variable"/> (default 0), or a
    /// one-line <see cref="DeviceException"/> saying "<paramref name="api"/> is not available on this machine" and why.
    /// </summary>
    static IlgpuRuntime Open(string api, string variable, Func<Context.Builder, Context.Builder> enable, Func<Context, int> deviceCount,
        Func<string> noDevice, Func<Context, int, Accelerator> create)
    {
        Context context;
        try { context = Context.Create(b => enable(b).EnableAlgorithms()); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new DeviceException($"{api} is not available on this machine: ILGPU could not load the {api} driver ({e.GetType().Name}: {FirstLine(e)})", e);
        }
        int count = deviceCount(context);
        if (count == 0)
        {
            context.Dispose();
            throw new DeviceException($"{api} is not available on this machine: {noDevice()}");
        }
        int ordinal = 0;
        string? requested = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrWhiteSpace(requested) && (!int.TryParse(requested, out ordinal) || ordinal < 0 || ordinal >= count))
        {
            context.Dispose();
            throw new DeviceException($"{variable}={requested} does not name a {api} device ILGPU can use (this machine has {count})");
        }
        try { return new IlgpuRuntime(context, create(context, ordinal), api); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            context.Dispose();
            throw new DeviceException($"{api} device #{ordinal}: ILGPU setup failed: {FirstLine(e)}", e);
        }
    }

    static string FirstLine(Exception e) => e.Message.Split('\n')[0];

    /// <summary>Every OpenCL device the driver reports, usable by ILGPU or not, as "name, platform, OpenCL C version".</summary>
    static string PresentOpenClDevices()
    {
        try
        {
            using var all = Context.Create(b => b.OpenCL(_ => true));
            var names = new List<string>();
            foreach (var d in all.GetCLDevices()) names.Add($"{d.Name}, {d.PlatformName}, OpenCL C {d.CVersion.Major}.{d.CVersion.Minor}");
            return string.Join("; ", names);
        }
        catch (Exception e) when (e is not OutOfMemoryException) { return ""; }
    }

    // ---- memory ----------------------------------------------------------------------------------

    protected override long AllocateHandle(long bytes)
    {
        MemoryBuffer1D<byte, Stride1D.Dense> buffer;
        try { buffer = _acc.Allocate1D<byte>(bytes); }
        catch (Exception e) when (e is not OutOfMemoryException) { throw new DeviceException($"{DeviceName}: allocating {bytes} bytes failed: {FirstLine(e)}", e); }
        long h = Interlocked.Increment(ref _nextHandle);
        _buffers[h] = buffer;
        return h;
    }

    public override void Free(long handle)
    {
        if (_buffers.TryRemove(handle, out var b)) { try { b.Dispose(); } catch (Exception) { } }
    }

    ArrayView<byte> Bytes(long handle) => _buffers.TryGetValue(handle, out var b) ? b.View.AsContiguous()
        : throw new ObjectDisposedException(nameof(DeviceBuffer), "the device buffer was already released");

    protected override void WriteCore(long handle, long offset, void* source, long bytes)
    {
        Bytes(handle).SubView(offset, bytes).CopyFromCPU(ref Unsafe.AsRef<byte>(source), bytes);
        _acc.Synchronize();
    }

    // ILGPU registers the pinned range as page-locked (cuMemHostRegister on CUDA); its CPU accelerator has nothing to
    // lock, so there the scope is a no-op and the copy a plain memory copy through the same calls.
    protected override void WritePageLockedCore(long handle, void* pinnedSource, long bytes)
    {
        using var scope = _acc.CreatePageLockFromPinned<byte>((IntPtr)pinnedSource, bytes);
        Bytes(handle).SubView(0, bytes).CopyFromPageLockedAsync(_acc.DefaultStream, scope);
        _acc.Synchronize();
    }

    protected override void ReadCore(long handle, long offset, void* destination, long bytes)
    {
        _acc.Synchronize();
        Bytes(handle).SubView(offset, bytes).CopyToCPU(ref Unsafe.AsRef<byte>(destination), bytes);
    }

    protected override void CopyCore(long source, long destination, long bytes)
    {
        Bytes(destination).SubView(0, bytes).CopyFrom(Bytes(source).SubView(0, bytes));
        _acc.Synchronize();
    }

    protected override void SynchronizeCore() => _acc.Synchronize();

    // ---- launches --------------------------------------------------------------------------------

    T K<T>(string name, Func<T> load) where T : Delegate => (T)_kernels.GetOrAdd(name, _ => load());

    protected override void LaunchCore(string kernel, int groupsX, int groupsY, int localX, int localY, ReadOnlySpan<KernelArg> args)
    {
        lock (_launchGate)
        {
            try { Dispatch(kernel, groupsX, args); }
            catch (Exception e) when (e is not (DeviceException or ArgumentException or OutOfMemoryException or ObjectDisposedException))
            {
                throw new DeviceException($"{DeviceName}: kernel {kernel} failed: {e.GetType().Name}: {FirstLine(e)}", e);
            }
        }
    }

    ArrayView<float> F(ReadOnlySpan<KernelArg> a, int i) => Bytes(a[i].Buffer!.Handle).Cast<float>();
    ArrayView<int> I(ReadOnlySpan<KernelArg> a, int i) => Bytes(a[i].Buffer!.Handle).Cast<int>();
    ArrayView<double> D(ReadOnlySpan<KernelArg> a, int i) => Bytes(a[i].Buffer!.Handle).Cast<double>();
    ArrayView<ushort> U(ReadOnlySpan<KernelArg> a, int i) => Bytes(a[i].Buffer!.Handle).Cast<ushort>();
    static int N(ReadOnlySpan<KernelArg> a, int i) => checked((int)a[i].Bits);
    static float R(ReadOnlySpan<KernelArg> a, int i) => BitConverter.Int32BitsToSingle((int)a[i].Bits);

    /// <summary>
    /// The grid-stride range of width × height items: a lane per item on GPUs, on the CPU accelerator one lane per
    /// thread it runs (each work-group costs it a thread barrier).
    /// </summary>
    Lanes Ln(long width, long height = 1) => Lanes.Of(width, height, IsHostCpu ? _acc.MaxNumThreadsPerGroup * _acc.NumMultiprocessors : int.MaxValue);

    /// <summary>Runs one op: the argument order is that of the DeviceBackend launch of the same name.</summary>
    void Dispatch(string kernel, int groups, ReadOnlySpan<KernelArg> a)
    {
        Lanes l;   // each launch's grid-stride range, built in its argument list
        switch (kernel)
        {
            case "gemm_nn": case "gemm_nt": case "gemm_tn": case "gemm_tt":
            case "gemm_nn_bf16": case "gemm_nt_bf16": case "gemm_tn_bf16": case "gemm_tt_bf16":
            case "gemm_nn_f16": case "gemm_nt_f16": case "gemm_tn_f16": case "gemm_tt_f16":
            {
                bool ta = kernel[5] == 't', tb = kernel[6] == 't';
                var s = new GemmArgs<float> { M = N(a, 0), N = N(a, 1), K = N(a, 2), Lda = N(a, 4), Ldb = N(a, 6), Ldc = N(a, 8), HasBias = N(a, 10), Alpha = R(a, 11), Beta = R(a, 12), TransA = ta ? 1 : 0, TransB = tb ? 1 : 0 };
                // B (the weight) as stored: float32, or 16-bit widened in the product's loads.
                if (kernel.EndsWith("_bf16", StringComparison.Ordinal)) Gemm<float, float, ushort, BFloat16Weight>(s, F(a, 3), U(a, 5), F(a, 7), F(a, 9));
                else if (kernel.EndsWith("_f16", StringComparison.Ordinal)) Gemm<float, float, ushort, Float16Weight>(s, F(a, 3), U(a, 5), F(a, 7), F(a, 9));
                else Gemm(s, F(a, 3), F(a, 5), F(a, 7), F(a, 9));
                break;
            }
            case "syrk_f32":
                Gemm(LaArgs<float>(a, 1, 0, R(a, 12), R(a, 13)), F(a, 3), F(a, 6), F(a, 9), F(a, 9));
                break;
            case "syrk_f32_f64":
                // float32 keys widened to float64 in the product's loads (exact products, no widened copy of the keys).
                Gemm<double, float, float, WidenedKeys>(LaArgs<double>(a, 1, 0, R(a, 12), R(a, 13)), F(a, 3), F(a, 6), D(a, 9), D(a, 9));
                break;
            case "dgemm_tn": Gemm(LaArgs<double>(a, 1, 0, R(a, 12), R(a, 13)), D(a, 3), D(a, 6), D(a, 9), D(a, 9)); break;
            case "dgemm_nn": Gemm(LaArgs<double>(a, 0, 0, R(a, 12), R(a, 13)), D(a, 3), D(a, 6), D(a, 9), D(a, 9)); break;
            case "dgemm_nt": Gemm(LaArgs<double>(a, 0, 1, R(a, 12), R(a, 13)), D(a, 3), D(a, 6), D(a, 9), D(a, 9)); break;
            case "matvec":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, int, ArrayView<float>, ArrayView<float>>(GemmKernels.MatVec))(
                    (l = Ln(N(a, 0))).Count, l, N(a, 1), F(a, 2), N(a, 3), F(a, 4), F(a, 5));
                break;
            case "matvec_t":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, int, ArrayView<float>, ArrayView<float>>(GemmKernels.MatVecTransposed))(
                    (l = Ln(N(a, 1))).Count, l, N(a, 0), F(a, 2), N(a, 3), F(a, 4), F(a, 5));
                break;
            case "col_sum_acc":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>>(GemmKernels.ColumnSumAccumulate))(
                    (l = Ln(N(a, 1))).Count, l, N(a, 0), N(a, 1), F(a, 2), F(a, 3));
                break;
            case "rank_k_update":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, int, ArrayView<float>, int, ArrayView<float>, int>(GemmKernels.RankKUpdate))(
                    (l = Ln(N(a, 1), N(a, 0))).Count, l, N(a, 2), F(a, 3), N(a, 4), F(a, 5), N(a, 6), F(a, 7), N(a, 8));
                break;
            case "embed": Embed<float, AsStored<float>>(a, F(a, 3)); break;
            case "embed_bf16": Embed<ushort, BFloat16Weight>(a, U(a, 3)); break;
            case "embed_f16": Embed<ushort, Float16Weight>(a, U(a, 3)); break;
            case "embed_bwd":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<int>, ArrayView<float>, ArrayView<float>>(EmbeddingKernels.EmbedBackward))(
                    (l = Ln(N(a, 1))).Count, l, N(a, 0), N(a, 1), I(a, 2), F(a, 3), F(a, 4));
                break;
            case "layernorm":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, ArrayView<float>>(NormKernels.LayerNorm))(
                    (l = Ln(groups)).Count, l, N(a, 0), F(a, 1), F(a, 2), F(a, 3), N(a, 4), R(a, 5), F(a, 6));
                break;
            case "rmsnorm":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>, float, ArrayView<float>>(NormKernels.RmsNorm))(
                    (l = Ln(groups)).Count, l, N(a, 0), F(a, 1), F(a, 2), R(a, 3), F(a, 4));
                break;
            case "layernorm_bwd":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, ArrayView<float>, ArrayView<float>>(NormKernels.LayerNormBackward))(
                    (l = Ln(groups)).Count, l, N(a, 0), F(a, 1), F(a, 2), F(a, 3), R(a, 4), F(a, 5), F(a, 6));
                break;
            case "layernorm_bwd_params":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, ArrayView<float>, int>(NormKernels.LayerNormBackwardParams))(
                    (l = Ln(N(a, 1))).Count, l, N(a, 0), N(a, 1), F(a, 2), F(a, 3), F(a, 4), F(a, 5), N(a, 6), F(a, 7), N(a, 8));
                break;
            case "rmsnorm_bwd":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, ArrayView<float>, ArrayView<float>>(NormKernels.RmsNormBackward))(
                    (l = Ln(groups)).Count, l, N(a, 0), F(a, 1), F(a, 2), F(a, 3), R(a, 4), F(a, 5), F(a, 6));
                break;
            case "rmsnorm_bwd_params":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(NormKernels.RmsNormBackwardParams))(
                    (l = Ln(N(a, 1))).Count, l, N(a, 0), N(a, 1), F(a, 2), F(a, 3), F(a, 4), F(a, 5));
                break;
            case "activate":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>>(ElementwiseKernels.Activate))((l = Ln(a[0].Bits)).Count, l, N(a, 1), F(a, 2));
                break;
            case "activate_bwd":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.ActivateBackward))((l = Ln(a[0].Bits)).Count, l, N(a, 1), F(a, 2), F(a, 3));
                break;
            case "add":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.Add))((l = Ln(a[0].Bits)).Count, l, F(a, 1), F(a, 2));
                break;
            case "gated_act":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.GatedActivation))(
                    (l = Ln(N(a, 1), N(a, 0))).Count, l, N(a, 1), N(a, 2), F(a, 3), F(a, 4));
                break;
            case "gated_act_bwd":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ElementwiseKernels.GatedActivationBackward))(
                    (l = Ln(N(a, 1), N(a, 0))).Count, l, N(a, 1), N(a, 2), F(a, 3), F(a, 4), F(a, 5));
                break;
            case "rope": case "rope_bwd":
                K("rope", () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, int, int, int, float, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(RopeKernels.Rope))(
                    (l = Ln(N(a, 4), (long)N(a, 0) * N(a, 2))).Count, l, N(a, 1), N(a, 2), N(a, 3), N(a, 4), N(a, 5), kernel == "rope" ? 1f : -1f, I(a, 6), F(a, 7), F(a, 8), F(a, 9));
                break;
            case "kv_store":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(AttentionKernels.KvStore))(
                    (l = Ln(N(a, 3), N(a, 0))).Count, l, N(a, 1), N(a, 2), N(a, 3), N(a, 4), N(a, 5), N(a, 6), F(a, 7), F(a, 8), F(a, 9));
                break;
            case "attention":
            {
                var s = new AttentionArgs { Heads = N(a, 0), KvHeads = N(a, 1), HeadDim = N(a, 2), Cols = N(a, 3), NewTokens = N(a, 4), Past = N(a, 5), Capacity = N(a, 6), Scale = R(a, 11), Window = N(a, 12) };
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>>(AttentionKernels.Attention))(
                    (l = Ln(groups)).Count, l, s, F(a, 7), F(a, 8), F(a, 9), I(a, 10), F(a, 13));
                break;
            }
            case "attention_bwd_stats": case "attention_bwd_dq": case "attention_bwd_dkv":
            {
                int heads = N(a, 0), kvHeads = N(a, 1), headDim = N(a, 2);
                var s = new AttentionArgs { Heads = heads, KvHeads = kvHeads, HeadDim = headDim, Cols = (heads + 2 * kvHeads) * headDim, NewTokens = N(a, 3), Scale = R(a, 7), Window = N(a, 8) };
                if (kernel == "attention_bwd_stats")
                    K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>>(AttentionKernels.AttentionBackwardStats))(
                        (l = Ln(groups)).Count, l, s, F(a, 4), F(a, 5), I(a, 6), F(a, 9), F(a, 10));
                else
                    K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, AttentionArgs, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                        kernel == "attention_bwd_dq" ? AttentionKernels.AttentionBackwardDq : AttentionKernels.AttentionBackwardDkv))(
                        (l = Ln(groups)).Count, l, s, F(a, 4), F(a, 5), I(a, 6), F(a, 9), F(a, 10), F(a, 11));
                break;
            }
            case "log_softmax":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<float>, ArrayView<float>>(LossKernels.LogSoftmax))((l = Ln(groups)).Count, l, N(a, 0), F(a, 1), F(a, 2));
                break;
            case "xent_grad":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<int>, float, ArrayView<float>, ArrayView<float>>(LossKernels.CrossEntropyBackward))(
                    (l = Ln(groups)).Count, l, N(a, 0), N(a, 1), F(a, 2), I(a, 3), R(a, 4), F(a, 5), F(a, 6));
                break;
            case "kl_grad":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, ArrayView<float>, ArrayView<float>, float, ArrayView<float>, ArrayView<float>>(LossKernels.KlBackward))(
                    (l = Ln(groups)).Count, l, N(a, 0), N(a, 1), F(a, 2), F(a, 3), R(a, 4), F(a, 5), F(a, 6));
                break;
            case "chol_diag_f64":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, ArrayView<double>, ArrayView<double>>(CholeskyKernels.DiagonalBlock))(
                    1, N(a, 0), N(a, 1), N(a, 2), D(a, 3), D(a, 4));
                break;
            case "chol_panel_f64":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, int, ArrayView<double>>(CholeskyKernels.Panel))(
                    (l = Ln(N(a, 0) - N(a, 1) - N(a, 2))).Count, l, N(a, 0), N(a, 1), N(a, 2), D(a, 3));
                break;
            case "trsm_fwd_f64": case "trsm_bwd_f64":
                K(kernel, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, int, int, ArrayView<double>, ArrayView<double>>(
                    kernel == "trsm_fwd_f64" ? CholeskyKernels.SolveForward : CholeskyKernels.SolveBackward))(
                    (l = Ln(N(a, 0))).Count, l, N(a, 1), N(a, 2), N(a, 3), D(a, 4), D(a, 5));
                break;
            default: throw new ArgumentException($"unknown kernel {kernel}");
        }
    }

    /// <summary>The embedding lookup (rows, d, ids, table, positions, position table, has positions, x) from a table stored as TT.</summary>
    void Embed<TT, TLoad>(ReadOnlySpan<KernelArg> a, ArrayView<TT> table) where TT : unmanaged where TLoad : struct, IOperands<float, TT, float>
    {
        var l = Ln(N(a, 1), N(a, 0));
        K("embed_" + typeof(TLoad).Name, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, int, ArrayView<int>, ArrayView<TT>, ArrayView<int>, ArrayView<float>, int, ArrayView<float>>(
            EmbeddingKernels.Embed<TT, TLoad>))(l.Count, l, N(a, 1), I(a, 2), table, I(a, 4), F(a, 5), N(a, 6), F(a, 7));
    }

    /// <summary>The linear-algebra product's arguments (m, n, k, a, offA, lda, b, offB, ldb, c, offC, ldc, alpha, beta, triangle).</summary>
    static GemmArgs<T> LaArgs<T>(ReadOnlySpan<KernelArg> a, int transA, int transB, float alpha, float beta) where T : unmanaged, System.Numerics.INumber<T> => new()
    {
        M = N(a, 0), N = N(a, 1), K = N(a, 2), OffA = a[4].Bits, Lda = N(a, 5), OffB = a[7].Bits, Ldb = N(a, 8), OffC = a[10].Bits, Ldc = N(a, 11),
        Alpha = T.CreateChecked(alpha), Beta = T.CreateChecked(beta), Tri = N(a, 14), TransA = transA, TransB = transB,
    };

    /// <summary>The tiled kernel on GPUs; on the CPU accelerator, where barriers are slow, a grid-stride loop over the elements (same sums).</summary>
    void Gemm<T>(GemmArgs<T> s, ArrayView<T> a, ArrayView<T> b, ArrayView<T> c, ArrayView<T> bias) where T : unmanaged, System.Numerics.INumber<T> =>
        Gemm<T, T, T, AsStored<T>>(s, a, b, c, bias);

    void Gemm<T, TA, TB, TLoad>(GemmArgs<T> s, ArrayView<TA> a, ArrayView<TB> b, ArrayView<T> c, ArrayView<T> bias)
        where T : unmanaged, System.Numerics.INumber<T> where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T>
    {
        if (s.M == 0 || s.N == 0) return;
        string name = $"{typeof(T).Name}_{typeof(TLoad).Name}";
        if (IsHostCpu)
        {
            var l = Ln(s.N, s.M);
            K("gemm_" + name, () => _acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, GemmArgs<T>, ArrayView<TA>, ArrayView<TB>, ArrayView<T>, ArrayView<T>>(GemmKernels.Gemm<T, TA, TB, TLoad>))(
                l.Count, l, s, a, b, c, bias);
        }
        else
            K("tiled_gemm_" + name, () => TiledGemmLaunch.Load<T, TA, TB, TLoad>(_acc))(TiledGemmLaunch.Config<T>(s.M, s.N, TiledGemmLaunch.GpuTile), s, a, b, c, bias);
    }
}
