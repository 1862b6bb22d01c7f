using System.Globalization;
using System.Text.RegularExpressions;

namespace Kedit.Tokenization;

/// <summary>
/// A .NET regex that matches per Unicode code point, as the Rust/Oniguruma regexes of HF tokenizers do.
/// .NET regexes see UTF-16 code units, so a character outside the BMP (emoji, CJK extension B,
/// mathematical letters) would be two surrogates of category Cs and never match \p{L} or \p{N}, and
/// \p{N}{1,3} would count it twice. Before matching, each surrogate pair is therefore replaced by one
/// BMP stand-in of the same general category, and match positions are mapped back.
/// </summary>
internal sealed class CodePointRegex
{
    readonly Regex _regex;
    readonly string _source;

    /// <summary>One non-ASCII BMP character per general category (0 where the BMP has none).</summary>
    static readonly char[] StandIns = BuildStandIns();

    /// <summary>
    /// How long one match may run. Patterns come from tokenizer files, and a backtracking pattern
    /// such as (a+)+$ takes exponential time on some inputs; the tokenizer regexes of real models
    /// match a word in microseconds, so a second means the pattern is at fault.
    /// </summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    /// <param name="pattern">the .NET pattern</param>
    /// <param name="source">where it came from, for errors (e.g. "tokenizer.json: field 'pre_tokenizer.pattern.Regex'")</param>
    public CodePointRegex(string pattern, string source = "built-in pre-tokenizer regex")
    {
        _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, MatchTimeout);
        _source = source;
    }

    /// <summary>The refusal of a pattern that ran past <see cref="MatchTimeout"/>.</summary>
    public static KeditException TimedOut(string source, int textLength) =>
        new($"{source}: the regex ran past its {MatchTimeout.TotalSeconds:0} s match timeout on a {textLength:N0}-character text (catastrophic backtracking); refusing it");

    static char[] BuildStandIns()
    {
        var standIns = new char[32];
        // Non-ASCII and not a character that tokenizer patterns commonly spell out literally.
        for (int c = 0xA1; c <= 0xFFFD; c++)
        {
            if (c >= 0xD800 && c <= 0xDFFF) continue;
            char ch = (char)c;
            if (ch == '\u2581' || ch == '\u0120' || ch == '\u010A' || char.IsWhiteSpace(ch)) continue;
            int cat = (int)CharUnicodeInfo.GetUnicodeCategory(ch);
            if (standIns[cat] == 0) standIns[cat] = ch;
        }
        return standIns;
    }

    /// <summary>Appends (start, length) of each non-overlapping match, in order, as positions in <paramref name="text"/>.</summary>
    public void Matches(string text, List<(int Start, int Length)> output)
    {
        try { MatchAll(text, output); }
        catch (RegexMatchTimeoutException) { throw TimedOut(_source, text.Length); }
    }

    void MatchAll(string text, List<(int Start, int Length)> output)
    {
        int firstSurrogate = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (firstSurrogate < 0)
        {
            for (Match m = _regex.Match(text); m.Success; m = m.NextMatch()) output.Add((m.Index, m.Length));
            return;
        }

        // mappedToOriginal[i] = index in text of mapped char i; one extra entry for the end.
        var mapped = new char[text.Length];
        var mappedToOriginal = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            mappedToOriginal[n] = i;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cat = (int)CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, text[i + 1]));
                mapped[n++] = StandIns[cat] != 0 ? StandIns[cat] : c;
                i++;
            }
            else mapped[n++] = c;
        }
        mappedToOriginal[n] = text.Length;
        string mappedText = new string(mapped, 0, n);
        for (Match m = _regex.Match(mappedText); m.Success; m = m.NextMatch())
        {
            int start = mappedToOriginal[m.Index];
            output.Add((start, mappedToOriginal[m.Index + m.Length] - start));
        }
    }
}
