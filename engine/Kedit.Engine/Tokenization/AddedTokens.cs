namespace Kedit.Tokenization;

/// <summary>An entry of tokenizer.json "added_tokens" (or a special token named by tokenizer_config.json).</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool LStrip, bool RStrip, bool Normalized, bool SingleWord);

/// <summary>A piece of input: plain text to tokenize, or an added token matched in it (TokenId set).</summary>
internal readonly record struct TextSegment(string Text, bool AtStart, int? TokenId);

/// <summary>
/// Finds added tokens in text, leftmost-longest as HF does, so they are never split by BPE.
/// lstrip / rstrip swallow the whitespace beside a match; single_word matches only between non-word characters.
/// </summary>
internal sealed class AddedTokenMatcher
{
    readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <param name="tokens">tokens with the text to look for (already normalized where the token says so).</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens.Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());
    }

    public void Split(string text, bool atStart, List<TextSegment> output)
    {
        if (IsEmpty) { output.Add(new TextSegment(text, atStart, null)); return; }
        int plainStart = 0; // start of text not yet emitted
        int i = 0;
        while (i < text.Length)
        {
            if (!_byFirstChar.TryGetValue(text[i], out var candidates) || !TryMatchAt(text, i, candidates, out var token, out int length))
            {
                i++;
                continue;
            }
            int start = i, end = i + length;
            if (token.LStrip) while (start > plainStart && char.IsWhiteSpace(text[start - 1])) start--;
            if (token.RStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > plainStart) output.Add(new TextSegment(text[plainStart..start], atStart && plainStart == 0, null));
            output.Add(new TextSegment(token.Content, atStart && start == 0, token.Id));
            plainStart = i = end;
        }
        if (plainStart < text.Length) output.Add(new TextSegment(plainStart == 0 ? text : text[plainStart..], atStart && plainStart == 0, null));
    }

    static bool TryMatchAt(string text, int i, (string Pattern, AddedToken Token)[] candidates, out AddedToken token, out int length)
    {
        foreach (var (pattern, t) in candidates) // longest first
        {
            if (string.CompareOrdinal(text, i, pattern, 0, pattern.Length) != 0 || i + pattern.Length > text.Length) continue;
            if (t.SingleWord && ((i > 0 && IsWordChar(text[i - 1])) || (i + pattern.Length < text.Length && IsWordChar(text[i + pattern.Length])))) continue;
            token = t;
            length = pattern.Length;
            return true;
        }
        token = null!;
        length = 0;
        return false;
    }

    static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
