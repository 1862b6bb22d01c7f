using System.Text.Json;

namespace Kedit.Tests.Editing.LinearAlgebra;

/// <summary>
/// Minimal safetensors reader for the PRUNE fixture test (F32, F64, I64 tensors only), so these tests do
/// not depend on the engine's loader.
/// </summary>
internal sealed class MiniSafetensors
{
    readonly byte[] _bytes;
    readonly long _dataStart;
    readonly Dictionary<string, (string Dtype, long[] Shape, long Begin, long End)> _entries = new();

    public MiniSafetensors(string path)
    {
        _bytes = File.ReadAllBytes(path);
        long headerLen = BitConverter.ToInt64(_bytes, 0);
        _dataStart = 8 + headerLen;
        using var doc = JsonDocument.Parse(_bytes.AsMemory(8, (int)headerLen));
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            _entries[p.Name] = (p.Value.GetProperty("dtype").GetString()!, shape, offs[0], offs[1]);
        }
    }

    public long[] Shape(string name) => _entries[name].Shape;

    public double[] ReadDoubles(string name)
    {
        var (dtype, _, b, e) = _entries[name];
        var span = _bytes.AsSpan((int)(_dataStart + b), (int)(e - b));
        return dtype switch
        {
            "F32" => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(span).ToArray().Select(v => (double)v).ToArray(),
            "F64" => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(span).ToArray(),
            "I64" => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(span).ToArray().Select(v => (double)v).ToArray(),
            _ => throw new NotSupportedException($"{name}: dtype {dtype}"),
        };
    }
}
