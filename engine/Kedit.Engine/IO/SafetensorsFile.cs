using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Kedit.IO;

/// <summary>
/// A safetensors file mapped read-only into memory. <see cref="Open"/> validates the whole header
/// (see <see cref="SafetensorsHeader"/>); tensor data is never copied until a Read* call converts it.
/// Reads are thread-safe. Spans from <see cref="GetBytes"/> are valid only while the file is open.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    readonly FileStream _stream;
    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _base;
    readonly Dictionary<string, TensorInfo> _byName;
    bool _disposed;

    /// <summary>The path the file was opened with.</summary>
    public string Path { get; }

    /// <summary>The "__metadata__" map (string → string); empty when the file has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>All tensors, in the order of their data in the file.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Length of the JSON header in bytes (the N of the 8-byte prefix).</summary>
    public long HeaderLength { get; }

    SafetensorsFile(string path, FileStream stream, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr,
                    long headerLength, SafetensorsHeader.Parsed parsed)
    {
        Path = path;
        _stream = stream;
        _map = map;
        _view = view;
        _base = basePtr;
        HeaderLength = headerLength;
        Metadata = parsed.Metadata.AsReadOnly();
        Tensors = parsed.Tensors.AsReadOnly();
        _byName = parsed.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>
    /// Maps <paramref name="path"/> read-only and validates its header. Any problem with the file
    /// (missing, unreadable, truncated, malformed header, inconsistent offsets) is a
    /// <see cref="KeditException"/> naming the file and, where relevant, the tensor.
    /// </summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!BitConverter.IsLittleEndian)
            throw new KeditException($"cannot read '{path}': safetensors data is little-endian and this machine is not");
        if (Directory.Exists(path))
            throw new KeditException($"cannot open safetensors file '{path}': it is a directory");

        FileStream stream;
        try
        {
            // FileShare.Delete lets a writer atomically replace the file while we still map the old one.
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            string why = e is FileNotFoundException or DirectoryNotFoundException ? "it does not exist" : e.Message;
            throw new KeditException($"cannot open safetensors file '{path}': {why}", e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long fileLength = stream.Length;
            if (fileLength < 8)
                throw new KeditException(
                    $"invalid safetensors file '{path}': it is {fileLength} bytes long, shorter than the 8-byte header length");

            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            pointerAcquired = true;
            p += view.PointerOffset;

            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(p, 8));
            if (n == 0)
                throw new KeditException($"invalid safetensors file '{path}': the header length is 0");
            if (n > SafetensorsHeader.MaxHeaderBytes)
                throw new KeditException(
                    $"invalid safetensors file '{path}': the header length {n} exceeds the {SafetensorsHeader.MaxHeaderBytes}-byte limit " +
                    "(corrupt, or not a safetensors file)");
            if (n > (ulong)(fileLength - 8))
                throw new KeditException(
                    $"invalid safetensors file '{path}': the header length {n} exceeds the {fileLength - 8} bytes after it (file truncated?)");

            long headerLength = (long)n;
            long dataStart = 8 + headerLength;
            var parsed = SafetensorsHeader.Parse(new ReadOnlySpan<byte>(p + 8, (int)headerLength), dataStart, fileLength - dataStart, path);
            return new SafetensorsFile(path, stream, map, view, p, headerLength, parsed);
        }
        catch (Exception e)
        {
            if (pointerAcquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            if (e is IOException or UnauthorizedAccessException)
                throw new KeditException($"cannot map safetensors file '{path}': {e.Message}", e);
            throw;
        }
    }

    /// <summary>True when the file holds a tensor of this name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks up a tensor by name.</summary>
    public bool TryGetInfo(string name, out TensorInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>Looks up a tensor; a missing one is a <see cref="KeditException"/> naming tensor and file.</summary>
    public TensorInfo GetInfo(string name)
    {
        if (_byName.TryGetValue(name, out var info)) return info;
        throw new KeditException($"tensor '{name}' not found in safetensors file '{Path}' ({_byName.Count} tensors)");
    }

    /// <summary>
    /// The raw little-endian bytes of a tensor: a view into the mapping, no copy. Valid while this
    /// file is open. Tensors over 2 GiB cannot be one span; read them with the Read* methods.
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(string name) => GetBytes(GetInfo(name));

    /// <summary>The header's N bytes exactly as stored (JSON and its padding), for writing the file back byte for byte.</summary>
    public ReadOnlySpan<byte> RawHeader => new(_base + 8, (int)HeaderLength);

    internal ReadOnlySpan<byte> GetBytes(TensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (info.ByteLength > int.MaxValue)
            throw new KeditException(
                $"tensor '{info.Name}' in '{Path}' is {info.ByteLength} bytes, too large for a single span; use ReadFloat32 / ReadFloat64");
        return new ReadOnlySpan<byte>(_base + info.Offset, (int)info.ByteLength);
    }

    /// <summary>
    /// A tensor's bytes as memory over the mapping (no copy; valid while this file is open), for writing it unchanged
    /// into another file: <see cref="SafetensorsWriter"/> drops its pages from the resident set once written.
    /// </summary>
    internal ReadOnlyMemory<byte> GetMappedMemory(TensorInfo info)
    {
        GetBytes(info);   // checks the size and that the file is open
        return new MappedBytes(this, info).Memory;
    }

    /// <summary>A tensor's bytes in the mapping as <see cref="Memory{T}"/>.</summary>
    internal sealed class MappedBytes(SafetensorsFile file, TensorInfo info) : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(file._base + info.Offset, (int)info.ByteLength);
        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new(file._base + info.Offset + elementIndex);
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
        /// <summary>
        /// Writes these bytes to <paramref name="to"/> a chunk at a time, dropping each chunk's pages from the resident set
        /// once written (they stay in the page cache): a copied tensor costs one chunk of resident memory, not its size
        /// (a GPT-2 embedding table is 154 MB).
        /// </summary>
        public void WriteTo(Stream to)
        {
            int size = DTypes.SizeOf(info.DType);
            for (long i = 0; i < info.ElementCount; i += ChunkElements)
            {
                int n = (int)Math.Min(ChunkElements, info.ElementCount - i);
                to.Write(file.Slice(info, i, n));
                file.Release(info, i, n);
            }
        }
    }

    /// <summary>Bytes [elementStart, elementStart + count) of a tensor, any size.</summary>
    ReadOnlySpan<byte> Slice(TensorInfo info, long elementStart, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int size = DTypes.SizeOf(info.DType);
        return new ReadOnlySpan<byte>(_base + info.Offset + elementStart * size, checked(count * size));
    }

    // Conversions run in chunks so that tensors over 2 GiB of storage still convert, and so that at most one chunk of
    // the mapping is resident beside the copy (see Release).
    const int ChunkElements = 1 << 22;

    /// <summary>
    /// Drops the mapped pages of bytes [elementStart, elementStart + count) of a tensor from this process's resident set
    /// once they are converted: the Read* methods copy, so without this a loaded model would count twice (the copy and
    /// the file's pages) in the peak. The pages stay in the page cache; a later read faults them back in.
    /// </summary>
    void Release(TensorInfo info, long elementStart, int count)
    {
        if (!OperatingSystem.IsLinux()) return;
        const long page = 4096;
        long start = (long)_base + info.Offset + elementStart * DTypes.SizeOf(info.DType);
        long end = start + (long)count * DTypes.SizeOf(info.DType);
        long a = (start + page - 1) & ~(page - 1), b = end & ~(page - 1);
        if (b > a) _ = madvise((nint)a, (nuint)(b - a), MadvDontNeed);
    }

    const int MadvDontNeed = 4;
    [DllImport("libc", SetLastError = true)]
    static extern int madvise(nint addr, nuint length, int advice);

    /// <summary>A floating tensor (F32, F16, BF16 or F64) as float; F64 rounds to nearest even.</summary>
    public float[] ReadFloat32(string name)
    {
        TensorInfo info = GetInfo(name);
        var result = new float[ArrayLength(info)];
        ReadFloat32(info, result);
        return result;
    }

    /// <summary>Like <see cref="ReadFloat32(string)"/>, into a destination of exactly ElementCount floats.</summary>
    public void ReadFloat32(string name, Span<float> destination) => ReadFloat32(GetInfo(name), destination);

    internal void ReadFloat32(TensorInfo info, Span<float> destination)
    {
        CheckDestination(info, destination.Length, "ReadFloat32");
        if (!DTypes.IsFloat(info.DType)) throw WrongType(info, "ReadFloat32", "a floating dtype (F32, F16, BF16, F64)");
        for (long i = 0; i < destination.Length; i += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, destination.Length - i);
            ReadOnlySpan<byte> src = Slice(info, i, n);
            Span<float> dst = destination.Slice((int)i, n);
            switch (info.DType)
            {
                case DType.F32: src.CopyTo(MemoryMarshal.AsBytes(dst)); break;
                case DType.F16: FloatConversions.F16ToSingle(src, dst); break;
                case DType.BF16: FloatConversions.Bf16ToSingle(src, dst); break;
                case DType.F64: FloatConversions.F64ToSingle(src, dst); break;
            }
            Release(info, i, n);
        }
    }

    /// <summary>An F16 or BF16 tensor's values as stored (their bits), into a destination of exactly ElementCount values.</summary>
    internal void ReadBits16(TensorInfo info, Span<ushort> destination)
    {
        CheckDestination(info, destination.Length, "ReadBits16");
        if (info.DType is not (DType.F16 or DType.BF16)) throw WrongType(info, "ReadBits16", "F16 or BF16");
        for (long i = 0; i < destination.Length; i += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, destination.Length - i);
            Slice(info, i, n).CopyTo(MemoryMarshal.AsBytes(destination.Slice((int)i, n)));
            Release(info, i, n);
        }
    }

    /// <summary>A floating tensor (F64, F32, F16 or BF16) as double, widened exactly.</summary>
    public double[] ReadFloat64(string name)
    {
        TensorInfo info = GetInfo(name);
        var result = new double[ArrayLength(info)];
        ReadFloat64(info, result);
        return result;
    }

    /// <summary>Like <see cref="ReadFloat64(string)"/>, into a destination of exactly ElementCount doubles.</summary>
    public void ReadFloat64(string name, Span<double> destination) => ReadFloat64(GetInfo(name), destination);

    internal void ReadFloat64(TensorInfo info, Span<double> destination)
    {
        CheckDestination(info, destination.Length, "ReadFloat64");
        if (!DTypes.IsFloat(info.DType)) throw WrongType(info, "ReadFloat64", "a floating dtype (F64, F32, F16, BF16)");
        if (info.DType == DType.F64)
        {
            for (long i = 0; i < destination.Length; i += ChunkElements)
            {
                int n = (int)Math.Min(ChunkElements, destination.Length - i);
                Slice(info, i, n).CopyTo(MemoryMarshal.AsBytes(destination.Slice((int)i, n)));
                Release(info, i, n);
            }
            return;
        }
        // Other float types go through float, which holds F32/F16/BF16 exactly.
        const int block = 4096;
        float[] buffer = new float[Math.Min(block, destination.Length)];
        for (long i = 0; i < destination.Length; i += block)
        {
            int n = (int)Math.Min(block, destination.Length - i);
            Span<float> tmp = buffer.AsSpan(0, n);
            ReadOnlySpan<byte> src = Slice(info, i, n);
            switch (info.DType)
            {
                case DType.F32: src.CopyTo(MemoryMarshal.AsBytes(tmp)); break;
                case DType.F16: FloatConversions.F16ToSingle(src, tmp); break;
                case DType.BF16: FloatConversions.Bf16ToSingle(src, tmp); break;
            }
            FloatConversions.SingleToDouble(tmp, destination.Slice((int)i, n));
            long done = i + n;
            if (done % ChunkElements == 0 || done == destination.Length)
            {
                long from = (done - 1) / ChunkElements * ChunkElements;
                Release(info, from, (int)(done - from));
            }
        }
    }

    /// <summary>An integer tensor (I64, or I32 / I16 / I8 / U8 / BOOL widened) as long.</summary>
    public long[] ReadInt64(string name)
    {
        TensorInfo info = GetInfo(name);
        var result = new long[ArrayLength(info)];
        ReadInt64(info, result);
        return result;
    }

    /// <summary>Like <see cref="ReadInt64(string)"/>, into a destination of exactly ElementCount longs.</summary>
    public void ReadInt64(string name, Span<long> destination) => ReadInt64(GetInfo(name), destination);

    internal void ReadInt64(TensorInfo info, Span<long> destination)
    {
        CheckDestination(info, destination.Length, "ReadInt64");
        if (DTypes.IsFloat(info.DType)) throw WrongType(info, "ReadInt64", "an integer dtype (I64, I32, I16, I8, U8, BOOL)");
        for (long i = 0; i < destination.Length; i += ChunkElements)
        {
            int n = (int)Math.Min(ChunkElements, destination.Length - i);
            ReadOnlySpan<byte> src = Slice(info, i, n);
            Span<long> dst = destination.Slice((int)i, n);
            switch (info.DType)
            {
                case DType.I64: src.CopyTo(MemoryMarshal.AsBytes(dst)); break;
                case DType.I32: FloatConversions.I32ToInt64(src, dst); break;
                case DType.I16:
                    for (int k = 0; k < n; k++) dst[k] = BinaryPrimitives.ReadInt16LittleEndian(src.Slice(2 * k));
                    break;
                case DType.I8: for (int k = 0; k < n; k++) dst[k] = (sbyte)src[k]; break;
                case DType.U8: for (int k = 0; k < n; k++) dst[k] = src[k]; break;
                case DType.Bool: for (int k = 0; k < n; k++) dst[k] = src[k] != 0 ? 1 : 0; break;
            }
            Release(info, i, n);
        }
    }

    int ArrayLength(TensorInfo info)
    {
        long count = info.ElementCount;
        if (count > Array.MaxLength)
            throw new KeditException($"tensor '{info.Name}' in '{Path}' has {count} elements, more than one array can hold");
        return (int)count;
    }

    void CheckDestination(TensorInfo info, int length, string method)
    {
        if (length != info.ElementCount)
            throw new KeditException(
                $"{method}: tensor '{info.Name}' in '{Path}' has {info.ElementCount} elements (shape {info.ShapeText}), " +
                $"but the destination holds {length}");
    }

    KeditException WrongType(TensorInfo info, string method, string needed) =>
        new($"{method}: tensor '{info.Name}' in '{Path}' has dtype {DTypes.ToSafetensorsName(info.DType)}; it needs {needed}");

    /// <summary>Unmaps the file. Spans obtained earlier must not be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
        _stream.Dispose();
    }
}
