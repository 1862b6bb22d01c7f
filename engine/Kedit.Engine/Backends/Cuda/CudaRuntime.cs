using Kedit.Interop;
using Kedit.Kernels.Device;

namespace Kedit.Backends;

/// <summary>
/// CUDA host side, kept thin: the device's primary context, one module compiled by NVRTC from the same
/// kernel sources as OpenCL (CUDA dialect header), default-stream launches and synchronous copies.
/// </summary>
internal sealed unsafe class CudaRuntime : DeviceRuntime
{
    static readonly object s_gate = new();
    static readonly Dictionary<int, CudaRuntime> s_byOrdinal = new();

    readonly IntPtr _context;
    readonly Dictionary<string, IntPtr> _functions = new();

    /// <summary>The environment variable that picks a CUDA device by ordinal (default 0).</summary>
    public const string DeviceVariable = "KEDIT_CUDA_DEVICE";

    CudaRuntime(int ordinal)
    {
        int device = CudaDriver.DeviceGet(ordinal);
        int major = CudaDriver.DeviceAttribute(device, CudaDriver.AttributeComputeCapabilityMajor);
        int minor = CudaDriver.DeviceAttribute(device, CudaDriver.AttributeComputeCapabilityMinor);
        DeviceName = $"CUDA device #{ordinal} {CudaDriver.DeviceName(device)} (sm_{major}{minor}, {CudaDriver.DeviceTotalMemory(device) / 1048576} MiB)";
        _context = CudaDriver.PrimaryContextRetain(device);
        CudaDriver.SetCurrent(_context);
        // PTX for the device's virtual architecture; the driver JIT-compiles it for the real one.
        _architecture = $"--gpu-architecture=compute_{major}{minor}";
        var ptx = Nvrtc.CompileToPtx(DeviceKernelSources.Program(DeviceDialect.Cuda, ReduceWorkGroup), "kedit_kernels.cu", new[] { _architecture });
        var module = CudaDriver.ModuleLoadData(ptx);
        foreach (var name in DeviceKernelSources.KernelNames) _functions[name] = CudaDriver.ModuleGetFunction(module, name);
    }

    public override string DeviceName { get; }
    public override int ReduceWorkGroup => 256;
    readonly string _architecture = "";

    /// <summary>The shared runtime of device <see cref="DeviceVariable"/> (default 0).</summary>
    public static CudaRuntime Get()
    {
        if (!CudaDriver.IsAvailable(out var why)) throw new DeviceException($"CUDA is not available on this machine: {why}");
        if (!Nvrtc.IsAvailable(out var whyNvrtc)) throw new DeviceException($"CUDA kernels cannot be compiled on this machine: {whyNvrtc}");
        try
        {
            CudaDriver.Init();
            int count = CudaDriver.DeviceCount();
            if (count == 0) throw new DeviceException("CUDA is not available on this machine: the driver reports no CUDA device");
            int ordinal = 0;
            string? requested = Environment.GetEnvironmentVariable(DeviceVariable);
            if (!string.IsNullOrWhiteSpace(requested) && (!int.TryParse(requested, out ordinal) || ordinal < 0 || ordinal >= count))
                throw new DeviceException($"{DeviceVariable}={requested} does not name a CUDA device (this machine has {count})");
            lock (s_gate)
            {
                if (!s_byOrdinal.TryGetValue(ordinal, out var rt)) s_byOrdinal[ordinal] = rt = new CudaRuntime(ordinal);
                return rt;
            }
        }
        catch (NativeCallException e) { throw new DeviceException($"CUDA setup failed: {e.Message}", e); }
    }

    void MakeCurrent() => CudaDriver.SetCurrent(_context);

    protected override long AllocateHandle(long bytes) { MakeCurrent(); return (long)CudaDriver.MemAlloc(bytes); }

    public override void Free(long handle)
    {
        // Kernels queued on the default stream may still read the buffer: wait for them before freeing.
        try { MakeCurrent(); CudaDriver.Synchronize(); } catch (NativeCallException) { }
        CudaDriver.MemFree((ulong)handle);
    }

    protected override void WriteCore(long handle, long offset, void* source, long bytes) { MakeCurrent(); CudaDriver.CopyHostToDevice((ulong)(handle + offset), source, bytes); }
    protected override void ReadCore(long handle, long offset, void* destination, long bytes) { MakeCurrent(); CudaDriver.CopyDeviceToHost(destination, (ulong)(handle + offset), bytes); }
    protected override void CopyCore(long source, long destination, long bytes) { MakeCurrent(); CudaDriver.CopyDeviceToDevice((ulong)destination, (ulong)source, bytes); }
    protected override void SynchronizeCore() { MakeCurrent(); CudaDriver.Synchronize(); }

    protected override void AddProgramCore(string source, IReadOnlyList<string> kernelNames)
    {
        MakeCurrent();
        var module = CudaDriver.ModuleLoadData(Nvrtc.CompileToPtx(source, "kedit_extra.cu", new[] { _architecture }));
        var created = kernelNames.ToDictionary(n => n, n => CudaDriver.ModuleGetFunction(module, n));
        lock (_functions) foreach (var kv in created) _functions[kv.Key] = kv.Value;
    }

    protected override void LaunchCore(string kernel, int groupsX, int groupsY, int localX, int localY, ReadOnlySpan<KernelArg> args)
    {
        IntPtr f;
        // Programs added later register functions under this lock.
        lock (_functions) if (!_functions.TryGetValue(kernel, out f)) throw new ArgumentException($"unknown kernel {kernel}");
        MakeCurrent();
        // One 8-byte slot per argument; cuLaunchKernel reads each parameter's size from the kernel's signature.
        long* slots = stackalloc long[args.Length];
        void** parameters = stackalloc void*[args.Length];
        for (int i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (a.Kind == KernelArg.ArgKind.Buffer) slots[i] = a.Buffer!.Handle;
            else if (a.Kind == KernelArg.ArgKind.Int64) slots[i] = a.Bits;
            else *(int*)&slots[i] = (int)a.Bits;
            parameters[i] = &slots[i];
        }
        CudaDriver.LaunchKernel(f, (uint)groupsX, (uint)groupsY, (uint)localX, (uint)localY, parameters, kernel);
    }
}
