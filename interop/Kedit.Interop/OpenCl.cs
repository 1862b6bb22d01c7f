using System.Runtime.InteropServices;
using System.Text;

namespace Kedit.Interop;

/// <summary>An OpenCL call failed; the message names the call and the CL_* status.</summary>
public sealed class OpenClException : NativeCallException
{
    public OpenClException(string call, int status, string? detail = null)
        : base("OpenCL", call, status, OpenCl.StatusName(status), detail) { }
}

/// <summary>One OpenCL device as enumerated across all platforms (the index is what KEDIT_OPENCL_DEVICE selects).</summary>
public sealed record OpenClDeviceInfo(int Index, IntPtr Platform, IntPtr Device, string PlatformName, string Name, ulong Type,
    ulong GlobalMemory, ulong MaxAllocation, ulong LocalMemory, nuint MaxWorkGroupSize, uint ComputeUnits)
{
    public bool IsGpu => (Type & OpenCl.DeviceTypeGpu) != 0;
    public string Kind => IsGpu ? "GPU" : (Type & OpenCl.DeviceTypeCpu) != 0 ? "CPU" : "accelerator";
    public override string ToString() => $"#{Index} {Name} ({Kind}, {PlatformName}, {GlobalMemory / 1048576} MiB)";
}

/// <summary>
/// Hand-written bindings to the OpenCL 1.2 ICD loader (libOpenCL.so.1), resolved lazily on first use.
/// Every wrapper checks the returned status and throws <see cref="OpenClException"/> naming the call.
/// </summary>
public static unsafe class OpenCl
{
    public const ulong DeviceTypeCpu = 1 << 1, DeviceTypeGpu = 1 << 2, DeviceTypeAll = 0xFFFFFFFF;
    public const ulong MemReadWrite = 1;
    const int PlatformNotFoundKhr = -1001;
    const uint PlatformName_ = 0x0902;
    const uint DeviceType_ = 0x1000, DeviceMaxComputeUnits = 0x1002, DeviceMaxWorkGroupSize = 0x1004, DeviceMaxMemAllocSize = 0x1010,
        DeviceGlobalMemSize = 0x101F, DeviceLocalMemSize = 0x1023, DeviceName_ = 0x102B;
    const uint ProgramBuildLog = 0x1183;

    static readonly string[] LibraryNames = OperatingSystem.IsWindows() ? new[] { "OpenCL.dll" }
        : OperatingSystem.IsMacOS() ? new[] { "/System/Library/Frameworks/OpenCL.framework/OpenCL" }
        : new[] { "libOpenCL.so.1", "libOpenCL.so" };

    static readonly LazyApi<Api> s_lazy = new(LoadApi);

    sealed class Api
    {
        public delegate* unmanaged<uint, IntPtr*, uint*, int> GetPlatformIDs;
        public delegate* unmanaged<IntPtr, uint, nuint, void*, nuint*, int> GetPlatformInfo;
        public delegate* unmanaged<IntPtr, ulong, uint, IntPtr*, uint*, int> GetDeviceIDs;
        public delegate* unmanaged<IntPtr, uint, nuint, void*, nuint*, int> GetDeviceInfo;
        public delegate* unmanaged<IntPtr*, uint, IntPtr*, IntPtr, IntPtr, int*, IntPtr> CreateContext;
        public delegate* unmanaged<IntPtr, IntPtr, ulong, int*, IntPtr> CreateCommandQueue;
        public delegate* unmanaged<IntPtr, ulong, nuint, void*, int*, IntPtr> CreateBuffer;
        public delegate* unmanaged<IntPtr, int> ReleaseMemObject;
        public delegate* unmanaged<IntPtr, IntPtr, uint, nuint, nuint, void*, uint, IntPtr*, IntPtr*, int> EnqueueWriteBuffer;
        public delegate* unmanaged<IntPtr, IntPtr, uint, nuint, nuint, void*, uint, IntPtr*, IntPtr*, int> EnqueueReadBuffer;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, nuint, nuint, nuint, uint, IntPtr*, IntPtr*, int> EnqueueCopyBuffer;
        public delegate* unmanaged<IntPtr, uint, byte**, nuint*, int*, IntPtr> CreateProgramWithSource;
        public delegate* unmanaged<IntPtr, uint, IntPtr*, byte*, IntPtr, IntPtr, int> BuildProgram;
        public delegate* unmanaged<IntPtr, IntPtr, uint, nuint, void*, nuint*, int> GetProgramBuildInfo;
        public delegate* unmanaged<IntPtr, byte*, int*, IntPtr> CreateKernel;
        public delegate* unmanaged<IntPtr, uint, nuint, void*, int> SetKernelArg;
        public delegate* unmanaged<IntPtr, IntPtr, uint, nuint*, nuint*, nuint*, uint, IntPtr*, IntPtr*, int> EnqueueNDRangeKernel;
        public delegate* unmanaged<IntPtr, int> Finish;
        public delegate* unmanaged<IntPtr, int> ReleaseKernel;
        public delegate* unmanaged<IntPtr, int> ReleaseProgram;
        public delegate* unmanaged<IntPtr, int> ReleaseCommandQueue;
        public delegate* unmanaged<IntPtr, int> ReleaseContext;
    }

