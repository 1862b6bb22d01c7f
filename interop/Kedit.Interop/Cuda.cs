using System.Runtime.InteropServices;
using System.Text;

namespace Kedit.Interop;

/// <summary>A CUDA driver API call failed; the message names the call and the CUDA_ERROR_* status.</summary>
public sealed class CudaException : NativeCallException
{
    public CudaException(string call, int status, string? detail = null)
        : base("CUDA driver", call, status, CudaDriver.StatusName(status), detail) { }
}

/// <summary>An NVRTC call failed (a failed compile carries the compiler log).</summary>
public sealed class NvrtcException : NativeCallException
{
    public NvrtcException(string call, int status, string? detail = null)
        : base("NVRTC", call, status, Nvrtc.StatusName(status), detail) { }
}

/// <summary>
/// Hand-written bindings to the CUDA driver API (libcuda.so.1), resolved lazily on first use. Only the
/// thin host side a kernel backend needs: init, primary context, memory, modules, launches.
/// </summary>
public static unsafe class CudaDriver
{
    public const int AttributeComputeCapabilityMajor = 75, AttributeComputeCapabilityMinor = 76;

    static readonly string[] LibraryNames = OperatingSystem.IsWindows() ? new[] { "nvcuda.dll" } : new[] { "libcuda.so.1", "libcuda.so" };
    static readonly LazyApi<Api> s_lazy = new(LoadApi);

    sealed class Api
    {
        public delegate* unmanaged<uint, int> Init;
        public delegate* unmanaged<int*, int> DeviceGetCount;
        public delegate* unmanaged<int*, int, int> DeviceGet;
        public delegate* unmanaged<byte*, int, int, int> DeviceGetName;
        public delegate* unmanaged<int*, int, int, int> DeviceGetAttribute;
        public delegate* unmanaged<nuint*, int, int> DeviceTotalMem;
        public delegate* unmanaged<IntPtr*, int, int> DevicePrimaryCtxRetain;
        public delegate* unmanaged<IntPtr, int> CtxSetCurrent;
        public delegate* unmanaged<int> CtxSynchronize;
        public delegate* unmanaged<ulong*, nuint, int> MemAlloc;
        public delegate* unmanaged<ulong, int> MemFree;
        public delegate* unmanaged<ulong, void*, nuint, int> MemcpyHtoD;
        public delegate* unmanaged<void*, ulong, nuint, int> MemcpyDtoH;
        public delegate* unmanaged<ulong, ulong, nuint, int> MemcpyDtoD;
        public delegate* unmanaged<IntPtr*, void*, int> ModuleLoadData;
        public delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction;
        public delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernel;
        public delegate* unmanaged<int, byte**, int> GetErrorName;
    }

    /// <summary>True when libcuda can be loaded; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsAvailable(out string reason) => s_lazy.IsAvailable(out reason);

    static Api A => s_lazy.Value;

