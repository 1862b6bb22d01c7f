using System.Text.Json;

namespace Kedit.Tokenization;

/// <summary>
/// Typed access to tokenizer JSON with errors that name the file and the dotted field path
/// (e.g. "tokenizer.json: field 'model.merges[12]' ...").
/// </summary>
internal sealed class JsonFields
{
    public string File { get; }

    public JsonFields(string file) => File = file;

    public KeditException Error(string field, string problem) => new($"{File}: field '{field}' {problem}");

    /// <summary>The property, or null when it is absent or JSON null.</summary>
    public static JsonElement? Optional(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public JsonElement Require(JsonElement obj, string name, string path) =>
        Optional(obj, name) ?? throw Error(Join(path, name), "is missing");

    public JsonElement RequireObject(JsonElement obj, string name, string path)
    {
        var v = Require(obj, name, path);
        return v.ValueKind == JsonValueKind.Object ? v : throw Error(Join(path, name), $"must be an object, found {Describe(v)}");
    }

    public JsonElement RequireArray(JsonElement obj, string name, string path)
    {
        var v = Require(obj, name, path);
        return v.ValueKind == JsonValueKind.Array ? v : throw Error(Join(path, name), $"must be an array, found {Describe(v)}");
    }

    public string RequireString(JsonElement obj, string name, string path) =>
        OptionalString(obj, name, path) ?? throw Error(Join(path, name), "is missing");

    public string? OptionalString(JsonElement obj, string name, string path)
    {
        var v = Optional(obj, name);
        if (v == null) return null;
        return v.Value.ValueKind == JsonValueKind.String ? v.Value.GetString()! : throw Error(Join(path, name), $"must be a string, found {Describe(v.Value)}");
    }

    public bool? OptionalBool(JsonElement obj, string name, string path)
    {
        var v = Optional(obj, name);
        if (v == null) return null;
        return v.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(Join(path, name), $"must be true or false, found {Describe(v.Value)}"),
        };
    }

    public int? OptionalInt(JsonElement obj, string name, string path)
    {
        var v = Optional(obj, name);
        if (v == null) return null;
        return AsInt(v.Value, Join(path, name));
    }

    public int AsInt(JsonElement v, string path) =>
        v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Error(path, $"must be a 32-bit integer, found {Describe(v)}");

    /// <summary>
    /// Largest token id a tokenizer file may use: 4,194,303, sixteen times the largest real vocabulary
    /// (~262k). The id → token table is sized by the largest id, so this caps it at 32 MB.
    /// </summary>
    public const int MaxTokenId = (1 << 22) - 1;

    /// <summary>A token id: an integer in 0..<see cref="MaxTokenId"/>.</summary>
    public int AsTokenId(JsonElement v, string path)
    {
        int id = AsInt(v, path);
        return id is >= 0 and <= MaxTokenId ? id : throw Error(path, $"must be a token id in 0..{MaxTokenId}, found {id}");
    }

    public string AsString(JsonElement v, string path) =>
        v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Error(path, $"must be a string, found {Describe(v)}");

    /// <summary>A single character field (e.g. Metaspace's replacement, Strip's content).</summary>
    public string RequireSingleChar(JsonElement obj, string name, string path)
    {
        string s = RequireString(obj, name, path);
        return s.Length == 1 || (s.Length == 2 && char.IsSurrogatePair(s[0], s[1])) ? s : throw Error(Join(path, name), $"must be one character, found \"{s}\"");
    }

    public static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;

    static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"\"{Truncate(v.GetString()!)}\"",
        JsonValueKind.Number => v.GetRawText(),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        _ => "an object",
    };

    static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";

    /// <summary>Parses a JSON file through <see cref="Kedit.IO.StrictJson"/> (errors name the file and field).</summary>
    public static JsonDocument ParseFile(string path) => Kedit.IO.StrictJson.ReadFile(path);
}