    /// <summary>True when the ICD loader can be loaded; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsLoaderAvailable(out string reason) => s_lazy.IsAvailable(out reason);

    static Api A => s_lazy.Value;

    static Api LoadApi()
    {
        if (!NativeLibraryLoader.TryLoad(LibraryNames, out var lib))
            throw new NativeLibraryMissingException($"the OpenCL ICD loader could not be loaded (tried {string.Join(", ", LibraryNames)}); install an OpenCL runtime, e.g. apt-get install ocl-icd-libopencl1 pocl-opencl-icd");
        {
            IntPtr F(string name) => NativeLibraryLoader.Export(lib, "libOpenCL", name);
            return new Api
            {
                GetPlatformIDs = (delegate* unmanaged<uint, IntPtr*, uint*, int>)F("clGetPlatformIDs"),
                GetPlatformInfo = (delegate* unmanaged<IntPtr, uint, nuint, void*, nuint*, int>)F("clGetPlatformInfo"),
                GetDeviceIDs = (delegate* unmanaged<IntPtr, ulong, uint, IntPtr*, uint*, int>)F("clGetDeviceIDs"),
                GetDeviceInfo = (delegate* unmanaged<IntPtr, uint, nuint, void*, nuint*, int>)F("clGetDeviceInfo"),
                CreateContext = (delegate* unmanaged<IntPtr*, uint, IntPtr*, IntPtr, IntPtr, int*, IntPtr>)F("clCreateContext"),
                CreateCommandQueue = (delegate* unmanaged<IntPtr, IntPtr, ulong, int*, IntPtr>)F("clCreateCommandQueue"),
                CreateBuffer = (delegate* unmanaged<IntPtr, ulong, nuint, void*, int*, IntPtr>)F("clCreateBuffer"),
                ReleaseMemObject = (delegate* unmanaged<IntPtr, int>)F("clReleaseMemObject"),
                EnqueueWriteBuffer = (delegate* unmanaged<IntPtr, IntPtr, uint, nuint, nuint, void*, uint, IntPtr*, IntPtr*, int>)F("clEnqueueWriteBuffer"),
                EnqueueReadBuffer = (delegate* unmanaged<IntPtr, IntPtr, uint, nuint, nuint, void*, uint, IntPtr*, IntPtr*, int>)F("clEnqueueReadBuffer"),
                EnqueueCopyBuffer = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, nuint, nuint, nuint, uint, IntPtr*, IntPtr*, int>)F("clEnqueueCopyBuffer"),
                CreateProgramWithSource = (delegate* unmanaged<IntPtr, uint, byte**, nuint*, int*, IntPtr>)F("clCreateProgramWithSource"),
                BuildProgram = (delegate* unmanaged<IntPtr, uint, IntPtr*, byte*, IntPtr, IntPtr, int>)F("clBuildProgram"),
                GetProgramBuildInfo = (delegate* unmanaged<IntPtr, IntPtr, uint, nuint, void*, nuint*, int>)F("clGetProgramBuildInfo"),
                CreateKernel = (delegate* unmanaged<IntPtr, byte*, int*, IntPtr>)F("clCreateKernel"),
                SetKernelArg = (delegate* unmanaged<IntPtr, uint, nuint, void*, int>)F("clSetKernelArg"),
                EnqueueNDRangeKernel = (delegate* unmanaged<IntPtr, IntPtr, uint, nuint*, nuint*, nuint*, uint, IntPtr*, IntPtr*, int>)F("clEnqueueNDRangeKernel"),
                Finish = (delegate* unmanaged<IntPtr, int>)F("clFinish"),
                ReleaseKernel = (delegate* unmanaged<IntPtr, int>)F("clReleaseKernel"),
                ReleaseProgram = (delegate* unmanaged<IntPtr, int>)F("clReleaseProgram"),
                ReleaseCommandQueue = (delegate* unmanaged<IntPtr, int>)F("clReleaseCommandQueue"),
                ReleaseContext = (delegate* unmanaged<IntPtr, int>)F("clReleaseContext"),
            };
        }
    }

    static void Check(int status, string call, string? detail = null)
    {
        if (status != 0) throw new OpenClException(call, status, detail);
    }

    static IReadOnlyList<OpenClDeviceInfo>? s_devices;
    static readonly object DeviceGate = new();

    /// <summary>
    /// Every device of every platform, in platform order; empty when no platform is installed. Discovered
    /// once per process under a lock (ICD loaders initialise their platform list lazily, not always thread-safely).
    /// </summary>
    public static IReadOnlyList<OpenClDeviceInfo> ListDevices()
    {
        lock (DeviceGate) return s_devices ??= DiscoverDevices();
    }

    static IReadOnlyList<OpenClDeviceInfo> DiscoverDevices()
    {
        var api = A;
        uint nPlatforms;
        int st = api.GetPlatformIDs(0, null, &nPlatforms);
        if (st == PlatformNotFoundKhr || (st == 0 && nPlatforms == 0)) return Array.Empty<OpenClDeviceInfo>();
        Check(st, "clGetPlatformIDs");
        var platforms = new IntPtr[nPlatforms];
        fixed (IntPtr* p = platforms) Check(api.GetPlatformIDs(nPlatforms, p, null), "clGetPlatformIDs");
        var result = new List<OpenClDeviceInfo>();
        foreach (var platform in platforms)
        {
            string pname = PlatformString(platform, PlatformName_);
            uint nDevices;
            st = api.GetDeviceIDs(platform, DeviceTypeAll, 0, null, &nDevices);
            if (st == -1 /* CL_DEVICE_NOT_FOUND */ || nDevices == 0) continue;
            Check(st, "clGetDeviceIDs");
            var devices = new IntPtr[nDevices];
            fixed (IntPtr* d = devices) Check(api.GetDeviceIDs(platform, DeviceTypeAll, nDevices, d, null), "clGetDeviceIDs");
            foreach (var dev in devices)
                result.Add(new OpenClDeviceInfo(result.Count, platform, dev, pname, DeviceString(dev, DeviceName_),
                    DeviceValue<ulong>(dev, DeviceType_), DeviceValue<ulong>(dev, DeviceGlobalMemSize), DeviceValue<ulong>(dev, DeviceMaxMemAllocSize),
                    DeviceValue<ulong>(dev, DeviceLocalMemSize), DeviceValue<nuint>(dev, DeviceMaxWorkGroupSize), DeviceValue<uint>(dev, DeviceMaxComputeUnits)));
        }
        return result;
    }

    static string PlatformString(IntPtr platform, uint param)
    {
        nuint size;
        Check(A.GetPlatformInfo(platform, param, 0, null, &size), "clGetPlatformInfo");
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Check(A.GetPlatformInfo(platform, param, size, b, null), "clGetPlatformInfo");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0').Trim();
    }

    static string DeviceString(IntPtr device, uint param)
    {
        nuint size;
        Check(A.GetDeviceInfo(device, param, 0, null, &size), "clGetDeviceInfo");
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Check(A.GetDeviceInfo(device, param, size, b, null), "clGetDeviceInfo");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0').Trim();
    }

    static T DeviceValue<T>(IntPtr device, uint param) where T : unmanaged
    {
        T value = default;
        Check(A.GetDeviceInfo(device, param, (nuint)sizeof(T), &value, null), "clGetDeviceInfo");
        return value;
    }

    public static IntPtr CreateContext(IntPtr device)
    {
        int st;
        var ctx = A.CreateContext(null, 1, &device, IntPtr.Zero, IntPtr.Zero, &st);
        Check(st, "clCreateContext");
        return ctx;
    }

    public static IntPtr CreateCommandQueue(IntPtr context, IntPtr device)
    {
        int st;
        var q = A.CreateCommandQueue(context, device, 0, &st);
        Check(st, "clCreateCommandQueue");
        return q;
    }

    public static IntPtr CreateBuffer(IntPtr context, long bytes)
    {
        int st;
        var mem = A.CreateBuffer(context, MemReadWrite, (nuint)bytes, null, &st);
        Check(st, "clCreateBuffer", $"{bytes} bytes");
        return mem;
    }

    /// <summary>Releases a buffer; returns the status instead of throwing (used from finalizers).</summary>
    public static int ReleaseMemObject(IntPtr mem) => A.ReleaseMemObject(mem);

    public static void WriteBuffer(IntPtr queue, IntPtr mem, long offset, long bytes, void* source)
        => Check(A.EnqueueWriteBuffer(queue, mem, 1, (nuint)offset, (nuint)bytes, source, 0, null, null), "clEnqueueWriteBuffer");

    public static void ReadBuffer(IntPtr queue, IntPtr mem, long offset, long bytes, void* destination)
        => Check(A.EnqueueReadBuffer(queue, mem, 1, (nuint)offset, (nuint)bytes, destination, 0, null, null), "clEnqueueReadBuffer");

    public static void CopyBuffer(IntPtr queue, IntPtr source, IntPtr destination, long sourceOffset, long destinationOffset, long bytes)
        => Check(A.EnqueueCopyBuffer(queue, source, destination, (nuint)sourceOffset, (nuint)destinationOffset, (nuint)bytes, 0, null, null), "clEnqueueCopyBuffer");

    /// <summary>Creates and builds a program from source; a failed build throws with the compiler log.</summary>
    public static IntPtr BuildProgram(IntPtr context, IntPtr device, string source, string options)
    {
        var src = Encoding.UTF8.GetBytes(source);
        var opts = Encoding.UTF8.GetBytes(options + "\0");
        int st;
        IntPtr program;
        fixed (byte* s = src)
        {
            byte* strings = s;
            nuint length = (nuint)src.Length;
            program = A.CreateProgramWithSource(context, 1, &strings, &length, &st);
        }
        Check(st, "clCreateProgramWithSource");
        fixed (byte* o = opts) st = A.BuildProgram(program, 1, &device, o, IntPtr.Zero, IntPtr.Zero);
        if (st != 0)
        {
            string log = BuildLog(program, device);
            A.ReleaseProgram(program);
            throw new OpenClException("clBuildProgram", st, "compiler log:\n" + log);
        }
        return program;
    }

    static string BuildLog(IntPtr program, IntPtr device)
    {
        nuint size;
        if (A.GetProgramBuildInfo(program, device, ProgramBuildLog, 0, null, &size) != 0) return "(no build log)";
        var buf = new byte[(int)size];
        fixed (byte* b = buf) if (A.GetProgramBuildInfo(program, device, ProgramBuildLog, size, b, null) != 0) return "(no build log)";
        return Encoding.UTF8.GetString(buf).TrimEnd('\0');
    }

    public static IntPtr CreateKernel(IntPtr program, string name)
    {
        var n = Encoding.ASCII.GetBytes(name + "\0");
        int st;
        IntPtr k;
        fixed (byte* p = n) k = A.CreateKernel(program, p, &st);
        Check(st, "clCreateKernel", name);
        return k;
    }

    public static void SetKernelArg(IntPtr kernel, uint index, nuint size, void* value, string kernelName)
    {
        int st = A.SetKernelArg(kernel, index, size, value);
        if (st != 0) Check(st, "clSetKernelArg", $"{kernelName} argument {index}");
    }

    /// <summary>Enqueues an NDRange; global sizes are in work-items and must be multiples of the local sizes.</summary>
    public static void EnqueueNDRange(IntPtr queue, IntPtr kernel, uint dims, nuint* global, nuint* local, string kernelName)
    {
        int st = A.EnqueueNDRangeKernel(queue, kernel, dims, null, global, local, 0, null, null);
        if (st != 0) Check(st, "clEnqueueNDRangeKernel", kernelName);
    }

    public static void Finish(IntPtr queue) => Check(A.Finish(queue), "clFinish");
    public static void ReleaseKernel(IntPtr kernel) => Check(A.ReleaseKernel(kernel), "clReleaseKernel");
    public static void ReleaseProgram(IntPtr program) => Check(A.ReleaseProgram(program), "clReleaseProgram");
    public static void ReleaseCommandQueue(IntPtr queue) => Check(A.ReleaseCommandQueue(queue), "clReleaseCommandQueue");
    public static void ReleaseContext(IntPtr context) => Check(A.ReleaseContext(context), "clReleaseContext");

    /// <summary>The CL_* name of an OpenCL status code.</summary>
    public static string StatusName(int status) => status switch
    {
        0 => "CL_SUCCESS",
        -1 => "CL_DEVICE_NOT_FOUND", -2 => "CL_DEVICE_NOT_AVAILABLE", -3 => "CL_COMPILER_NOT_AVAILABLE",
        -4 => "CL_MEM_OBJECT_ALLOCATION_FAILURE", -5 => "CL_OUT_OF_RESOURCES", -6 => "CL_OUT_OF_HOST_MEMORY",
        -7 => "CL_PROFILING_INFO_NOT_AVAILABLE", -8 => "CL_MEM_COPY_OVERLAP", -9 => "CL_IMAGE_FORMAT_MISMATCH",
        -10 => "CL_IMAGE_FORMAT_NOT_SUPPORTED", -11 => "CL_BUILD_PROGRAM_FAILURE", -12 => "CL_MAP_FAILURE",
        -13 => "CL_MISALIGNED_SUB_BUFFER_OFFSET", -14 => "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15 => "CL_COMPILE_PROGRAM_FAILURE", -16 => "CL_LINKER_NOT_AVAILABLE", -17 => "CL_LINK_PROGRAM_FAILURE",
        -18 => "CL_DEVICE_PARTITION_FAILED", -19 => "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30 => "CL_INVALID_VALUE", -31 => "CL_INVALID_DEVICE_TYPE", -32 => "CL_INVALID_PLATFORM", -33 => "CL_INVALID_DEVICE",
        -34 => "CL_INVALID_CONTEXT", -35 => "CL_INVALID_QUEUE_PROPERTIES", -36 => "CL_INVALID_COMMAND_QUEUE",
        -37 => "CL_INVALID_HOST_PTR", -38 => "CL_INVALID_MEM_OBJECT", -39 => "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40 => "CL_INVALID_IMAGE_SIZE", -41 => "CL_INVALID_SAMPLER", -42 => "CL_INVALID_BINARY", -43 => "CL_INVALID_BUILD_OPTIONS",
        -44 => "CL_INVALID_PROGRAM", -45 => "CL_INVALID_PROGRAM_EXECUTABLE", -46 => "CL_INVALID_KERNEL_NAME",
        -47 => "CL_INVALID_KERNEL_DEFINITION", -48 => "CL_INVALID_KERNEL", -49 => "CL_INVALID_ARG_INDEX",
        -50 => "CL_INVALID_ARG_VALUE", -51 => "CL_INVALID_ARG_SIZE", -52 => "CL_INVALID_KERNEL_ARGS",
        -53 => "CL_INVALID_WORK_DIMENSION", -54 => "CL_INVALID_WORK_GROUP_SIZE", -55 => "CL_INVALID_WORK_ITEM_SIZE",
        -56 => "CL_INVALID_GLOBAL_OFFSET", -57 => "CL_INVALID_EVENT_WAIT_LIST", -58 => "CL_INVALID_EVENT",
        -59 => "CL_INVALID_OPERATION", -60 => "CL_INVALID_GL_OBJECT", -61 => "CL_INVALID_BUFFER_SIZE",
        -62 => "CL_INVALID_MIP_LEVEL", -63 => "CL_INVALID_GLOBAL_WORK_SIZE", -64 => "CL_INVALID_PROPERTY",
        -1001 => "CL_PLATFORM_NOT_FOUND_KHR",
        _ => "unknown OpenCL status",
    };
}