    static Api LoadApi()
    {
        if (!NativeLibraryLoader.TryLoad(LibraryNames, out var lib))
            throw new NativeLibraryMissingException($"the CUDA driver could not be loaded (tried {string.Join(", ", LibraryNames)}); an NVIDIA GPU with its driver is required");
        {
            IntPtr F(string name) => NativeLibraryLoader.Export(lib, "libcuda", name);
            return new Api
            {
                Init = (delegate* unmanaged<uint, int>)F("cuInit"),
                DeviceGetCount = (delegate* unmanaged<int*, int>)F("cuDeviceGetCount"),
                DeviceGet = (delegate* unmanaged<int*, int, int>)F("cuDeviceGet"),
                DeviceGetName = (delegate* unmanaged<byte*, int, int, int>)F("cuDeviceGetName"),
                DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)F("cuDeviceGetAttribute"),
                DeviceTotalMem = (delegate* unmanaged<nuint*, int, int>)F("cuDeviceTotalMem_v2"),
                DevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)F("cuDevicePrimaryCtxRetain"),
                CtxSetCurrent = (delegate* unmanaged<IntPtr, int>)F("cuCtxSetCurrent"),
                CtxSynchronize = (delegate* unmanaged<int>)F("cuCtxSynchronize"),
                MemAlloc = (delegate* unmanaged<ulong*, nuint, int>)F("cuMemAlloc_v2"),
                MemFree = (delegate* unmanaged<ulong, int>)F("cuMemFree_v2"),
                MemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)F("cuMemcpyHtoD_v2"),
                MemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)F("cuMemcpyDtoH_v2"),
                MemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)F("cuMemcpyDtoD_v2"),
                ModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)F("cuModuleLoadData"),
                ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)F("cuModuleGetFunction"),
                LaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)F("cuLaunchKernel"),
                GetErrorName = (delegate* unmanaged<int, byte**, int>)F("cuGetErrorName"),
            };
        }
    }

    static void Check(int status, string call, string? detail = null)
    {
        if (status != 0) throw new CudaException(call, status, detail);
    }

    public static void Init() => Check(A.Init(0), "cuInit");
    public static int DeviceCount() { int n; Check(A.DeviceGetCount(&n), "cuDeviceGetCount"); return n; }
    public static int DeviceGet(int ordinal) { int d; Check(A.DeviceGet(&d, ordinal), "cuDeviceGet"); return d; }
    public static int DeviceAttribute(int device, int attribute) { int v; Check(A.DeviceGetAttribute(&v, attribute, device), "cuDeviceGetAttribute"); return v; }
    public static ulong DeviceTotalMemory(int device) { nuint v; Check(A.DeviceTotalMem(&v, device), "cuDeviceTotalMem_v2"); return v; }

    public static string DeviceName(int device)
    {
        var buf = new byte[256];
        fixed (byte* b = buf) Check(A.DeviceGetName(b, buf.Length, device), "cuDeviceGetName");
        return Encoding.UTF8.GetString(buf).TrimEnd('\0');
    }

    public static IntPtr PrimaryContextRetain(int device) { IntPtr c; Check(A.DevicePrimaryCtxRetain(&c, device), "cuDevicePrimaryCtxRetain"); return c; }
    public static void SetCurrent(IntPtr context) => Check(A.CtxSetCurrent(context), "cuCtxSetCurrent");
    public static void Synchronize() => Check(A.CtxSynchronize(), "cuCtxSynchronize");

    public static ulong MemAlloc(long bytes) { ulong p; Check(A.MemAlloc(&p, (nuint)bytes), "cuMemAlloc_v2", $"{bytes} bytes"); return p; }
    /// <summary>Frees device memory; returns the status instead of throwing (used from finalizers).</summary>
    public static int MemFree(ulong pointer) => A.MemFree(pointer);
    public static void CopyHostToDevice(ulong destination, void* source, long bytes) => Check(A.MemcpyHtoD(destination, source, (nuint)bytes), "cuMemcpyHtoD_v2");
    public static void CopyDeviceToHost(void* destination, ulong source, long bytes) => Check(A.MemcpyDtoH(destination, source, (nuint)bytes), "cuMemcpyDtoH_v2");
    public static void CopyDeviceToDevice(ulong destination, ulong source, long bytes) => Check(A.MemcpyDtoD(destination, source, (nuint)bytes), "cuMemcpyDtoD_v2");

    /// <summary>Loads a module from a NUL-terminated PTX image.</summary>
    public static IntPtr ModuleLoadData(byte[] image)
    {
        IntPtr m;
        fixed (byte* p = image) Check(A.ModuleLoadData(&m, p), "cuModuleLoadData");
        return m;
    }

    public static IntPtr ModuleGetFunction(IntPtr module, string name)
    {
        var n = Encoding.ASCII.GetBytes(name + "\0");
        IntPtr f;
        fixed (byte* p = n) Check(A.ModuleGetFunction(&f, module, p), "cuModuleGetFunction", name);
        return f;
    }

    /// <summary>Launches on the default stream; <paramref name="parameters"/>[i] points at argument i's value.</summary>
    public static void LaunchKernel(IntPtr function, uint gridX, uint gridY, uint blockX, uint blockY, void** parameters, string kernelName)
        => Check(A.LaunchKernel(function, gridX, gridY, 1, blockX, blockY, 1, 0, IntPtr.Zero, parameters, null), "cuLaunchKernel", kernelName);

    /// <summary>The CUDA_ERROR_* name of a status (asks the driver when it is loaded).</summary>
    public static string StatusName(int status)
    {
        if (s_lazy.IfLoaded is Api loaded)
        {
            byte* name = null;
            if (loaded.GetErrorName(status, &name) == 0 && name != null) return Marshal.PtrToStringAnsi((IntPtr)name) ?? $"CUDA error {status}";
        }
        return status switch
        {
            1 => "CUDA_ERROR_INVALID_VALUE", 2 => "CUDA_ERROR_OUT_OF_MEMORY", 3 => "CUDA_ERROR_NOT_INITIALIZED",
            100 => "CUDA_ERROR_NO_DEVICE", 101 => "CUDA_ERROR_INVALID_DEVICE", 200 => "CUDA_ERROR_INVALID_IMAGE",
            201 => "CUDA_ERROR_INVALID_CONTEXT", 218 => "CUDA_ERROR_INVALID_PTX", 222 => "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            500 => "CUDA_ERROR_NOT_FOUND", 700 => "CUDA_ERROR_ILLEGAL_ADDRESS", 701 => "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
            _ => $"CUDA error {status}",
        };
    }
}

