namespace Kedit.Backends;

/// <summary>
/// An accelerator is missing or failed: no driver, no device, a failed allocation or a kernel that would not
/// compile or run (the message names the device and what failed).
/// </summary>
public sealed class DeviceException : KeditException
{
    public DeviceException(string message) : base(message) { }
    public DeviceException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>One kernel argument: a device buffer, a 32-bit int, a 64-bit int or a float.</summary>
internal readonly struct KernelArg
{
    public enum ArgKind : byte { Buffer, Int32, Int64, Float }

    KernelArg(ArgKind kind, long bits, DeviceBuffer? buffer) { Kind = kind; Bits = bits; Buffer = buffer; }

    public ArgKind Kind { get; }
    /// <summary>The int or float value (floats as their bit pattern).</summary>
    public long Bits { get; }
    public DeviceBuffer? Buffer { get; }

    public static implicit operator KernelArg(DeviceBuffer b) => new(ArgKind.Buffer, 0, b);
    public static implicit operator KernelArg(int v) => new(ArgKind.Int32, v, null);
    public static implicit operator KernelArg(long v) => new(ArgKind.Int64, v, null);
    public static implicit operator KernelArg(float v) => new(ArgKind.Float, BitConverter.SingleToInt32Bits(v), null);
    public static implicit operator KernelArg(bool v) => new(ArgKind.Int32, v ? 1 : 0, null);
}

/// <summary>
/// Device memory owned by a runtime. Disposing (or finalizing, for a buffer whose owner was collected)
/// releases it.
/// </summary>
internal sealed class DeviceBuffer : IDisposable
{
    readonly DeviceRuntime _runtime;
    long _handle;

    public DeviceBuffer(DeviceRuntime runtime, long handle, long bytes) { _runtime = runtime; _handle = handle; Bytes = bytes; }

    public long Bytes { get; }
    public DeviceRuntime Runtime => _runtime;
    public long Handle => _handle != 0 ? _handle : throw new ObjectDisposedException(nameof(DeviceBuffer), "the device buffer was already released");

    public void Dispose()
    {
        long h = Interlocked.Exchange(ref _handle, 0);
        if (h != 0) _runtime.Free(h);
        GC.SuppressFinalize(this);
    }

    ~DeviceBuffer()
    {
        long h = Interlocked.Exchange(ref _handle, 0);
        if (h != 0) _runtime.Free(h);
    }
}

/// <summary>
/// The host side of one accelerator: memory, transfers and kernel launches by op name (<see cref="IlgpuRuntime"/>
/// maps each name to its C# kernel). Runtimes are shared by every backend on the same device and live for the
/// process, so each kernel is compiled once.
/// </summary>
internal abstract unsafe class DeviceRuntime
{
    /// <summary>Human-readable device description (name, kind, driver).</summary>
    public abstract string DeviceName { get; }
    /// <summary>Work-group size of the reduction kernels (a power of two); also the largest supported head dimension.</summary>
    public abstract int ReduceWorkGroup { get; }
    /// <summary>True when the device is the host's own CPU (ILGPU's CPU accelerator).</summary>
    public virtual bool IsHostCpu => false;
    /// <summary>Why this device cannot run the float64 kernels, or null when it can.</summary>
    public virtual string? Float64Missing => null;

    public DeviceBuffer Allocate(long bytes) => new(this, AllocateHandle(Math.Max(bytes, 16)), bytes);

    protected abstract long AllocateHandle(long bytes);
    /// <summary>Releases memory; never throws (called from finalizers).</summary>
    public abstract void Free(long handle);

    public void Write(DeviceBuffer destination, long offsetBytes, void* source, long bytes)
    {
        if (bytes == 0) return;
        CheckRange(destination, offsetBytes, bytes);
        WriteCore(destination.Handle, offsetBytes, source, bytes);
    }

    /// <summary>
    /// Writes a weight from pinned host memory (a fixed array or the mmap) through a page-locked registration of
    /// that memory, so a GPU copies it by DMA without a driver staging copy. Weights are written once, so the cost of
    /// registering is paid once; activations use <see cref="Write"/>.
    /// </summary>
    public void WriteWeight(DeviceBuffer destination, void* pinnedSource, long bytes)
    {
        if (bytes == 0) return;
        CheckRange(destination, 0, bytes);
        WritePageLockedCore(destination.Handle, pinnedSource, bytes);
    }

    public void Read(DeviceBuffer source, long offsetBytes, void* destination, long bytes)
    {
        if (bytes == 0) return;
        CheckRange(source, offsetBytes, bytes);
        ReadCore(source.Handle, offsetBytes, destination, bytes);
    }

    public void Copy(DeviceBuffer source, DeviceBuffer destination, long bytes)
    {
        if (bytes == 0) return;
        CheckRange(source, 0, bytes); CheckRange(destination, 0, bytes);
        CopyCore(source.Handle, destination.Handle, bytes);
    }

    /// <summary>Launches <paramref name="kernel"/> on a grid of groupsX × groupsY work-groups of localX × localY work-items.</summary>
    public void Launch(string kernel, int groupsX, int groupsY, int localX, int localY, params ReadOnlySpan<KernelArg> args)
    {
        if (groupsX <= 0 || groupsY <= 0) return;
        LaunchCore(kernel, groupsX, groupsY, localX, localY, args);
    }

    /// <summary>Waits for every queued command.</summary>
    public void Synchronize() => SynchronizeCore();

    protected abstract void WriteCore(long handle, long offset, void* source, long bytes);
    protected abstract void WritePageLockedCore(long handle, void* pinnedSource, long bytes);
    protected abstract void ReadCore(long handle, long offset, void* destination, long bytes);
    protected abstract void CopyCore(long source, long destination, long bytes);
    protected abstract void LaunchCore(string kernel, int groupsX, int groupsY, int localX, int localY, ReadOnlySpan<KernelArg> args);
    protected abstract void SynchronizeCore();

    static void CheckRange(DeviceBuffer b, long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > b.Bytes)
            throw new ArgumentOutOfRangeException(nameof(bytes), $"device transfer of {bytes} bytes at offset {offset} exceeds the {b.Bytes}-byte buffer");
    }
}
