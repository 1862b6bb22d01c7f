using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kedit.Tokenization;

/// <summary>One step of HF's "normalizer": rewrites a piece of input text before pre-tokenization.</summary>
internal interface INormalizer
{
    string Normalize(string text);
}

internal sealed class SequenceNormalizer(INormalizer[] steps) : INormalizer
{
    public string Normalize(string text)
    {
        foreach (var step in steps) text = step.Normalize(text);
        return text;
    }
}

/// <summary>Prepends a string to non-empty text (HF leaves empty text alone).</summary>
internal sealed class PrependNormalizer(string prefix) : INormalizer
{
    public string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class ReplaceNormalizer : INormalizer
{
    readonly string? _literal;
    readonly Regex? _regex;
    readonly string _content, _source;

    public ReplaceNormalizer(string? literal, Regex? regex, string content, string source) => (_literal, _regex, _content, _source) = (literal, regex, content, source);

    public string Normalize(string text)
    {
        if (_literal != null) return _literal.Length == 0 ? text : text.Replace(_literal, _content, StringComparison.Ordinal);
        try { return _regex!.Replace(text, _content.Replace("$", "$$")); }
        catch (RegexMatchTimeoutException) { throw CodePointRegex.TimedOut(_source, text.Length); }
    }
}

internal sealed class UnicodeFormNormalizer(NormalizationForm form) : INormalizer
{
    public string Normalize(string text) => text.Normalize(form);
}

internal sealed class LowercaseNormalizer : INormalizer
{
    public string Normalize(string text) => text.ToLowerInvariant();
}

internal sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public string Normalize(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
}

internal static class NormalizerFactory
{
    /// <summary>Builds the normalizer described at <paramref name="path"/>; unknown types are an error, not a guess.</summary>
    public static INormalizer Create(JsonFields f, JsonElement spec, string path)
    {
        if (spec.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object");
        string type = f.RequireString(spec, "type", path);
        switch (type)
        {
            case "Sequence":
            {
                var list = f.RequireArray(spec, "normalizers", path);
                var steps = new List<INormalizer>();
                int i = 0;
                foreach (var item in list.EnumerateArray()) steps.Add(Create(f, item, $"{path}.normalizers[{i++}]"));
                return new SequenceNormalizer(steps.ToArray());
            }
            case "Prepend":
                return new PrependNormalizer(f.RequireString(spec, "prepend", path));
            case "Replace":
            {
                var (literal, regex) = ReadPattern(f, spec, path);
                return new ReplaceNormalizer(literal, regex, f.RequireString(spec, "content", path), $"{f.File}: field '{JsonFields.Join(path, "pattern.Regex")}'");
            }
            case "NFC": return CheckedForm(f, path, type, NormalizationForm.FormC);
            case "NFD": return CheckedForm(f, path, type, NormalizationForm.FormD);
            case "NFKC": return CheckedForm(f, path, type, NormalizationForm.FormKC);
            case "NFKD": return CheckedForm(f, path, type, NormalizationForm.FormKD);
            case "Lowercase": return new LowercaseNormalizer();
            case "Strip":
                return new StripNormalizer(f.OptionalBool(spec, "strip_left", path) ?? true, f.OptionalBool(spec, "strip_right", path) ?? true);
            default:
                throw f.Error(JsonFields.Join(path, "type"), $"has unsupported normalizer type \"{type}\" (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)");
        }
    }

    /// <summary>
    /// Unicode normalization needs ICU data; in globalization-invariant mode .NET leaves text unchanged,
    /// which would silently give wrong ids, so refuse instead.
    /// </summary>
    static INormalizer CheckedForm(JsonFields f, string path, string type, NormalizationForm form)
    {
        if ("\uFB01".Normalize(NormalizationForm.FormKC) != "fi" || "e\u0301".Normalize(NormalizationForm.FormC) != "\u00E9")
            throw f.Error(JsonFields.Join(path, "type"), $"is \"{type}\", but Unicode normalization is unavailable in this process (globalization-invariant mode without ICU)");
        return new UnicodeFormNormalizer(form);
    }

    /// <summary>Reads HF's pattern field: {"String": "..."} (literal) or {"Regex": "..."}.</summary>
    public static (string? Literal, Regex? Regex) ReadPattern(JsonFields f, JsonElement spec, string path)
    {
        var pattern = f.RequireObject(spec, "pattern", path);
        string p = JsonFields.Join(path, "pattern");
        string? literal = f.OptionalString(pattern, "String", p);
        if (literal != null) return (literal, null);
        string? regex = f.OptionalString(pattern, "Regex", p);
        if (regex != null) return (null, CompileRegex(f, regex, JsonFields.Join(p, "Regex")));
        throw f.Error(p, "must hold \"String\" or \"Regex\"");
    }

    public static Regex CompileRegex(JsonFields f, string pattern, string path)
    {
        try { return new Regex(pattern, RegexOptions.CultureInvariant, CodePointRegex.MatchTimeout); }
        catch (ArgumentException e) { throw f.Error(path, $"is a regex .NET cannot compile ({e.Message})"); }
    }
}