/// <summary>Hand-written bindings to NVRTC (runtime compilation of CUDA C++ to PTX), resolved lazily.</summary>
public static unsafe class Nvrtc
{
    static readonly string[] LibraryNames = OperatingSystem.IsWindows()
        ? new[] { "nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll" }
        : new[] { "libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2" };
    static readonly LazyApi<Api> s_lazy = new(LoadApi);

    sealed class Api
    {
        public delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgram;
        public delegate* unmanaged<IntPtr, int, byte**, int> CompileProgram;
        public delegate* unmanaged<IntPtr, nuint*, int> GetPTXSize;
        public delegate* unmanaged<IntPtr, byte*, int> GetPTX;
        public delegate* unmanaged<IntPtr, nuint*, int> GetProgramLogSize;
        public delegate* unmanaged<IntPtr, byte*, int> GetProgramLog;
        public delegate* unmanaged<IntPtr*, int> DestroyProgram;
    }

    public static bool IsAvailable(out string reason) => s_lazy.IsAvailable(out reason);

    static Api A => s_lazy.Value;

    static Api LoadApi()
    {
        if (!NativeLibraryLoader.TryLoad(LibraryNames, out var lib))
            throw new NativeLibraryMissingException($"NVRTC could not be loaded (tried {string.Join(", ", LibraryNames)}); install the CUDA toolkit's NVRTC library");
        {
            IntPtr F(string name) => NativeLibraryLoader.Export(lib, "libnvrtc", name);
            return new Api
            {
                CreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)F("nvrtcCreateProgram"),
                CompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)F("nvrtcCompileProgram"),
                GetPTXSize = (delegate* unmanaged<IntPtr, nuint*, int>)F("nvrtcGetPTXSize"),
                GetPTX = (delegate* unmanaged<IntPtr, byte*, int>)F("nvrtcGetPTX"),
                GetProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)F("nvrtcGetProgramLogSize"),
                GetProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)F("nvrtcGetProgramLog"),
                DestroyProgram = (delegate* unmanaged<IntPtr*, int>)F("nvrtcDestroyProgram"),
            };
        }
    }

    static void Check(int status, string call, string? detail = null)
    {
        if (status != 0) throw new NvrtcException(call, status, detail);
    }

    /// <summary>Compiles CUDA C++ source to a NUL-terminated PTX image; a failed compile throws with the log.</summary>
    public static byte[] CompileToPtx(string source, string name, IReadOnlyList<string> options)
    {
        var api = A;
        var src = Encoding.UTF8.GetBytes(source + "\0");
        var nm = Encoding.UTF8.GetBytes(name + "\0");
        IntPtr prog;
        fixed (byte* s = src) fixed (byte* n = nm) Check(api.CreateProgram(&prog, s, n, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var optBytes = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = optBytes.Select(b => GCHandle.Alloc(b, GCHandleType.Pinned)).ToArray();
            int st;
            try
            {
                var ptrs = stackalloc byte*[Math.Max(1, handles.Length)];
                for (int i = 0; i < handles.Length; i++) ptrs[i] = (byte*)handles[i].AddrOfPinnedObject();
                st = api.CompileProgram(prog, handles.Length, ptrs);
            }
            finally { foreach (var h in handles) h.Free(); }
            if (st != 0) throw new NvrtcException("nvrtcCompileProgram", st, "compiler log:\n" + Log(prog));
            nuint size;
            Check(api.GetPTXSize(prog, &size), "nvrtcGetPTXSize");
            var ptx = new byte[(int)size];
            fixed (byte* p = ptx) Check(api.GetPTX(prog, p), "nvrtcGetPTX");
            return ptx;
        }
        finally { api.DestroyProgram(&prog); }
    }

    static string Log(IntPtr prog)
    {
        nuint size;
        if (A.GetProgramLogSize(prog, &size) != 0) return "(no log)";
        var buf = new byte[(int)size];
        fixed (byte* b = buf) if (A.GetProgramLog(prog, b) != 0) return "(no log)";
        return Encoding.UTF8.GetString(buf).TrimEnd('\0');
    }

    public static string StatusName(int status) => status switch
    {
        0 => "NVRTC_SUCCESS", 1 => "NVRTC_ERROR_OUT_OF_MEMORY", 2 => "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        3 => "NVRTC_ERROR_INVALID_INPUT", 4 => "NVRTC_ERROR_INVALID_PROGRAM", 5 => "NVRTC_ERROR_INVALID_OPTION",
        6 => "NVRTC_ERROR_COMPILATION", 7 => "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE", 11 => "NVRTC_ERROR_INTERNAL_ERROR",
        _ => $"NVRTC error {status}",
    };
}
