using System.Text;
using System.Text.Json;

namespace Kedit.Tokenization;

/// <summary>One step of HF's "decoder": rewrites the list of token strings (HF decode_chain).</summary>
internal interface IDecoder
{
    List<string> Decode(List<string> tokens);
}

internal sealed class SequenceDecoder(IDecoder[] steps) : IDecoder
{
    public List<string> Decode(List<string> tokens)
    {
        foreach (var step in steps) tokens = step.Decode(tokens);
        return tokens;
    }
}

/// <summary>Byte-level characters back to bytes, all tokens joined, then UTF-8 decoded (invalid bytes → U+FFFD).</summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public List<string> Decode(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens) ByteLevelMap.AppendBytes(t, bytes);
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

internal sealed class ReplaceDecoder(string pattern, string content) : IDecoder
{
    public List<string> Decode(List<string> tokens) =>
        tokens.ConvertAll(t => pattern.Length == 0 ? t : t.Replace(pattern, content, StringComparison.Ordinal));
}

/// <summary>Runs of &lt;0xNN&gt; tokens become the text their bytes spell; invalid UTF-8 gives one U+FFFD per byte (as HF).</summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    public List<string> Decode(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        var pending = new List<byte>();
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        void Flush()
        {
            if (pending.Count == 0) return;
            try { output.Add(strict.GetString(pending.ToArray())); }
            catch (DecoderFallbackException) { output.Add(new string('\uFFFD', pending.Count)); }
            pending.Clear();
        }
        foreach (var t in tokens)
        {
            if (TryParseByteToken(t, out byte b)) { pending.Add(b); continue; }
            Flush();
            output.Add(t);
        }
        Flush();
        return output;
    }

    internal static bool TryParseByteToken(string t, out byte value)
    {
        value = 0;
        return t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
            && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }
}

internal sealed class FuseDecoder : IDecoder
{
    public List<string> Decode(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from each token.</summary>
internal sealed class StripDecoder(string content, int start, int stop) : IDecoder
{
    public List<string> Decode(List<string> tokens) => tokens.ConvertAll(t =>
    {
        int from = 0, to = t.Length;
        for (int k = 0; k < start && t.AsSpan(from, to - from).StartsWith(content, StringComparison.Ordinal); k++) from += content.Length;
        for (int k = 0; k < stop && t.AsSpan(from, to - from).EndsWith(content, StringComparison.Ordinal); k++) to -= content.Length;
        return t[from..to];
    });
}

/// <summary>HF Metaspace decoder: "▁" → space; the first token loses its leading space unless the prefix scheme is "never".</summary>
internal sealed class MetaspaceDecoder(string replacement, bool stripFirstSpace) : IDecoder
{
    public List<string> Decode(List<string> tokens)
    {
        var output = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string t = tokens[i].Replace(replacement, " ", StringComparison.Ordinal);
            if (i == 0 && stripFirstSpace && t.StartsWith(' ')) t = t[1..];
            output.Add(t);
        }
        return output;
    }
}

internal static class DecoderFactory
{
    public static IDecoder Create(JsonFields f, JsonElement spec, string path)
    {
        if (spec.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object");
        string type = f.RequireString(spec, "type", path);
        switch (type)
        {
            case "Sequence":
            {
                var list = f.RequireArray(spec, "decoders", path);
                var steps = new List<IDecoder>();
                int i = 0;
                foreach (var item in list.EnumerateArray()) steps.Add(Create(f, item, $"{path}.decoders[{i++}]"));
                return new SequenceDecoder(steps.ToArray());
            }
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Replace":
            {
                var (literal, _) = NormalizerFactory.ReadPattern(f, spec, path);
                if (literal == null) throw f.Error(JsonFields.Join(path, "pattern"), "must be a {\"String\": ...} pattern (regex replacement in decoders is not supported)");
                return new ReplaceDecoder(literal, f.RequireString(spec, "content", path));
            }
            case "Strip":
                return new StripDecoder(f.RequireSingleChar(spec, "content", path), f.OptionalInt(spec, "start", path) ?? 0, f.OptionalInt(spec, "stop", path) ?? 0);
            case "Metaspace":
            {
                string replacement = f.RequireSingleChar(spec, "replacement", path);
                string? scheme = f.OptionalString(spec, "prepend_scheme", path);
                bool strip = scheme == null ? (f.OptionalBool(spec, "add_prefix_space", path) ?? true) : scheme != "never";
                return new MetaspaceDecoder(replacement, strip);
            }
            default:
                throw f.Error(JsonFields.Join(path, "type"), $"has unsupported decoder type \"{type}\" (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace)");
        }
    }
}
