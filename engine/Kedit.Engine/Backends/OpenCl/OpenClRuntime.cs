using Kedit.Interop;
using Kedit.Kernels.Device;

namespace Kedit.Backends;

/// <summary>
/// OpenCL host side: a context and in-order queue on one device, and the kernel program built once
/// (PoCL compiles at build time, so the program is cached per device for the whole process).
/// </summary>
internal sealed unsafe class OpenClRuntime : DeviceRuntime
{
    static readonly object s_gate = new();
    static readonly Dictionary<int, OpenClRuntime> s_byDevice = new();

    readonly IntPtr _context, _queue, _program;
    readonly Dictionary<string, IntPtr> _kernels = new();
    readonly object _launchGate = new();

    OpenClRuntime(OpenClDeviceInfo info, int reduceWorkGroup)
    {
        Info = info;
        ReduceWorkGroup = reduceWorkGroup;
        DeviceName = $"OpenCL device {info}";
        _context = OpenCl.CreateContext(info.Device);
        _queue = OpenCl.CreateCommandQueue(_context, info.Device);
        _program = OpenCl.BuildProgram(_context, info.Device, DeviceKernelSources.Program(reduceWorkGroup), "-cl-std=CL1.2");
        foreach (var name in DeviceKernelSources.KernelNames) _kernels[name] = OpenCl.CreateKernel(_program, name);
    }

    public OpenClDeviceInfo Info { get; }
    public override string DeviceName { get; }
    public override int ReduceWorkGroup { get; }
    public override bool PrefersSerialReductions => !Info.IsGpu;
    public override bool IsHostCpu => (Info.Type & OpenCl.DeviceTypeCpu) != 0;

    /// <summary>The environment variable that picks a device by its index in <see cref="OpenCl.ListDevices"/>.</summary>
    public const string DeviceVariable = "KEDIT_OPENCL_DEVICE";

    /// <summary>
    /// The shared runtime of the chosen device: <see cref="DeviceVariable"/> when set, else the first GPU,
    /// else the first device (a CPU device such as PoCL).
    /// </summary>
    public static OpenClRuntime Get()
    {
        if (!OpenCl.IsLoaderAvailable(out var why))
            throw new DeviceException($"OpenCL is not available on this machine: {why}");
        IReadOnlyList<OpenClDeviceInfo> devices;
        try { devices = OpenCl.ListDevices(); }
        catch (NativeCallException e) { throw new DeviceException($"OpenCL device discovery failed: {e.Message}", e); }
        if (devices.Count == 0)
            throw new DeviceException("OpenCL is not available on this machine: the ICD loader found no OpenCL platform with a device (install a driver, e.g. apt-get install pocl-opencl-icd)");

        OpenClDeviceInfo chosen;
        string? requested = Environment.GetEnvironmentVariable(DeviceVariable);
        if (!string.IsNullOrWhiteSpace(requested))
        {
            if (!int.TryParse(requested, out int index) || index < 0 || index >= devices.Count)
                throw new DeviceException($"{DeviceVariable}={requested} does not name an OpenCL device; available: {string.Join("; ", devices)}");
            chosen = devices[index];
        }
        else chosen = devices.FirstOrDefault(d => d.IsGpu) ?? devices[0];

        lock (s_gate)
        {
            if (s_byDevice.TryGetValue(chosen.Index, out var existing)) return existing;
            if (chosen.MaxWorkGroupSize < 256)
                throw new DeviceException($"OpenCL device {chosen} allows work-groups of {chosen.MaxWorkGroupSize} work-items; the kernels need 256");
            try
            {
                var rt = new OpenClRuntime(chosen, 256);
                s_byDevice[chosen.Index] = rt;
                return rt;
            }
            catch (NativeCallException e) { throw new DeviceException($"OpenCL device {chosen}: setup failed: {e.Message}", e); }
        }
    }

    protected override long AllocateHandle(long bytes) => OpenCl.CreateBuffer(_context, bytes);

    public override void Free(long handle)
    {
        // Commands already queued keep the buffer alive until they finish (OpenCL reference counting).
        OpenCl.ReleaseMemObject((IntPtr)handle);
    }

    protected override void WriteCore(long handle, long offset, void* source, long bytes) => OpenCl.WriteBuffer(_queue, (IntPtr)handle, offset, bytes, source);
    protected override void ReadCore(long handle, long offset, void* destination, long bytes) => OpenCl.ReadBuffer(_queue, (IntPtr)handle, offset, bytes, destination);
    protected override void CopyCore(long source, long destination, long bytes) => OpenCl.CopyBuffer(_queue, (IntPtr)source, (IntPtr)destination, 0, 0, bytes);
    protected override void SynchronizeCore() => OpenCl.Finish(_queue);

    protected override void LoadFloat64Core()
    {
        var program = OpenCl.BuildProgram(_context, Info.Device, DeviceKernelSources.Float64Program(), "-cl-std=CL1.2");
        var created = DeviceKernelSources.Float64KernelNames.ToDictionary(n => n, n => OpenCl.CreateKernel(program, n));
        // Launches look kernels up under the same lock.
        lock (_launchGate) foreach (var kv in created) _kernels[kv.Key] = kv.Value;
    }

    protected override void LaunchCore(string kernel, int groupsX, int groupsY, int localX, int localY, ReadOnlySpan<KernelArg> args)
    {
        // Arguments live on the kernel object: setting them and enqueueing must not interleave between threads.
        lock (_launchGate)
        {
            if (!_kernels.TryGetValue(kernel, out var k)) throw new ArgumentException($"unknown kernel {kernel}");
            for (int i = 0; i < args.Length; i++)
            {
                var a = args[i];
                switch (a.Kind)
                {
                    case KernelArg.ArgKind.Buffer:
                        IntPtr mem = (IntPtr)a.Buffer!.Handle;
                        OpenCl.SetKernelArg(k, (uint)i, (nuint)sizeof(IntPtr), &mem, kernel);
                        break;
                    case KernelArg.ArgKind.Int64:
                        long l = a.Bits;
                        OpenCl.SetKernelArg(k, (uint)i, 8, &l, kernel);
                        break;
                    default:
                        int v = (int)a.Bits;
                        OpenCl.SetKernelArg(k, (uint)i, 4, &v, kernel);
                        break;
                }
            }
            nuint* global = stackalloc nuint[2] { (nuint)((long)groupsX * localX), (nuint)((long)groupsY * localY) };
            nuint* local = stackalloc nuint[2] { (nuint)localX, (nuint)localY };
            OpenCl.EnqueueNDRange(_queue, k, 2, global, local, kernel);
        }
    }
}
