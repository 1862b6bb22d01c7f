using System.Text.Json;

namespace Kedit.Tokenization;

/// <summary>A pre-token: a piece of text BPE works on alone. <c>AtStart</c>: it begins the input text.</summary>
internal readonly record struct PreToken(string Text, bool AtStart);

/// <summary>One step of HF's "pre_tokenizer": splits (and may rewrite) text into pre-tokens.</summary>
internal interface IPreTokenizer
{
    void Split(PreToken piece, List<PreToken> output);
}

/// <summary>How a Split pre-tokenizer treats the matched delimiters (HF SplitDelimiterBehavior).</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal sealed class SequencePreTokenizer(IPreTokenizer[] steps) : IPreTokenizer
{
    public void Split(PreToken piece, List<PreToken> output)
    {
        var current = new List<PreToken> { piece };
        var next = new List<PreToken>();
        foreach (var step in steps)
        {
            next.Clear();
            foreach (var p in current) step.Split(p, next);
            (current, next) = (next, current);
        }
        output.AddRange(current);
    }
}

/// <summary>Splits on a regex or literal and arranges the matches as HF's Split pre-tokenizer does.</summary>
internal sealed class SplitPreTokenizer(CodePointRegex regex, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    [ThreadStatic] static List<(int Start, int Length)>? t_matches;

    public void Split(PreToken piece, List<PreToken> output)
    {
        var matches = t_matches ??= new List<(int, int)>();
        matches.Clear();
        regex.Matches(piece.Text, matches);
        SplitSegments(piece, matches, behavior, invert, output);
    }

    /// <summary>Turns matches into pre-tokens; shared with Metaspace, which splits on its replacement character.</summary>
    public static void SplitSegments(PreToken piece, List<(int Start, int Length)> matches, SplitBehavior behavior, bool invert, List<PreToken> output)
    {
        string text = piece.Text;
        // Segments covering the text: (start, end, isDelimiter); empty matches are ignored.
        var segments = new List<(int Start, int End, bool IsMatch)>(matches.Count * 2 + 1);
        int prev = 0;
        foreach (var (start, length) in matches)
        {
            if (length == 0) continue;
            if (start > prev) segments.Add((prev, start, invert));
            segments.Add((start, start + length, !invert));
            prev = start + length;
        }
        if (prev < text.Length) segments.Add((prev, text.Length, invert));

        var merged = new List<(int Start, int End)>(segments.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var s in segments) if (!s.IsMatch) merged.Add((s.Start, s.End));
                break;
            case SplitBehavior.Isolated:
                foreach (var s in segments) merged.Add((s.Start, s.End));
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var s in segments)
                {
                    if (s.IsMatch && !previousMatch && merged.Count > 0) merged[^1] = (merged[^1].Start, s.End);
                    else merged.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = segments.Count - 1; i >= 0; i--)
                {
                    var s = segments[i];
                    if (s.IsMatch && !previousMatch && merged.Count > 0) merged[^1] = (s.Start, merged[^1].End);
                    else merged.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                merged.Reverse();
                break;
            case SplitBehavior.Contiguous:
                for (int i = 0; i < segments.Count; i++)
                {
                    var s = segments[i];
                    if (i > 0 && s.IsMatch == previousMatch) merged[^1] = (merged[^1].Start, s.End);
                    else merged.Add((s.Start, s.End));
                    previousMatch = s.IsMatch;
                }
                break;
        }
        foreach (var (start, end) in merged)
            output.Add(new PreToken(start == 0 && end == text.Length ? text : text[start..end], piece.AtStart && start == 0));
    }
}

/// <summary>
/// HF ByteLevel pre-tokenizer: optional prefix space, the GPT-2 regex split (when use_regex), then each
/// piece's UTF-8 bytes mapped to byte-level characters.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    /// <summary>GPT-2's pre-tokenization pattern, verbatim (\s+(?!\S) leaves the last space for the next word).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    static readonly CodePointRegex Gpt2Regex = new(Gpt2Pattern);

    [ThreadStatic] static List<(int Start, int Length)>? t_matches;

    public void Split(PreToken piece, List<PreToken> output)
    {
        string text = piece.Text;
        if (addPrefixSpace && !text.StartsWith(' ')) text = " " + text;
        if (!useRegex)
        {
            output.Add(new PreToken(ByteLevelMap.Encode(text), piece.AtStart));
            return;
        }
        var matches = t_matches ??= new List<(int, int)>();
        matches.Clear();
        Gpt2Regex.Matches(text, matches);
        // The pattern's alternatives cover every character, so the matches tile the text; any gap would
        // still be kept as its own piece (HF splits with behavior Isolated).
        int prev = 0;
        foreach (var (start, length) in matches)
        {
            if (length == 0) continue;
            if (start > prev) output.Add(new PreToken(ByteLevelMap.Encode(text.AsSpan(prev, start - prev)), piece.AtStart && prev == 0));
            output.Add(new PreToken(ByteLevelMap.Encode(text.AsSpan(start, length)), piece.AtStart && start == 0));
            prev = start + length;
        }
        if (prev < text.Length) output.Add(new PreToken(ByteLevelMap.Encode(text.AsSpan(prev)), piece.AtStart && prev == 0));
    }
}

