using System.Globalization;
using System.Runtime.InteropServices;

namespace Kedit.IO.Onnx;

/// <summary>ONNX TensorProto.DataType values the exporter uses (onnx.proto).</summary>
internal enum OnnxType { Float = 1, Int64 = 7, Bool = 9, Float16 = 10 }

/// <summary>A node attribute (AttributeProto): an int, a float, or a list of ints.</summary>
internal sealed record OnnxAttr(string Name, long? Int = null, float? Float = null, long[]? Ints = null)
{
    public static OnnxAttr I(string name, long v) => new(name, Int: v);
    public static OnnxAttr F(string name, float v) => new(name, Float: v);
    public static OnnxAttr Is(string name, params long[] v) => new(name, Ints: v);
}

/// <summary>
/// Builds an ONNX GraphProto node by node and writes the ModelProto: the field numbers of onnx.proto
/// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto) for
/// the subset the exporter needs. Weights are initializers; past a size threshold they go to one
/// external data file beside the model (ONNX's 2 GB protobuf limit).
/// </summary>
internal sealed class OnnxGraph(bool float16Weights = false)
{
    readonly ProtoMessage graph = new();
    readonly List<(string Name, float[] Data, long[] Dims, bool Half)> weights = [];
    readonly Dictionary<float[], string> weightNames = new(ReferenceEqualityComparer.Instance);
    readonly Dictionary<string, string> constants = [];
    readonly HashSet<string> names = [];
    int counter;

    public void Input(string name, OnnxType type, params object[] dims) { Claim(name); graph.Message(11, ValueInfo(name, type, dims)); }
    public void Output(string name, OnnxType type, params object[] dims) => graph.Message(12, ValueInfo(name, type, dims));

    /// <summary>
    /// A weight initializer; the same array passed twice (tied embeddings) is stored once. With float16 weights it is
    /// stored as halves and the name returned is a Cast to float32 of it.
    /// </summary>
    public string Weight(string name, float[] data, params long[] dims) => Initializer(name, data, dims, float16Weights);

    /// <summary>A float32 initializer that is not a model weight (RoPE tables): never stored as halves.</summary>
    public string Table(string name, float[] data, params long[] dims) => Initializer(name, data, dims, half: false);

    string Initializer(string name, float[] data, long[] dims, bool half)
    {
        if (weightNames.TryGetValue(data, out var existing)) return existing;
        Claim(name);
        weights.Add((name, data, dims, half));
        string use = half ? Node("Cast", [name], [OnnxAttr.I("to", (long)OnnxType.Float)], output: name + ".f32") : name;
        weightNames[data] = use;
        return use;
    }

    public string Ints(params long[] values)
    {
        string key = "i64:" + string.Join(",", values);
        if (constants.TryGetValue(key, out var n)) return n;
        n = Claim($"const_{constants.Count}");
        var t = new ProtoMessage().Varint(1, values.Length).Varint(2, (int)OnnxType.Int64).String(8, n);
        var raw = new byte[values.Length * 8];
        MemoryMarshal.Cast<long, byte>(values).CopyTo(raw);
        graph.Message(5, t.Bytes(9, raw));
        return constants[key] = n;
    }

    /// <summary>A scalar (rank 0) int64 constant.</summary>
    public string Scalar(long value)
    {
        string key = "s64:" + value;
        if (constants.TryGetValue(key, out var n)) return n;
        n = Claim($"const_{constants.Count}");
        graph.Message(5, new ProtoMessage().Varint(2, (int)OnnxType.Int64).String(8, n).Bytes(9, BitConverter.GetBytes(value)));
        return constants[key] = n;
    }

    public string Float(float value)
    {
        string key = "f32:" + value.ToString("R", CultureInfo.InvariantCulture);
        if (constants.TryGetValue(key, out var n)) return n;
        n = Claim($"const_{constants.Count}");
        graph.Message(5, new ProtoMessage().Varint(2, (int)OnnxType.Float).String(8, n).Bytes(9, BitConverter.GetBytes(value)));
        return constants[key] = n;
    }

    /// <summary>Adds a node with one output and returns the output's name (<paramref name="output"/> or a fresh one).</summary>
    public string Node(string op, string[] inputs, OnnxAttr[]? attrs = null, string? output = null) => Nodes(op, inputs, 1, attrs, output == null ? null : [output])[0];

