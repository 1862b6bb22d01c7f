using System.Globalization;
using System.Text;
using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// Regex matching per code point (characters outside the BMP match by their own category, and count once) and
/// GPT-2's byte ↔ character map, against the published bytes_to_unicode rule written out here.
/// </summary>
public class CodePointRegexTests
{
    static List<(int, int)> Matches(string pattern, string text)
    {
        var output = new List<(int, int)>();
        new CodePointRegex(pattern).Matches(text, output);
        return output;
    }

    [Theory]
    [InlineData("𝐀", UnicodeCategory.UppercaseLetter)]
    [InlineData("𝐚", UnicodeCategory.LowercaseLetter)]
    [InlineData("𠀀", UnicodeCategory.OtherLetter)]
    [InlineData("𝟎", UnicodeCategory.DecimalDigitNumber)]
    [InlineData("𐄇", UnicodeCategory.OtherNumber)]
    [InlineData("😀", UnicodeCategory.OtherSymbol)]
    [InlineData("𝛁", UnicodeCategory.MathSymbol)]
    [InlineData("𝅥", UnicodeCategory.SpacingCombiningMark)]
    [InlineData("𝆅", UnicodeCategory.NonSpacingMark)]
    [InlineData("𐄀", UnicodeCategory.OtherPunctuation)]
    [InlineData("\U000F0000", UnicodeCategory.PrivateUse)]
    public void ACharacterOutsideTheBmpMatchesItsOwnCategoryOnce(string c, UnicodeCategory category)
    {
        Assert.Equal(category, CharUnicodeInfo.GetUnicodeCategory(c, 0));
        string name = category switch
        {
            UnicodeCategory.UppercaseLetter => "Lu", UnicodeCategory.LowercaseLetter => "Ll", UnicodeCategory.OtherLetter => "Lo",
            UnicodeCategory.DecimalDigitNumber => "Nd", UnicodeCategory.OtherNumber => "No", UnicodeCategory.OtherSymbol => "So",
            UnicodeCategory.MathSymbol => "Sm", UnicodeCategory.SpacingCombiningMark => "Mc", UnicodeCategory.NonSpacingMark => "Mn",
            UnicodeCategory.OtherPunctuation => "Po", _ => "Co",
        };
        // Between ASCII punctuation, at the start and at the end: one match of one code point, two UTF-16 units long.
        Assert.Equal(new[] { (1, 2) }, Matches($@"\p{{{name}}}", "-" + c + "-"));
        Assert.Equal(new[] { (0, 2), (2, 2) }, Matches($@"\p{{{name}}}", c + c));
        // The stand-in is no ASCII character (which a pattern could spell out, as GPT-2's 's|'t does).
        Assert.Empty(Matches(@"[\s\p{Cs}\x00-\x7F]", c));
        Assert.Equal(new[] { (0, 1), (1, 2), (3, 1) }, Matches(".", "a" + c + "b"));
    }

    [Fact]
    public void QuantifiersCountCodePointsAndPositionsMapBack()
    {
        // GPT-2-style \p{N}{1,3} takes three digits, not one and a half.
        Assert.Equal(new[] { (0, 6), (6, 2) }, Matches(@"\p{N}{1,3}", "𝟎𝟏𝟐𝟑"));
        Assert.Equal(new[] { (2, 6), (9, 2) }, Matches(@"\p{N}{1,3}", "ab𝟎𝟏𝟐 𝟑"));
        Assert.Equal(new[] { (0, 3) }, Matches(@"\w+", "x𝐀"));
    }

    [Fact]
    public void LoneSurrogatesStayWhatTheyAre()
    {
        // A high surrogate at the end, or before a non-surrogate, and a lone low surrogate: each one UTF-16 unit of category Cs.
        Assert.Equal(new[] { (1, 1) }, Matches(@"\p{Cs}", "a\uD83D"));
        Assert.Equal(new[] { (0, 1) }, Matches(@"\p{Cs}", "\uD83Da"));
        Assert.Equal(new[] { (1, 1), (4, 1) }, Matches(@"\p{Cs}", "a\uDE00😀\uD83D"));
        Assert.Equal(new[] { (0, 1), (1, 2), (3, 1) }, Matches(".", "\uDE00😀\uD83D"));
    }