/// <summary>When Metaspace prepends its replacement character (HF PrependScheme).</summary>
internal enum PrependScheme { Always, First, Never }

/// <summary>HF Metaspace pre-tokenizer (older sentencepiece-style tokenizer.json files): spaces → "▁", optional prefix, split before each "▁".</summary>
internal sealed class MetaspacePreTokenizer(string replacement, PrependScheme scheme, bool split) : IPreTokenizer
{
    public void Split(PreToken piece, List<PreToken> output)
    {
        string text = piece.Text.Replace(" ", replacement, StringComparison.Ordinal);
        bool prepend = scheme == PrependScheme.Always || (scheme == PrependScheme.First && piece.AtStart);
        if (prepend && !text.StartsWith(replacement, StringComparison.Ordinal)) text = replacement + text;
        var p = new PreToken(text, piece.AtStart);
        if (!split) { output.Add(p); return; }
        var matches = new List<(int, int)>();
        for (int i = text.IndexOf(replacement, StringComparison.Ordinal); i >= 0; i = text.IndexOf(replacement, i + replacement.Length, StringComparison.Ordinal))
            matches.Add((i, replacement.Length));
        SplitPreTokenizer.SplitSegments(p, matches, SplitBehavior.MergedWithNext, false, output);
    }
}

internal static class PreTokenizerFactory
{
    public static IPreTokenizer Create(JsonFields f, JsonElement spec, string path)
    {
        if (spec.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object");
        string type = f.RequireString(spec, "type", path);
        switch (type)
        {
            case "Sequence":
            {
                var list = f.RequireArray(spec, "pretokenizers", path);
                var steps = new List<IPreTokenizer>();
                int i = 0;
                foreach (var item in list.EnumerateArray()) steps.Add(Create(f, item, $"{path}.pretokenizers[{i++}]"));
                return new SequencePreTokenizer(steps.ToArray());
            }
            case "ByteLevel":
                return new ByteLevelPreTokenizer(f.OptionalBool(spec, "add_prefix_space", path) ?? true, f.OptionalBool(spec, "use_regex", path) ?? true);
            case "Split":
            {
                var pattern = f.RequireObject(spec, "pattern", path);
                string p = JsonFields.Join(path, "pattern");
                string? literal = f.OptionalString(pattern, "String", p);
                string? regex = f.OptionalString(pattern, "Regex", p);
                if (literal == null && regex == null) throw f.Error(p, "must hold \"String\" or \"Regex\"");
                CodePointRegex compiled;
                try { compiled = new CodePointRegex(literal != null ? System.Text.RegularExpressions.Regex.Escape(literal) : regex!, $"{f.File}: field '{JsonFields.Join(p, "Regex")}'"); }
                catch (ArgumentException e) { throw f.Error(JsonFields.Join(p, "Regex"), $"is a regex .NET cannot compile ({e.Message})"); }
                string b = f.RequireString(spec, "behavior", path);
                if (!Enum.TryParse<SplitBehavior>(b, out var behavior) || !Enum.IsDefined(behavior))
                    throw f.Error(JsonFields.Join(path, "behavior"), $"has unsupported value \"{b}\" (supported: {string.Join(", ", Enum.GetNames<SplitBehavior>())})");
                return new SplitPreTokenizer(compiled, behavior, f.OptionalBool(spec, "invert", path) ?? false);
            }
            case "Metaspace":
            {
                string replacement = f.RequireSingleChar(spec, "replacement", path);
                string? schemeName = f.OptionalString(spec, "prepend_scheme", path);
                PrependScheme scheme = schemeName switch
                {
                    null => (f.OptionalBool(spec, "add_prefix_space", path) ?? true) ? PrependScheme.Always : PrependScheme.Never,
                    "always" => PrependScheme.Always,
                    "first" => PrependScheme.First,
                    "never" => PrependScheme.Never,
                    _ => throw f.Error(JsonFields.Join(path, "prepend_scheme"), $"has unsupported value \"{schemeName}\" (supported: always, first, never)"),
                };
                return new MetaspacePreTokenizer(replacement, scheme, f.OptionalBool(spec, "split", path) ?? true);
            }
            case "Whitespace":
                return new SplitPreTokenizer(new CodePointRegex(@"\w+|[^\w\s]+"), SplitBehavior.Removed, invert: true);
            case "WhitespaceSplit":
                return new SplitPreTokenizer(new CodePointRegex(@"\s+"), SplitBehavior.Removed, invert: false);
            case "Digits":
                return (f.OptionalBool(spec, "individual_digits", path) ?? false)
                    ? new SplitPreTokenizer(new CodePointRegex(@"\p{N}"), SplitBehavior.Isolated, invert: false)
                    : new SplitPreTokenizer(new CodePointRegex(@"\p{N}+"), SplitBehavior.Isolated, invert: false);
            default:
                throw f.Error(JsonFields.Join(path, "type"), $"has unsupported pre-tokenizer type \"{type}\" (supported: Sequence, ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, Digits)");
        }
    }
}
