namespace Kedit.IO;

/// <summary>Element types a safetensors file may hold that kedit reads and writes.</summary>
public enum DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool }

/// <summary>Sizes and safetensors names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(DType t) => t switch
    {
        DType.F64 or DType.I64 => 8,
        DType.F32 or DType.I32 => 4,
        DType.F16 or DType.BF16 or DType.I16 => 2,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a DType"),
    };

    /// <summary>The dtype string used in safetensors headers ("F32", "BF16", "BOOL", ...).</summary>
    public static string ToSafetensorsName(DType t) => t switch
    {
        DType.F64 => "F64",
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I64 => "I64",
        DType.I32 => "I32",
        DType.I16 => "I16",
        DType.I8 => "I8",
        DType.U8 => "U8",
        DType.Bool => "BOOL",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not a DType"),
    };

    /// <summary>True for F64, F32, F16 and BF16.</summary>
    public static bool IsFloat(DType t) => t is DType.F64 or DType.F32 or DType.F16 or DType.BF16;

    // Names the safetensors format defines but kedit does not handle; listed so the error can say
    // "not supported" instead of "unknown".
    static readonly HashSet<string> KnownUnsupported = new(StringComparer.Ordinal)
    {
        "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "E8M0",
        "U16", "U32", "U64", "C64", "C128",
    };

    /// <summary>
    /// Parses a safetensors dtype name (case-sensitive, as the format writes them).
    /// Throws <see cref="KeditException"/> naming the file, the tensor and the dtype when it is
    /// unknown or not supported.
    /// </summary>
    public static DType Parse(string name, string fileForErrors, string tensorForErrors)
    {
        switch (name)
        {
            case "F64": return DType.F64;
            case "F32": return DType.F32;
            case "F16": return DType.F16;
            case "BF16": return DType.BF16;
            case "I64": return DType.I64;
            case "I32": return DType.I32;
            case "I16": return DType.I16;
            case "I8": return DType.I8;
            case "U8": return DType.U8;
            case "BOOL": return DType.Bool;
        }
        string what = KnownUnsupported.Contains(name)
            ? $"has dtype {name}; {name} is not supported"
            : $"has unknown dtype \"{name}\"";
        throw new KeditException(
            $"safetensors file '{fileForErrors}': tensor '{tensorForErrors}' {what} " +
            "(supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    }
}

/// <summary>
/// Where one tensor lies: <paramref name="Offset"/> is the absolute byte offset in
/// <paramref name="File"/> (header included), <paramref name="ByteLength"/> its size in bytes.
/// </summary>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long Offset, long ByteLength, string File)
{
    /// <summary>Product of the shape (1 for a scalar, shape []).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n = checked(n * d);
            return n;
        }
    }

    /// <summary>The shape written as "[a, b]" for messages.</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
