using System.Text;

namespace Kedit.IO.Onnx;

/// <summary>One tensor of a graph: an input, output or initializer, with its element type (onnx.proto DataType) and dims.</summary>
public sealed record OnnxValue(string Name, int ElementType, IReadOnlyList<string> Dims, bool External = false, long RawBytes = -1);

/// <summary>One node: its operator (default domain when <see cref="Domain"/> is empty), inputs and outputs.</summary>
public sealed record OnnxNode(string OpType, string Domain, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);

/// <summary>What an ONNX file says of itself: versions, metadata and its graph's structure (weights' bytes are skipped).</summary>
public sealed record OnnxModelInfo(long IrVersion, long Opset, string Producer, IReadOnlyDictionary<string, string> Metadata,
    IReadOnlyList<OnnxValue> Inputs, IReadOnlyList<OnnxValue> Outputs, IReadOnlyList<OnnxValue> Initializers, IReadOnlyList<OnnxNode> Nodes);

/// <summary>
/// Reads an ONNX ModelProto's structure with the project's own protobuf decoder (the counterpart of
/// <see cref="OnnxGraph"/>'s encoder, same onnx.proto field numbers) and checks it: every node input defined before
/// it is used (graph input, initializer or an earlier node's output), every name defined once, every graph output
/// produced, every operator one of ONNX's default-domain operators, inline initializers holding exactly the bytes
/// their dims and type say. The test suite checks exported files with it, independently of ONNX Runtime.
/// </summary>
public static class OnnxReader
{
    /// <summary>Parses <paramref name="path"/>.</summary>
    /// <exception cref="KeditException">Not a well-formed ONNX protobuf, naming the file and what broke.</exception>
    public static OnnxModelInfo Read(string path)
    {
        if (!File.Exists(path)) throw new KeditException($"{path}: file not found");
        var bytes = File.ReadAllBytes(path);
        try { return ReadModel(bytes); }
        catch (FormatException e) { throw new KeditException($"{path}: not a well-formed ONNX model ({e.Message})"); }
    }

    /// <summary>The structural problems of <paramref name="m"/>, empty when there are none.</summary>
    public static IReadOnlyList<string> Check(OnnxModelInfo m)
    {
        var problems = new List<string>();
        var defined = new HashSet<string>(StringComparer.Ordinal);
        void Define(string name, string what) { if (!defined.Add(name)) problems.Add($"{what} '{name}' is defined twice"); }
        foreach (var v in m.Inputs) Define(v.Name, "input");
        foreach (var v in m.Initializers)
        {
            Define(v.Name, "initializer");
            if (!v.External && v.RawBytes >= 0 && ElementSize(v.ElementType) is int size)
            {
                long n = v.Dims.Aggregate(1L, (a, d) => a * long.Parse(d, System.Globalization.CultureInfo.InvariantCulture));
                if (n * size != v.RawBytes) problems.Add($"initializer '{v.Name}' holds {v.RawBytes} bytes, its dims [{string.Join(",", v.Dims)}] say {n * size}");
            }
        }
        for (int i = 0; i < m.Nodes.Count; i++)
        {
            var node = m.Nodes[i];
            if (node.Domain.Length == 0 && !DefaultOps.Contains(node.OpType)) problems.Add($"node {i} uses '{node.OpType}', not an ONNX operator");
            foreach (var input in node.Inputs)
                if (input.Length > 0 && !defined.Contains(input)) problems.Add($"node {i} ({node.OpType}) reads '{input}' before anything defines it");
            foreach (var output in node.Outputs) Define(output, $"node {i} ({node.OpType}) output");
        }
        foreach (var o in m.Outputs)
            if (!defined.Contains(o.Name)) problems.Add($"graph output '{o.Name}' is never produced");
        return problems;
    }

    static int? ElementSize(int type) => type switch { 1 or 6 => 4, 7 or 11 => 8, 10 or 16 => 2, 9 or 2 or 3 => 1, _ => null };

