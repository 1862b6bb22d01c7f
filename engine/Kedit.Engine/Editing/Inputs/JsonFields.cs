using System.Text.Json;

namespace Kedit.Editing.Inputs;

/// <summary>
/// Typed reads of JSON object fields that fail with a <see cref="KeditException"/> naming the
/// source, the record (when there is one) and the field path. Shared by the request loader and
/// the hyperparameter parser so every input error reads the same way.
/// </summary>
internal readonly struct JsonFields
{
    /// <summary>File name (or caller-chosen source name) and optional record label, e.g. "record 3 (case_id 17)".</summary>
    public JsonFields(string source, string? record = null)
    {
        Source = source;
        Record = record;
    }

    public string Source { get; }
    public string? Record { get; }

    public string Prefix => Record is null ? Source : $"{Source}: {Record}";

    public KeditException Fail(string field, string problem) => new($"{Prefix}: field '{Kedit.IO.StrictJson.Printable(field)}' {problem}");

    public KeditException Fail(string problem) => new($"{Prefix}: {problem}");

    /// <summary>"a string", "a number", ... for error messages.</summary>
    public static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    static string Path(string? parent, string name) => parent is null ? name : parent + "." + name;

    /// <summary>
    /// Rejects duplicate keys (JSON allows them, but the last one would silently win) and keys not in
    /// <paramref name="known"/> (unless in <paramref name="ignored"/>), suggesting the closest known name.
    /// </summary>
    public void CheckKeys(JsonElement obj, string? parent, IReadOnlyCollection<string> known,
        IReadOnlyCollection<string>? ignored = null, string? shapeName = null, bool allowUnknown = false)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in obj.EnumerateObject())
        {
            if (!seen.Add(p.Name))
                throw Fail(Path(parent, p.Name), "appears twice in the same object");
            if (known.Contains(p.Name) || (ignored != null && ignored.Contains(p.Name)) || allowUnknown)
                continue;
            string where = shapeName is null ? "" : $" for {shapeName}";
            string? guess = Closest(p.Name, known);
            // A likely typo gets one suggestion; otherwise list what is accepted.
            string hint = guess is not null
                ? $"; did you mean '{Path(parent, guess)}'?"
                : $" (known: {string.Join(", ", known.OrderBy(k => k, StringComparer.Ordinal))})";
            throw Fail(Path(parent, p.Name), $"is not a known field{where}{hint}");
        }
    }

    public bool Has(JsonElement obj, string name) => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement Required(JsonElement obj, string name, string? parent = null, string? hint = null)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            throw Fail(Path(parent, name), "is missing" + (hint is null ? "" : $" ({hint})"));
        return v;
    }

    public string String(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.String) throw Fail(path, $"must be a string, got {Kind(v)}");
        return v.GetString()!;
    }

    public string RequiredString(JsonElement obj, string name, string? parent = null) =>
        String(Required(obj, name, parent), Path(parent, name));

    public string? OptionalString(JsonElement obj, string name, string? parent = null) =>
        Has(obj, name) ? String(obj.GetProperty(name), Path(parent, name)) : null;

    public int Int(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.Number) throw Fail(path, $"must be an integer, got {Kind(v)}");
        if (!v.TryGetInt32(out int i)) throw Fail(path, $"must be an integer (32-bit), got {v.GetRawText()}");
        return i;
    }

    public int RequiredInt(JsonElement obj, string name, string? parent = null) =>
        Int(Required(obj, name, parent), Path(parent, name));

    public int? OptionalInt(JsonElement obj, string name, string? parent = null) =>
        Has(obj, name) ? Int(obj.GetProperty(name), Path(parent, name)) : null;

    public double Double(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.Number) throw Fail(path, $"must be a number, got {Kind(v)}");
        double d = v.GetDouble();
        if (!double.IsFinite(d)) throw Fail(path, $"must be a finite number, got {v.GetRawText()}");
        return d;
    }

    public double RequiredDouble(JsonElement obj, string name, string? parent = null) =>
        Double(Required(obj, name, parent), Path(parent, name));

    public double? OptionalDouble(JsonElement obj, string name, string? parent = null) =>
        Has(obj, name) ? Double(obj.GetProperty(name), Path(parent, name)) : null;

    public bool Bool(JsonElement v, string path) => v.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Fail(path, $"must be true or false, got {Kind(v)}"),
    };

    public bool? OptionalBool(JsonElement obj, string name, string? parent = null) =>
        Has(obj, name) ? Bool(obj.GetProperty(name), Path(parent, name)) : null;

    public JsonElement Array(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.Array) throw Fail(path, $"must be an array, got {Kind(v)}");
        return v;
    }

    public JsonElement Object(JsonElement v, string path)
    {
        if (v.ValueKind != JsonValueKind.Object) throw Fail(path, $"must be an object, got {Kind(v)}");
        return v;
    }

    public List<string> StringList(JsonElement v, string path)
    {
        Array(v, path);
        var list = new List<string>(v.GetArrayLength());
        int i = 0;
        foreach (var item in v.EnumerateArray())
            list.Add(String(item, $"{path}[{i++}]"));
        return list;
    }

    public List<string> OptionalStringList(JsonElement obj, string name, string? parent = null) =>
        Has(obj, name) ? StringList(obj.GetProperty(name), Path(parent, name)) : new List<string>();

    public List<int> IntList(JsonElement v, string path)
    {
        Array(v, path);
        var list = new List<int>(v.GetArrayLength());
        int i = 0;
        foreach (var item in v.EnumerateArray())
            list.Add(Int(item, $"{path}[{i++}]"));
        return list;
    }

    /// <summary>Closest name by edit distance, or null when nothing is plausibly a typo of <paramref name="name"/>.</summary>
    public static string? Closest(string name, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            int d = EditDistance(name.ToLowerInvariant(), c.ToLowerInvariant());
            if (d < bestDistance) { bestDistance = d; best = c; }
        }
        // A suggestion that needs more edits than about a third of the name is noise, not help.
        int limit = Math.Max(2, name.Length / 3);
        return bestDistance <= limit ? best : null;
    }

    /// <summary>Levenshtein distance (insert, delete, substitute each cost 1).</summary>
    public static int EditDistance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                cur[j] = Math.Min(sub, Math.Min(prev[j] + 1, cur[j - 1] + 1));
            }
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    static readonly JsonSerializerOptions QuoteOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>A string as a JSON literal for messages (escapes visible), cut to about 80 characters.</summary>
    public static string Quote(string s)
    {
        string q = JsonSerializer.Serialize(s.Length > 80 ? s[..77] + "..." : s, QuoteOptions);
        return q;
    }

    /// <summary>Reads a file as text (UTF-8), turning I/O failures and oversize files into a message naming the file.</summary>
    public static string ReadFile(string path, string what) => System.Text.Encoding.UTF8.GetString(Kedit.IO.StrictJson.ReadBytes(path, what));

    /// <summary>Parses one JSON document through <see cref="Kedit.IO.StrictJson"/>.</summary>
    public static JsonDocument ParseDocument(string json, string source) => Kedit.IO.StrictJson.Parse(json, source);
}
