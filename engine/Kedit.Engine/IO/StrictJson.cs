using System.Text;
using System.Text.Json;

namespace Kedit.IO;

/// <summary>
/// The one way kedit parses JSON it did not write itself in this run (requests, hparams, corpora
/// lines, tokenizer files, journals, recipes, service bodies). On top of the syntax check it refuses,
/// naming the source and the field path: duplicate keys (the last would silently win), strings
/// that are not valid Unicode (a lone UTF-16 surrogate escape such as "\ud800", or invalid UTF-8 —
/// System.Text.Json accepts both at parse time and throws later, from whatever reads the string),
/// and numbers a double cannot hold (1e999). Past this gate, <c>GetString</c> and <c>GetDouble</c>
/// on the document cannot throw.
/// </summary>
public static class StrictJson
{
    /// <summary>Largest JSON file read: well above any real tokenizer.json (Llama 3's is 9 MB), far below memory.</summary>
    public const long MaxFileBytes = 512L << 20;

    public static readonly JsonDocumentOptions Options = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Disallow,
        MaxDepth = 64,
    };

    /// <summary>Reads and parses a JSON file; I/O failures, oversize files and bad JSON name the file.</summary>
    public static JsonDocument ReadFile(string path, string? what = null) => Parse(ReadBytes(path, what), path);

    /// <summary>A file's bytes, refusing directories, missing files and files over <see cref="MaxFileBytes"/>.</summary>
    public static byte[] ReadBytes(string path, string? what = null)
    {
        string label = what is null ? $"'{path}'" : $"{what} file '{path}'";
        if (string.IsNullOrWhiteSpace(path)) throw new KeditException($"{what ?? "input"}: no file path given");
        if (Directory.Exists(path)) throw new KeditException($"{label} is a directory, not a file");
        if (!File.Exists(path)) throw new KeditException($"{label} does not exist");
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw new KeditException($"{label} is {length:N0} bytes; JSON inputs are limited to {MaxFileBytes:N0}");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeditException($"cannot read {label}: {e.Message}", e);
        }
    }

    public static JsonDocument Parse(string json, string source) => Parse(Encoding.UTF8.GetBytes(json), source);

    /// <summary>Parses one JSON document (a UTF-8 BOM is skipped), validated as described on the class.</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        if (utf8.Span.StartsWith("\uFEFF"u8)) utf8 = utf8[3..];
        Validate(utf8.Span, source, multipleValues: false);
        try { return JsonDocument.Parse(utf8, Options); }
        catch (JsonException e) { throw Broken(source, e); }
    }

    /// <summary>
    /// Walks the whole input once: syntax (positions 1-based), duplicate keys, string validity and
    /// number range. <paramref name="multipleValues"/> admits JSON Lines / concatenated values.
    /// </summary>
    public static void Validate(ReadOnlySpan<byte> utf8, string source, bool multipleValues)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions
        {
            AllowMultipleValues = multipleValues,
            AllowTrailingCommas = false,
            CommentHandling = JsonCommentHandling.Disallow,
            MaxDepth = Options.MaxDepth,
        });
        // One frame per open container: its path, its keys (objects) or its next index (arrays).
        var frames = new Stack<(string Path, HashSet<string>? Keys, int Index)>();
        string? pendingName = null;
        try
        {
            while (reader.Read())
            {
                var token = reader.TokenType;
                if (token == JsonTokenType.PropertyName)
                {
                    var (path, keys, _) = frames.Peek();
                    string name = ReadString(ref reader, source, path, isName: true);
                    if (!keys!.Add(name)) throw Fail(source, Join(path, name), "appears twice in the same object");
                    pendingName = name;
                    continue;
                }
                if (token is JsonTokenType.EndObject or JsonTokenType.EndArray) { frames.Pop(); continue; }
                string here = CurrentPath(frames, pendingName);
                pendingName = null;
                if (frames.Count > 0 && frames.Peek().Keys is null)
                {
                    var top = frames.Pop();
                    frames.Push(top with { Index = top.Index + 1 });
                }
                switch (token)
                {
                    case JsonTokenType.StartObject: frames.Push((here, new HashSet<string>(StringComparer.Ordinal), 0)); break;
                    case JsonTokenType.StartArray: frames.Push((here, null, 0)); break;
                    case JsonTokenType.String: ReadString(ref reader, source, here, isName: false); break;
                    case JsonTokenType.Number:
                        if (!reader.TryGetDouble(out double d) || !double.IsFinite(d))
                            throw Fail(source, here, $"holds {Encoding.UTF8.GetString(reader.ValueSpan)}, which is beyond the range of a double");
                        break;
                }
            }
        }
        catch (JsonException e) { throw Broken(source, e); }
    }

    static string CurrentPath(Stack<(string Path, HashSet<string>? Keys, int Index)> frames, string? name)
    {
        if (frames.Count == 0) return "";
        var (path, keys, index) = frames.Peek();
        return keys is not null ? Join(path, name!) : $"{path}[{index}]";
    }

    static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;

    static string ReadString(ref Utf8JsonReader reader, string source, string path, bool isName)
    {
        // Unescaped text must be valid UTF-8; escapes can still encode a lone surrogate, which GetString refuses.
        if (!reader.ValueIsEscaped && !System.Text.Unicode.Utf8.IsValid(reader.ValueSpan))
            throw Fail(source, path, isName ? "has a key that is not valid UTF-8" : "holds a string that is not valid UTF-8");
        try { return reader.GetString()!; }
        catch (InvalidOperationException)
        {
            throw Fail(source, path, isName ? "has a key with an invalid escape (a lone UTF-16 surrogate)"
                                            : "holds a string with an invalid escape (a lone UTF-16 surrogate such as \\ud800)");
        }
    }

    static KeditException Fail(string source, string path, string problem) =>
        new(path.Length == 0 ? $"{source}: the top-level value {problem}" : $"{source}: field '{Printable(path)}' {problem}");

    /// <summary>A field path from a file as one printable line: control characters (escaped keys such as "a\nb") as \uXXXX, so an error stays one line.</summary>
    public static string Printable(string s) => s.Any(char.IsControl)
        ? string.Concat(s.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString())) : s;

    /// <summary>A syntax error as a one-line message naming the source and the 1-based line and byte.</summary>
    public static KeditException Broken(string source, JsonException e)
    {
        string at = e.LineNumber is long line
            ? $" at line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}"
            : "";
        // The JsonException message repeats the position in 0-based form; keep only its first sentence.
        string detail = e.Message;
        int cut = detail.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut > 0) detail = detail[..cut].TrimEnd();
        // It also quotes the offending input, newlines and control bytes included: one line, printable, short.
        detail = new string(detail.Select(c => char.IsControl(c) || char.IsSurrogate(c) ? ' ' : c).ToArray());
        if (detail.Length > 200) detail = detail[..197] + "...";
        return new KeditException($"{source}: invalid JSON{at}: {detail}", e);
    }
}