    /// <summary>ONNX's default-domain operators (ai.onnx, through opset 17).</summary>
    static readonly HashSet<string> DefaultOps = new(StringComparer.Ordinal)
    {
        "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool", "BatchNormalization",
        "Bernoulli", "BitShift", "BlackmanWindow", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Compress", "Concat", "ConcatFromSequence",
        "Constant", "ConstantOfShape", "Conv", "ConvInteger", "ConvTranspose", "Cos", "Cosh", "CumSum", "DFT", "DepthToSpace",
        "DequantizeLinear", "Det", "Div", "Dropout", "DynamicQuantizeLinear", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike",
        "Flatten", "Floor", "GRU", "Gather", "GatherElements", "GatherND", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool",
        "Greater", "GreaterOrEqual", "GridSample", "GroupNormalization", "HammingWindow", "HannWindow", "HardSigmoid", "HardSwish", "Hardmax",
        "Identity", "If", "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LSTM", "LayerNormalization", "LeakyRelu", "Less", "LessOrEqual",
        "Log", "LogSoftmax", "Loop", "LpNormalization", "LpPool", "MatMul", "MatMulInteger", "Max", "MaxPool", "MaxRoiPool", "MaxUnpool",
        "Mean", "MeanVarianceNormalization", "MelWeightMatrix", "Min", "Mish", "Mod", "Mul", "Multinomial", "Neg", "NegativeLogLikelihoodLoss",
        "NonMaxSuppression", "NonZero", "Not", "OneHot", "Optional", "OptionalGetElement", "OptionalHasElement", "Or", "PRelu", "Pad", "Pow",
        "QLinearConv", "QLinearMatMul", "QuantizeLinear", "RNN", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
        "Range", "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
        "ReduceSum", "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RoiAlign", "Round", "STFT", "Scan", "Scatter",
        "ScatterElements", "ScatterND", "Selu", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SequenceMap", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size", "Slice", "Softmax",
        "SoftmaxCrossEntropyLoss", "Softplus", "Softsign", "SpaceToDepth", "Split", "SplitToSequence", "Sqrt", "Squeeze", "StringNormalizer",
        "Sub", "Sum", "Tan", "Tanh", "TfIdfVectorizer", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unique", "Unsqueeze",
        "Upsample", "Where", "Xor",
    };

    // ---- protobuf decoding (https://protobuf.dev/programming-guides/encoding/) --------------------