    public string[] Nodes(string op, string[] inputs, int outputs, OnnxAttr[]? attrs = null, string[]? outputNames = null)
    {
        var outs = outputNames ?? Enumerable.Range(0, outputs).Select(_ => $"{op}_{counter++}").ToArray();
        foreach (var o in outs) Claim(o);
        var node = new ProtoMessage();
        foreach (var i in inputs) node.String(1, i);
        foreach (var o in outs) node.String(2, o);
        node.String(3, $"n{counter++}_{op}").String(4, op);
        foreach (var a in attrs ?? [])
        {
            var am = new ProtoMessage().String(1, a.Name);
            if (a.Float is float f) am.Float(2, f).Varint(20, 1);
            else if (a.Int is long v) am.Varint(3, v).Varint(20, 2);
            else { foreach (var x in a.Ints!) am.Varint(8, x); am.Varint(20, 7); }
            node.Message(5, am);
        }
        graph.Message(1, node);
        return outs;
    }

    /// <summary>Sum of the weight initializers' bytes.</summary>
    public long WeightBytes => weights.Sum(w => (long)w.Data.Length * (w.Half ? 2 : 4));

    /// <summary>
    /// Writes the model to <paramref name="path"/> (and, when <paramref name="externalData"/> names a file,
    /// the weights to it, referenced by its file name). Streams only: no weight is copied a second time.
    /// </summary>
    public void Write(Stream model, Stream? externalData, string? externalName, int irVersion, int opset, string graphName,
        IReadOnlyDictionary<string, string> metadata)
    {
        if (!BitConverter.IsLittleEndian) throw new KeditException("ONNX export needs a little-endian host (raw tensor data is little-endian)");
        long offset = 0;
        foreach (var (name, data, dims, half) in weights)
        {
            var t = new ProtoMessage();
            foreach (long d in dims) t.Varint(1, d);
            t.Varint(2, (int)(half ? OnnxType.Float16 : OnnxType.Float)).String(8, name);
            // Halves are converted once into their own buffer; float32 data is written from the model's arrays.
            ReadOnlyMemory<byte> raw = half ? Halves(data) : default;
            if (externalData == null) { if (half) t.Bytes(9, raw); else t.Floats(9, data); }
            else
            {
                var bytes = half ? raw.Span : MemoryMarshal.AsBytes(data.AsSpan());
                externalData.Write(bytes);
                t.Message(13, Entry("location", externalName!)).Message(13, Entry("offset", offset.ToString(CultureInfo.InvariantCulture)))
                 .Message(13, Entry("length", bytes.Length.ToString(CultureInfo.InvariantCulture))).Varint(14, 1);
                offset += bytes.Length;
            }
            graph.Message(5, t);
        }
        graph.String(2, graphName);
        var m = new ProtoMessage().Varint(1, irVersion).String(2, "kedit").String(3, "1")
            .Message(7, graph).Message(8, new ProtoMessage().String(1, "").Varint(2, opset));
        foreach (var (k, v) in metadata) m.Message(14, Entry(k, v));
        m.WriteTo(model);
    }

    static byte[] Halves(float[] data)
    {
        var b = new byte[data.Length * 2];
        var h = MemoryMarshal.Cast<byte, Half>(b.AsSpan());
        for (int i = 0; i < data.Length; i++) h[i] = (Half)data[i];
        return b;
    }

    static ProtoMessage Entry(string key, string value) => new ProtoMessage().String(1, key).String(2, value);

    static ProtoMessage ValueInfo(string name, OnnxType type, object[] dims)
    {
        var shape = new ProtoMessage();
        foreach (var d in dims)
            shape.Message(1, d is string s ? new ProtoMessage().String(2, s) : new ProtoMessage().Varint(1, Convert.ToInt64(d, CultureInfo.InvariantCulture)));
        var tensor = new ProtoMessage().Varint(1, (int)type).Message(2, shape);
        return new ProtoMessage().String(1, name).Message(2, new ProtoMessage().Message(1, tensor));
    }

    string Claim(string name)
    {
        if (!names.Add(name)) throw new InvalidOperationException($"ONNX graph name {name} used twice");
        return name;
    }
}