    [Fact]
    public void ABacktrackingPatternIsRefusedNamingItsSource()
    {
        var regex = new CodePointRegex("(a|aa)+$", "t.json: field 'p'");
        string text = new string('a', 40) + "!";
        var e = Assert.Throws<KeditException>(() => regex.Matches(text, new List<(int, int)>()));
        Assert.Equal("t.json: field 'p': the regex ran past its 1 s match timeout on a 41-character text (catastrophic backtracking); refusing it", e.Message);
    }

    /// <summary>GPT-2's bytes_to_unicode: printable bytes are themselves, the rest U+0100 onwards in byte order.</summary>
    static readonly char[] Gpt2Chars = BytesToUnicode();

    static char[] BytesToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        return Enumerable.Range(0, 256).Select(b => printable.Contains(b) ? (char)b : (char)(256 + Enumerable.Range(0, b).Count(x => !printable.Contains(x)))).ToArray();
    }

    static char Gpt2Char(int b) => Gpt2Chars[b];

    [Fact]
    public void ByteMapIsGpt2sAndItsInverse()
    {
        for (int b = 0; b < 256; b++)
        {
            Assert.Equal(Gpt2Char(b), ByteLevelMap.ByteToChar[b]);
            Assert.Equal(b, ByteLevelMap.CharToByte[Gpt2Char(b)]);
        }
        Assert.Equal(('Ġ', 'Ċ', '\u0100', '\u0143'), (ByteLevelMap.ByteToChar[' '], ByteLevelMap.ByteToChar['\n'], ByteLevelMap.ByteToChar[0], ByteLevelMap.ByteToChar[0xAD]));
        Assert.Equal(256 + 68, ByteLevelMap.CharToByte.Length);
        Assert.Equal(68, ByteLevelMap.CharToByte.Count(v => v < 0));
        Assert.Equal(-1, ByteLevelMap.CharToByte[' ']);
    }

    [Theory]
    [InlineData(10)]
    [InlineData(1024)]
    [InlineData(3000)]
    public void EncodeAndAppendBytesRoundTripUtf8(int length)
    {
        // Mixed one-, two-, three- and four-byte characters, cut to the length (on a character boundary).
        var sb = new StringBuilder();
        string[] pieces = ["a", " ", "é", "中", "😀", "\n", "\u00AD", "\0"]; // NUL: byte 0, the character U+0100
        for (int i = 0; sb.Length < length; i++) sb.Append(pieces[i % pieces.Length]);
        string text = sb.ToString();
        string encoded = ByteLevelMap.Encode(text);
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        Assert.Equal(new string(utf8.Select(b => Gpt2Char(b)).ToArray()), encoded);
        var back = new List<byte>();
        ByteLevelMap.AppendBytes(encoded, back);
        Assert.Equal(utf8, back);
    }

    [Theory]
    [InlineData("<s>")]          // all in the map: byte per character (the same here)
    [InlineData("ań")]           // U+0144, the first character past the map
    [InlineData("a\u00AD")]      // inside the table's range but no byte's character
    [InlineData("ĠḀ")]          // one mapped, one far outside
    public void ATokenWithACharacterOutsideTheMapGivesItsOwnUtf8(string token)
    {
        var bytes = new List<byte>();
        ByteLevelMap.AppendBytes(token, bytes);
        Assert.Equal(Encoding.UTF8.GetBytes(token), bytes);
        var mapped = new List<byte>();
        ByteLevelMap.AppendBytes("Ġa", mapped);
        Assert.Equal(new byte[] { 0x20, (byte)'a' }, mapped);
    }
}
