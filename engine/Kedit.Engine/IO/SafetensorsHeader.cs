using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Kedit.IO;

/// <summary>
/// Parses and validates a safetensors header (the JSON after the 8-byte length) against the
/// format's rules: https://github.com/huggingface/safetensors (README "Format"). Every number is
/// checked before use, so a hostile header cannot make a later read go out of bounds.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>The reference implementation refuses headers over 100 MB; so do we.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public const string MetadataKey = "__metadata__";

    public sealed record Parsed(List<TensorInfo> Tensors, Dictionary<string, string> Metadata);

    static KeditException Bad(string file, string message) =>
        new($"invalid safetensors file '{file}': {message}");

    static KeditException BadTensor(string file, string tensor, string message) =>
        new($"invalid safetensors file '{file}': tensor '{tensor}' {message}");

    /// <param name="header">the N header bytes</param>
    /// <param name="dataStart">absolute offset of the data section (8 + N)</param>
    /// <param name="dataLength">bytes in the data section (file length − 8 − N)</param>
    /// <param name="file">path for messages; also stored in each <see cref="TensorInfo"/></param>
    public static Parsed Parse(ReadOnlySpan<byte> header, long dataStart, long dataLength, string file)
    {
        if (!Utf8.IsValid(header)) throw Bad(file, "the header is not valid UTF-8");
        if (header.Length == 0 || header[0] != (byte)'{')
            throw Bad(file, "the header does not start with '{' (not a safetensors file, or corrupt)");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad(file, $"the header is not valid JSON ({e.Message})");
        }

        using (doc)
        {
            try
            {
                return Walk(doc.RootElement, dataStart, dataLength, file);
            }
            catch (InvalidOperationException e)
            {
                // JsonDocument accepts escapes such as "\ud800" but cannot turn a lone surrogate
                // into a .NET string; it says so with InvalidOperationException when asked.
                throw Bad(file, $"the header has a string that is not valid text ({e.Message})");
            }
        }
    }

    static Parsed Walk(JsonElement root, long dataStart, long dataLength, string file)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Bad(file, "the header is not a JSON object");

        var tensors = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonProperty prop in root.EnumerateObject())
        {
            string name = prop.Name;
            if (!seen.Add(name))
                throw name == MetadataKey
                    ? Bad(file, $"the header has \"{MetadataKey}\" twice")
                    : BadTensor(file, name, "appears twice in the header (duplicate names are not allowed)");
            if (name == MetadataKey)
            {
                ParseMetadata(prop.Value, metadata, file);
                continue;
            }
            tensors.Add(ParseEntry(name, prop.Value, dataStart, dataLength, file));
        }

        CheckTiling(tensors, dataStart, dataLength, file);
        return new Parsed(tensors, metadata);
    }

    static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, string file)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Bad(file, $"\"{MetadataKey}\" must be an object of string to string, not {Kind(value)}");
        foreach (JsonProperty m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw Bad(file, $"\"{MetadataKey}\" entry \"{m.Name}\" must be a string, not {Kind(m.Value)}");
            if (!metadata.TryAdd(m.Name, m.Value.GetString()!))
                throw Bad(file, $"\"{MetadataKey}\" has the key \"{m.Name}\" twice");
        }
    }

    static TensorInfo ParseEntry(string name, JsonElement entry, long dataStart, long dataLength, string file)
    {
        if (name.Length == 0) throw Bad(file, "a tensor has an empty name");
        if (entry.ValueKind != JsonValueKind.Object)
            throw BadTensor(file, name, $"must be an object with dtype, shape and data_offsets, not {Kind(entry)}");

        JsonElement? dtypeEl = null, shapeEl = null, offsetsEl = null;
        foreach (JsonProperty p in entry.EnumerateObject())
        {
            // Other keys are ignored, as the reference implementation does; repeated keys are
            // refused because their meaning would depend on the parser.
            switch (p.Name)
            {
                case "dtype": if (dtypeEl != null) throw BadTensor(file, name, "has \"dtype\" twice"); dtypeEl = p.Value; break;
                case "shape": if (shapeEl != null) throw BadTensor(file, name, "has \"shape\" twice"); shapeEl = p.Value; break;
                case "data_offsets": if (offsetsEl != null) throw BadTensor(file, name, "has \"data_offsets\" twice"); offsetsEl = p.Value; break;
            }
        }
        if (dtypeEl is not { } dt) throw BadTensor(file, name, "has no \"dtype\"");
        if (shapeEl is not { } sh) throw BadTensor(file, name, "has no \"shape\"");
        if (offsetsEl is not { } of) throw BadTensor(file, name, "has no \"data_offsets\"");

        if (dt.ValueKind != JsonValueKind.String)
            throw BadTensor(file, name, $"has a \"dtype\" that is {Kind(dt)}, not a string");
        DType dtype = DTypes.Parse(dt.GetString()!, file, name);

        if (sh.ValueKind != JsonValueKind.Array)
            throw BadTensor(file, name, $"has a \"shape\" that is {Kind(sh)}, not an array");
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        foreach (JsonElement d in sh.EnumerateArray())
            shape[k++] = NonNegativeInteger(d, file, name, "shape");

        if (of.ValueKind != JsonValueKind.Array || of.GetArrayLength() != 2)
            throw BadTensor(file, name, "has \"data_offsets\" that is not an array [begin, end]");
        long begin = NonNegativeInteger(of[0], file, name, "data_offsets");
        long end = NonNegativeInteger(of[1], file, name, "data_offsets");

        long count = 1;
        long byteLength;
        try
        {
            foreach (long d in shape) count = checked(count * d);
            byteLength = checked(count * DTypes.SizeOf(dtype));
        }
        catch (OverflowException)
        {
            throw BadTensor(file, name, $"has shape [{string.Join(", ", shape)}] whose size overflows 64 bits");
        }
        if (begin > end)
            throw BadTensor(file, name, $"has data_offsets [{begin}, {end}] with begin > end");
        if (end - begin != byteLength)
            throw BadTensor(file, name,
                $"has data_offsets [{begin}, {end}] spanning {end - begin} bytes, but dtype {DTypes.ToSafetensorsName(dtype)} " +
                $"(size {DTypes.SizeOf(dtype)}) × shape [{string.Join(", ", shape)}] needs {byteLength} bytes");
        if (end > dataLength)
            throw BadTensor(file, name,
                $"has data_offsets [{begin}, {end}] that end beyond the data section ({dataLength} bytes; file truncated?)");

        return new TensorInfo(name, dtype, shape, dataStart + begin, byteLength, file);
    }

    /// <summary>
    /// The format requires the data section to be covered exactly: no overlaps, no holes, no
    /// trailing bytes ("The byte buffer needs to be entirely indexed, and cannot contain holes").
    /// Sorts <paramref name="tensors"/> into offset order.
    /// </summary>
    static void CheckTiling(List<TensorInfo> tensors, long dataStart, long dataLength, string file)
    {
        tensors.Sort((a, b) =>
        {
            int c = a.Offset.CompareTo(b.Offset);
            if (c != 0) return c;
            c = a.ByteLength.CompareTo(b.ByteLength); // empty tensors first at a shared offset
            return c != 0 ? c : string.CompareOrdinal(a.Name, b.Name);
        });
        long covered = 0; // relative to the data section
        TensorInfo? previous = null;
        foreach (TensorInfo t in tensors)
        {
            long begin = t.Offset - dataStart;
            if (begin < covered)
                throw BadTensor(file, t.Name,
                    $"(data_offsets [{begin}, {begin + t.ByteLength}]) overlaps tensor '{previous!.Name}' " +
                    $"(data_offsets [{previous.Offset - dataStart}, {covered}])");
            if (begin > covered)
                throw BadTensor(file, t.Name,
                    $"starts at data offset {begin}, leaving bytes [{covered}, {begin}) that no tensor covers " +
                    "(the format does not allow holes)");
            covered = begin + t.ByteLength;
            previous = t;
        }
        if (covered != dataLength)
            throw Bad(file,
                $"the tensors cover {covered} bytes of the data section but it has {dataLength} " +
                "(trailing bytes are not allowed; file corrupt?)");
    }

    static long NonNegativeInteger(JsonElement e, string file, string tensor, string field)
    {
        if (e.ValueKind != JsonValueKind.Number)
            throw BadTensor(file, tensor, $"has a \"{field}\" element that is {Kind(e)}, not an integer");
        if (!e.TryGetInt64(out long v))
            throw BadTensor(file, tensor, $"has a \"{field}\" element {e.GetRawText()} that is not an integer in range");
        if (v < 0) throw BadTensor(file, tensor, $"has a negative \"{field}\" element {v}");
        return v;
    }

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };
}