    ref struct Wire(ReadOnlySpan<byte> data)
    {
        readonly ReadOnlySpan<byte> _d = data;
        int _p;

        public bool More => _p < _d.Length;

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_p >= _d.Length) throw new FormatException("a varint runs past the end");
                byte b = _d[_p++];
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
            throw new FormatException("a varint longer than 10 bytes");
        }

        public (int Field, int Wire) Tag() { ulong t = Varint(); return ((int)(t >> 3), (int)(t & 7)); }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong n = Varint();
            if (n > (ulong)(_d.Length - _p)) throw new FormatException($"a field of {n} bytes runs past the end");
            var s = _d.Slice(_p, (int)n); _p += (int)n; return s;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw new FormatException($"wire type {wire} is not used by ONNX");
            }
        }

        void Advance(int n) { if (_p + n > _d.Length) throw new FormatException("a fixed field runs past the end"); _p += n; }
    }

    static string Str(ReadOnlySpan<byte> b) => Encoding.UTF8.GetString(b);

    static OnnxModelInfo ReadModel(ReadOnlySpan<byte> data)
    {
        long ir = 0, opset = 0; string producer = "";
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        List<OnnxValue> inputs = [], outputs = [], inits = []; List<OnnxNode> nodes = [];
        bool sawGraph = false;
        var w = new Wire(data);
        while (w.More)
        {
            var (f, t) = w.Tag();
            if (f == 1 && t == 0) ir = (long)w.Varint();
            else if (f == 2 && t == 2) producer = Str(w.Bytes());
            else if (f == 7 && t == 2) { ReadGraph(w.Bytes(), inputs, outputs, inits, nodes); sawGraph = true; }
            else if (f == 8 && t == 2)
            {
                var o = new Wire(w.Bytes()); string domain = ""; long version = 0;
                while (o.More) { var (g, u) = o.Tag(); if (g == 1 && u == 2) domain = Str(o.Bytes()); else if (g == 2 && u == 0) version = (long)o.Varint(); else o.Skip(u); }
                if (domain is "" or "ai.onnx") opset = version;
            }
            else if (f == 14 && t == 2) { var (k, v) = Entry(w.Bytes()); meta[k] = v; }
            else w.Skip(t);
        }
        if (!sawGraph) throw new FormatException("no graph");
        if (ir == 0) throw new FormatException("no ir_version");
        return new OnnxModelInfo(ir, opset, producer, meta, inputs, outputs, inits, nodes);
    }

    static (string Key, string Value) Entry(ReadOnlySpan<byte> b)
    {
        var w = new Wire(b); string k = "", v = "";
        while (w.More) { var (f, t) = w.Tag(); if (f == 1 && t == 2) k = Str(w.Bytes()); else if (f == 2 && t == 2) v = Str(w.Bytes()); else w.Skip(t); }
        return (k, v);
    }

    static void ReadGraph(ReadOnlySpan<byte> b, List<OnnxValue> inputs, List<OnnxValue> outputs, List<OnnxValue> inits, List<OnnxNode> nodes)
    {
        var w = new Wire(b);
        while (w.More)
        {
            var (f, t) = w.Tag();
            if (t != 2) { w.Skip(t); continue; }
            switch (f)
            {
                case 1: nodes.Add(ReadNode(w.Bytes())); break;
                case 5: inits.Add(ReadTensor(w.Bytes())); break;
                case 11: inputs.Add(ReadValueInfo(w.Bytes())); break;
                case 12: outputs.Add(ReadValueInfo(w.Bytes())); break;
                default: w.Bytes(); break;
            }
        }
    }

    static OnnxNode ReadNode(ReadOnlySpan<byte> b)
    {
        var w = new Wire(b); List<string> ins = [], outs = []; string op = "", domain = "";
        while (w.More)
        {
            var (f, t) = w.Tag();
            if (t == 2 && f == 1) ins.Add(Str(w.Bytes()));
            else if (t == 2 && f == 2) outs.Add(Str(w.Bytes()));
            else if (t == 2 && f == 4) op = Str(w.Bytes());
            else if (t == 2 && f == 7) domain = Str(w.Bytes());
            else w.Skip(t);
        }
        if (op.Length == 0) throw new FormatException("a node without op_type");
        return new OnnxNode(op, domain, ins, outs);
    }

    static OnnxValue ReadTensor(ReadOnlySpan<byte> b)
    {
        var w = new Wire(b); List<string> dims = []; int type = 0; string name = ""; long raw = -1; bool external = false;
        while (w.More)
        {
            var (f, t) = w.Tag();
            if (f == 1 && t == 0) dims.Add(((long)w.Varint()).ToString(System.Globalization.CultureInfo.InvariantCulture));
            else if (f == 1 && t == 2) { var p = new Wire(w.Bytes()); while (p.More) dims.Add(((long)p.Varint()).ToString(System.Globalization.CultureInfo.InvariantCulture)); }
            else if (f == 2 && t == 0) type = (int)w.Varint();
            else if (f == 8 && t == 2) name = Str(w.Bytes());
            else if (f == 9 && t == 2) raw = w.Bytes().Length;
            else if (f == 14 && t == 0) external = w.Varint() == 1;
            else w.Skip(t);
        }
        return new OnnxValue(name, type, dims, external, raw);
    }

    static OnnxValue ReadValueInfo(ReadOnlySpan<byte> b)
    {
        var w = new Wire(b); string name = ""; int type = 0; List<string> dims = [];
        while (w.More)
        {
            var (f, t) = w.Tag();
            if (f == 1 && t == 2) name = Str(w.Bytes());
            else if (f == 2 && t == 2)
            {
                // TypeProto.tensor_type (1) → elem_type (1), shape (2) → dim (1) → dim_value (1) | dim_param (2)
                var tp = new Wire(w.Bytes());
                while (tp.More)
                {
                    var (g, u) = tp.Tag();
                    if (g != 1 || u != 2) { tp.Skip(u); continue; }
                    var tensor = new Wire(tp.Bytes());
                    while (tensor.More)
                    {
                        var (h, x) = tensor.Tag();
                        if (h == 1 && x == 0) type = (int)tensor.Varint();
                        else if (h == 2 && x == 2)
                        {
                            var shape = new Wire(tensor.Bytes());
                            while (shape.More)
                            {
                                var (i, y) = shape.Tag();
                                if (i != 1 || y != 2) { shape.Skip(y); continue; }
                                var dim = new Wire(shape.Bytes()); string d = "?";
                                while (dim.More) { var (j, z) = dim.Tag(); if (j == 1 && z == 0) d = ((long)dim.Varint()).ToString(System.Globalization.CultureInfo.InvariantCulture); else if (j == 2 && z == 2) d = Str(dim.Bytes()); else dim.Skip(z); }
                                dims.Add(d);
                            }
                        }
                        else tensor.Skip(x);
                    }
                }
            }
            else w.Skip(t);
        }
        return new OnnxValue(name, type, dims);
    }
}
