using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Kedit.IO;

/// <summary>Writes safetensors files atomically.</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// One tensor to write: its raw little-endian bytes (<paramref name="Data"/>) must be exactly
    /// SizeOf(<paramref name="DType"/>) × product(<paramref name="Shape"/>) long.
    /// </summary>
    public sealed record Entry(string Name, DType DType, long[] Shape, ReadOnlyMemory<byte> Data)
    {
        /// <summary>An F32 tensor over <paramref name="data"/> (not copied: keep it unchanged until written).</summary>
        public static Entry F32(string name, long[] shape, float[] data) =>
            new(name, DType.F32, shape, AsBytes(name, shape, data));

        /// <summary>
        /// An F32 tensor whose values <paramref name="fill"/> computes when it is written, into <paramref name="buffer"/>
        /// (at least the tensor's size): entries sharing one buffer are resident one at a time, not all at once.
        /// </summary>
        public static Entry F32Computed(string name, long[] shape, float[] buffer, Action<Span<float>> fill)
        {
            int count = checked((int)ElementCount(name, shape));
            if (buffer.Length < count) throw new ArgumentException($"tensor '{name}': a buffer of {buffer.Length} floats cannot hold {count}", nameof(buffer));
            return new(name, DType.F32, shape, new Computed<float>(buffer, count, fill).Memory);
        }

        /// <summary>An F64 tensor computed when it is written, as <see cref="F32Computed"/>.</summary>
        public static Entry F64Computed(string name, long[] shape, double[] buffer, Action<Span<double>> fill)
        {
            int count = checked((int)ElementCount(name, shape));
            if (buffer.Length < count) throw new ArgumentException($"tensor '{name}': a buffer of {buffer.Length} doubles cannot hold {count}", nameof(buffer));
            return new(name, DType.F64, shape, new Computed<double>(buffer, count, fill).Memory);
        }

        /// <summary>An F64 tensor over <paramref name="data"/> (not copied).</summary>
        public static Entry F64(string name, long[] shape, double[] data) =>
            new(name, DType.F64, shape, AsBytes(name, shape, data));

        /// <summary>An I64 tensor over <paramref name="data"/> (not copied).</summary>
        public static Entry I64(string name, long[] shape, long[] data) =>
            new(name, DType.I64, shape, AsBytes(name, shape, data));

        /// <summary>
        /// Float data stored as <paramref name="target"/>: F16 and BF16 round to nearest, ties to
        /// even; F32 is copied; F64 widens exactly.
        /// </summary>
        public static Entry Converted(string name, DType target, long[] shape, ReadOnlySpan<float> data)
        {
            CheckCount(name, shape, data.Length);
            long byteLength = (long)data.Length * DTypes.SizeOf(target);
            if (byteLength > Array.MaxLength)
                throw new KeditException($"tensor '{name}': {byteLength} bytes is too large for one entry");
            var bytes = new byte[byteLength];
            switch (target)
            {
                case DType.F32: MemoryMarshal.AsBytes(data).CopyTo(bytes); break;
                case DType.F16: FloatConversions.SingleToF16(data, bytes); break;
                case DType.BF16: FloatConversions.SingleToBf16(data, bytes); break;
                case DType.F64: FloatConversions.SingleToDouble(data, MemoryMarshal.Cast<byte, double>(bytes.AsSpan())); break;
                default:
                    throw new KeditException(
                        $"tensor '{name}': cannot convert float data to {DTypes.ToSafetensorsName(target)} (use F32, F16, BF16 or F64)");
            }
            return new Entry(name, target, shape, bytes);
        }

        static ReadOnlyMemory<byte> AsBytes<T>(string name, long[] shape, T[] data) where T : unmanaged
        {
            ArgumentNullException.ThrowIfNull(data);
            CheckCount(name, shape, data.Length);
            if ((long)data.Length * Marshal.SizeOf<T>() > int.MaxValue)
                throw new KeditException($"tensor '{name}': {data.Length} elements is too large for one entry");
            return BytesOf(data);
        }

        static void CheckCount(string name, long[] shape, int count)
        {
            ArgumentNullException.ThrowIfNull(shape);
            long expected = ElementCount(name, shape);
            if (expected != count)
                throw new KeditException($"tensor '{name}': shape [{string.Join(", ", shape)}] has {expected} elements but the data has {count}");
        }
    }

    /// <summary>
    /// Writes atomically: to "path.tmp-&lt;random&gt;" in the same directory, fsync, then rename over
    /// <paramref name="path"/>. Header JSON padded with spaces to a multiple of 8 (so the data
    /// section is 8-byte aligned); tensors sorted by name (ordinal) and stored back to back, as the
    /// format allows no holes; "__metadata__" written when given. On any failure the previous
    /// file is untouched and the temporary file is removed; bad entries and I/O failures are
    /// <see cref="KeditException"/>s naming the path and tensor.
    /// </summary>
    public static void Write(string path, IEnumerable<Entry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var entries = tensors.ToList();
        entries.Sort((a, b) => string.CompareOrdinal(a?.Name, b?.Name));
        byte[] header = BuildHeader(path, entries, metadata);

        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir == null || !Directory.Exists(dir))
            throw new KeditException($"cannot write safetensors file '{path}': directory '{dir}' does not exist");
        if (Directory.Exists(full))
            throw new KeditException($"cannot write safetensors file '{path}': it is a directory");

        // Readers see the old file or the new one, never a mix.
        AtomicOutput.WriteFile(full, fs =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            fs.Write(prefix);
            fs.Write(header);
            foreach (Entry e in entries)
            {
                // A tensor copied from a mapped file: its pages leave the resident set as they are written.
                if (MemoryMarshal.TryGetMemoryManager<byte, SafetensorsFile.MappedBytes>(e.Data, out var mapped, out int start, out int length)
                    && start == 0 && length == mapped.Memory.Length) mapped.WriteTo(fs);
                else fs.Write(e.Data.Span);
            }
        });
    }

    /// <summary>Validates every entry before anything touches the disk, and builds the padded header.</summary>
    static byte[] BuildHeader(string path, List<Entry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable in the header; it is still valid JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata != null)
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    if (k == null || v == null)
                        throw new KeditException($"cannot write '{path}': metadata keys and values must not be null");
                    CheckText(path, $"metadata key \"{k}\"", k);
                    CheckText(path, $"metadata value of \"{k}\"", v);
                    json.WriteString(k, v);
                }
                json.WriteEndObject();
            }

            long offset = 0;
            string? previous = null;
            foreach (Entry e in entries)
            {
                if (e == null) throw new KeditException($"cannot write '{path}': a tensor entry is null");
                if (string.IsNullOrEmpty(e.Name)) throw new KeditException($"cannot write '{path}': a tensor has an empty name");
                if (e.Name == SafetensorsHeader.MetadataKey)
                    throw new KeditException($"cannot write '{path}': \"{SafetensorsHeader.MetadataKey}\" is reserved and cannot name a tensor");
                CheckText(path, $"tensor name '{e.Name}'", e.Name);
                if (e.Name == previous) throw new KeditException($"cannot write '{path}': tensor '{e.Name}' is given twice");
                previous = e.Name;
                if (e.Shape == null) throw new KeditException($"cannot write '{path}': tensor '{e.Name}' has no shape");
                if (!Enum.IsDefined(e.DType)) throw new KeditException($"cannot write '{path}': tensor '{e.Name}' has an invalid dtype {e.DType}");

                long bytes;
                try { bytes = checked(ElementCount(e.Name, e.Shape) * DTypes.SizeOf(e.DType)); }
                catch (OverflowException) { throw new KeditException($"cannot write '{path}': tensor '{e.Name}' shape overflows 64 bits"); }
                if (bytes != e.Data.Length)
                    throw new KeditException(
                        $"cannot write '{path}': tensor '{e.Name}' has {e.Data.Length} bytes of data, but dtype " +
                        $"{DTypes.ToSafetensorsName(e.DType)} × shape [{string.Join(", ", e.Shape)}] needs {bytes}");

                json.WriteStartObject(e.Name);
                json.WriteString("dtype", DTypes.ToSafetensorsName(e.DType));
                json.WriteStartArray("shape");
                foreach (long d in e.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Lone surrogates cannot be stored as UTF-8, and readers (ours included) reject them.</summary>
    static void CheckText(string path, string what, string s)
    {
        try { StrictUtf8.GetByteCount(s); }
        catch (ArgumentException) { throw new KeditException($"cannot write '{path}': {what} is not valid text (lone UTF-16 surrogate)"); }
    }

    static long ElementCount(string name, long[] shape)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0) throw new KeditException($"tensor '{name}': shape [{string.Join(", ", shape)}] has a negative dimension");
            if (d != 0 && n > long.MaxValue / d)
                throw new KeditException($"tensor '{name}': shape [{string.Join(", ", shape)}] has more elements than 64 bits can count");
            n *= d;
        }
        return n;
    }

    /// <summary>The bytes of <paramref name="data"/> as memory, not copied.</summary>
    internal static ReadOnlyMemory<byte> BytesOf<T>(T[] data) where T : unmanaged => new ArrayBytesMemory<T>(data).Memory;

    /// <summary>Bytes computed into a shared buffer each time they are asked for (the writer asks once, as it writes them).</summary>
    sealed unsafe class Computed<T>(T[] buffer, int count, Action<Span<T>> fill) : MemoryManager<byte> where T : unmanaged
    {
        public override Memory<byte> Memory => CreateMemory(count * sizeof(T));

        public override Span<byte> GetSpan()
        {
            fill(buffer.AsSpan(0, count));
            return MemoryMarshal.AsBytes(buffer.AsSpan(0, count));
        }

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(buffer, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }

    /// <summary>Exposes a T[] as bytes without copying it.</summary>
    sealed unsafe class ArrayBytesMemory<T>(T[] array) : MemoryManager<byte> where T : unmanaged
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan());

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle, this);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
