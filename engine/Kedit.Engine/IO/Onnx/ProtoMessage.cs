using System.Runtime.InteropServices;
using System.Text;

namespace Kedit.IO.Onnx;

/// <summary>
/// A protobuf message under construction, kept as a list of chunks so that nesting a message only
/// prepends its tag and length: a weight's bytes are never copied between the tensor, the graph and
/// the model (a hand-written encoder for the few ONNX messages the exporter writes; wire format of
/// https://protobuf.dev/programming-guides/encoding/).
/// </summary>
internal sealed class ProtoMessage
{
    readonly List<ReadOnlyMemory<byte>> chunks = [];
    readonly MemoryStream head = new();

    public long Length { get; private set; }

    public ProtoMessage Varint(int field, long value) { Tag(field, 0); WriteVarint((ulong)value); return this; }

    public ProtoMessage Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BitConverter.TryWriteBytes(b, value);
        Write(b);
        return this;
    }

    public ProtoMessage String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoMessage Bytes(int field, ReadOnlyMemory<byte> value)
    {
        Tag(field, 2); WriteVarint((ulong)value.Length);
        Flush(); chunks.Add(value); Length += value.Length;
        return this;
    }

    /// <summary>A float array as raw little-endian bytes, copied once.</summary>
    public ProtoMessage Floats(int field, float[] values) => Bytes(field, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    /// <summary>A packed repeated int64 field.</summary>
    public ProtoMessage PackedInt64(int field, IReadOnlyList<long> values)
    {
        var inner = new ProtoMessage();
        foreach (long v in values) inner.WriteVarint((ulong)v);
        return Message(field, inner);
    }

    public ProtoMessage Message(int field, ProtoMessage m)
    {
        Tag(field, 2); WriteVarint((ulong)m.Length);
        Flush(); m.Flush();
        chunks.AddRange(m.chunks); Length += m.Length;
        return this;
    }

    public void WriteTo(Stream s)
    {
        Flush();
        foreach (var c in chunks) s.Write(c.Span);
    }

    void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

    void WriteVarint(ulong v)
    {
        Span<byte> b = stackalloc byte[10];
        int n = 0;
        while (v >= 0x80) { b[n++] = (byte)(v | 0x80); v >>= 7; }
        b[n++] = (byte)v;
        Write(b[..n]);
    }

    void Write(ReadOnlySpan<byte> b) { head.Write(b); Length += b.Length; }

    void Flush()
    {
        if (head.Length == 0) return;
        chunks.Add(head.ToArray());
        head.SetLength(0);
    }
}
