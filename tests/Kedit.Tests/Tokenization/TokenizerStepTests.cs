using System.Text.Json;
using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// The normalizer, pre-tokenizer and decoder steps one by one, built from their tokenizer.json specs, on the
/// examples HF tokenizers' documentation gives for each (SplitDelimiterBehavior's "the-final--countdown",
/// Whitespace's "Hey friend!     How are you?!?", Digits' "Call 123 please") and on hand-worked cases.
/// </summary>
public class TokenizerStepTests
{
    static readonly JsonFields Fields = new("tokenizer.json");
    static JsonElement Spec(string json) => JsonDocument.Parse(json).RootElement.Clone();

    static string Normalize(string spec, string text) => NormalizerFactory.Create(Fields, Spec(spec), "normalizer").Normalize(text);

    static string[] PreTokenize(string spec, string text, bool atStart = true)
    {
        var output = new List<PreToken>();
        PreTokenizerFactory.Create(Fields, Spec(spec), "pre_tokenizer").Split(new PreToken(text, atStart), output);
        return output.Select(p => p.Text).ToArray();
    }

    static string[] Decode(string spec, params string[] tokens) => DecoderFactory.Create(Fields, Spec(spec), "decoder").Decode(tokens.ToList()).ToArray();

    static void Fails(Action build, string field, string detail)
    {
        var e = Assert.Throws<KeditException>(build);
        Assert.Contains($"tokenizer.json: field '{field}'", e.Message);
        Assert.Contains(detail, e.Message);
    }

    // ------------------------------------------------------------------ normalizers

    [Fact]
    public void NormalizersRewriteAsHfDoes()
    {
        Assert.Equal("hello wörld", Normalize("""{"type": "Lowercase"}""", "HeLLo WÖRLD"));
        Assert.Equal("▁hi", Normalize("""{"type": "Prepend", "prepend": "▁"}""", "hi"));
        Assert.Equal("", Normalize("""{"type": "Prepend", "prepend": "▁"}""", ""));   // empty text stays empty
        Assert.Equal("a▁b▁▁c", Normalize("""{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}""", "a b  c"));
        Assert.Equal("abc", Normalize("""{"type": "Replace", "pattern": {"String": ""}, "content": "x"}""", "abc"));
        Assert.Equal("a b c", Normalize("""{"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}""", "a \t b\n\nc"));
        Assert.Equal("x$1y", Normalize("""{"type": "Replace", "pattern": {"Regex": "a(b)"}, "content": "$1"}""", "xaby")); // content is literal
        Assert.Equal("x  ", Normalize("""{"type": "Strip", "strip_left": true, "strip_right": false}""", "  x  "));
        Assert.Equal("  x", Normalize("""{"type": "Strip", "strip_left": false, "strip_right": true}""", "  x  "));
        Assert.Equal("x", Normalize("""{"type": "Strip"}""", "  x  "));
        Assert.Equal("  x  ", Normalize("""{"type": "Strip", "strip_left": false, "strip_right": false}""", "  x  "));
        Assert.Equal("▁hello", Normalize("""{"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Prepend", "prepend": "▁"}]}""", "HELLO"));
    }

    /// <summary>
    /// With ICU the four forms as Unicode defines them; in globalization-invariant mode (no ICU: .NET would
    /// leave the text unchanged) each form is refused naming the field, rather than giving wrong ids.
    /// </summary>
    [Fact]
    public void UnicodeFormsAreTheFourNormalizationFormsOrAreRefusedWithoutIcu()
    {
        bool icu = "\uFB01".Normalize(System.Text.NormalizationForm.FormKC) == "fi";
        if (!icu)
        {
            foreach (var form in new[] { "NFC", "NFD", "NFKC", "NFKD" })
                Fails(() => Normalize($$"""{"type": "{{form}}"}""", "x"), "normalizer.type", $"is \"{form}\", but Unicode normalization is unavailable in this process");
            return;
        }
        Assert.Equal("\u00E9", Normalize("""{"type": "NFC"}""", "e\u0301"));
        Assert.Equal("e\u0301", Normalize("""{"type": "NFD"}""", "\u00E9"));
        Assert.Equal("fi\u00E9", Normalize("""{"type": "NFKC"}""", "\uFB01e\u0301"));
        Assert.Equal("fie\u0301", Normalize("""{"type": "NFKD"}""", "\uFB01\u00E9"));
        Assert.Equal("\uFB01", Normalize("""{"type": "NFC"}""", "\uFB01"));   // compatibility forms only in NFK*
    }

    [Fact]
    public void BadNormalizersAreNamed()
    {
        Fails(() => Normalize("""[1]""", "x"), "normalizer", "must be an object");
        Fails(() => Normalize("""{"type": "Precompiled"}""", "x"), "normalizer.type", "unsupported normalizer type \"Precompiled\"");
        Fails(() => Normalize("""{"type": "Replace", "pattern": {}, "content": "x"}""", "x"), "normalizer.pattern", "must hold \"String\" or \"Regex\"");
        Fails(() => Normalize("""{"type": "Replace", "pattern": {"Regex": "a++("}, "content": "x"}""", "x"), "normalizer.pattern.Regex", "regex .NET cannot compile");
        Fails(() => Normalize("""{"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Nope"}]}""", "x"), "normalizer.normalizers[1].type", "\"Nope\"");
    }

    // ------------------------------------------------------------------ pre-tokenizers

    [Theory]
    [InlineData("Removed", new[] { "the", "final", "countdown" })]
    [InlineData("Isolated", new[] { "the", "-", "final", "-", "-", "countdown" })]
    [InlineData("MergedWithPrevious", new[] { "the-", "final-", "-", "countdown" })]
    [InlineData("MergedWithNext", new[] { "the", "-final", "-", "-countdown" })]
    [InlineData("Contiguous", new[] { "the", "-", "final", "--", "countdown" })]
    public void SplitBehavioursFollowHfsExample(string behavior, string[] expected)
    {
        Assert.Equal(expected, PreTokenize($$"""{"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}"}""", "the-final--countdown"));
        // The same with a regex pattern.
        Assert.Equal(expected, PreTokenize($$"""{"type": "Split", "pattern": {"Regex": "-"}, "behavior": "{{behavior}}"}""", "the-final--countdown"));
    }

    [Fact]
    public void InvertedSplitTreatsTheNonMatchesAsDelimiters()
    {
        Assert.Equal(new[] { "12", "345" }, PreTokenize("""{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Removed", "invert": true}""", "ab12cd345e"));
        Assert.Equal(new[] { "ab", "cd", "e" }, PreTokenize("""{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Removed", "invert": false}""", "ab12cd345e"));
        Assert.Equal(new[] { "ab12", "cd345", "e" }, PreTokenize("""{"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "MergedWithPrevious", "invert": false}""", "ab12cd345e"));
        // A literal is matched literally (escaped), never as a regex.
        Assert.Equal(new[] { "a", "b", "c" }, PreTokenize("""{"type": "Split", "pattern": {"String": "."}, "behavior": "Removed"}""", "a.b.c"));
        Assert.Equal(new[] { "abc" }, PreTokenize("""{"type": "Split", "pattern": {"String": "."}, "behavior": "Removed"}""", "abc"));
    }

    [Fact]
    public void WhitespaceWhitespaceSplitAndDigitsFollowHfsExamples()
    {
        Assert.Equal(new[] { "Hey", "friend", "!", "How", "are", "you", "?!?" }, PreTokenize("""{"type": "Whitespace"}""", "Hey friend!     How are you?!?"));
        Assert.Equal(new[] { "Hey", "friend!", "How", "are", "you?!?" }, PreTokenize("""{"type": "WhitespaceSplit"}""", "Hey friend!     How are you?!?"));
        Assert.Equal(new[] { "Call ", "1", "2", "3", " please" }, PreTokenize("""{"type": "Digits", "individual_digits": true}""", "Call 123 please"));
        Assert.Equal(new[] { "Call ", "123", " please" }, PreTokenize("""{"type": "Digits", "individual_digits": false}""", "Call 123 please"));
        Assert.Equal(new[] { "Call ", "123", " please" }, PreTokenize("""{"type": "Digits"}""", "Call 123 please"));
        Assert.Equal(new[] { "Hey", "friend", "1", "2" }, PreTokenize(
            """{"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": true}]}""", "Hey friend 12"));
    }

    [Fact]
    public void MetaspaceReplacesSpacesPrependsAndSplits()
    {
        Assert.Equal(new[] { "▁Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}""", "Hey friend"));
        Assert.Equal(new[] { "▁Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁"}""", "Hey friend"));   // add_prefix_space defaults to true
        Assert.Equal(new[] { "Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}""", "Hey friend"));
        Assert.Equal(new[] { "Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}""", "Hey friend"));
        Assert.Equal(new[] { "▁Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}""", "Hey friend"));
        Assert.Equal(new[] { "Hey", "▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}""", "Hey friend", atStart: false));
        Assert.Equal(new[] { "▁Hey▁friend" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁", "split": false}""", "Hey friend"));
        Assert.Equal(new[] { "▁Hey" }, PreTokenize("""{"type": "Metaspace", "replacement": "▁"}""", "▁Hey"));   // no second marker
        Fails(() => PreTokenize("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}""", "x"), "pre_tokenizer.prepend_scheme", "\"sometimes\"");
    }

    [Fact]
    public void ByteLevelAddsThePrefixSpaceOnlyWhenAskedAndMapsBytes()
    {
        Assert.Equal(new[] { "Ġhello", "Ġworld" }, PreTokenize("""{"type": "ByteLevel", "add_prefix_space": true}""", "hello world"));
        Assert.Equal(new[] { "hello", "Ġworld" }, PreTokenize("""{"type": "ByteLevel", "add_prefix_space": false}""", "hello world"));
        Assert.Equal(new[] { "Ġhello" }, PreTokenize("""{"type": "ByteLevel", "add_prefix_space": true}""", " hello"));  // no second space
        Assert.Equal(new[] { "helloĠworld" }, PreTokenize("""{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}""", "hello world"));
    }

    [Fact]
    public void BadPreTokenizersAreNamed()
    {
        Fails(() => PreTokenize("""{"type": "BertPreTokenizer"}""", "x"), "pre_tokenizer.type", "\"BertPreTokenizer\"");
        Fails(() => PreTokenize("""{"type": "Split", "pattern": {}, "behavior": "Removed"}""", "x"), "pre_tokenizer.pattern", "must hold \"String\" or \"Regex\"");
        Fails(() => PreTokenize("""{"type": "Split", "pattern": {"String": "-"}, "behavior": "7"}""", "x"), "pre_tokenizer.behavior", "unsupported value \"7\"");
        Fails(() => PreTokenize("""{"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "X"}]}""", "x"), "pre_tokenizer.pretokenizers[1].type", "\"X\"");
        Fails(() => PreTokenize("""3""", "x"), "pre_tokenizer", "must be an object");
    }

    // ------------------------------------------------------------------ decoders

    [Fact]
    public void DecodersRewriteTheTokenList()
    {
        Assert.Equal(new[] { " hello world" }, Decode("""{"type": "ByteLevel"}""", "Ġhello", "Ġworld"));
        Assert.Equal(new[] { "ab c" }, Decode("""{"type": "Fuse"}""", "a", "b ", "c"));
        Assert.Equal(new[] { " Hey", " friend" }, Decode("""{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}""", "▁Hey", "▁friend"));
        Assert.Equal(new[] { "a", " b", "c " }, Decode("""{"type": "Strip", "content": " ", "start": 1, "stop": 0}""", " a", "  b", "c "));
        Assert.Equal(new[] { " a", " b", "c" }, Decode("""{"type": "Strip", "content": " ", "start": 0, "stop": 2}""", " a", " b  ", "c "));
        Assert.Equal(new[] { "_x_" }, Decode("""{"type": "Strip", "content": "_"}""", "_x_"));   // start and stop default to 0
        Assert.Equal(new[] { "Hey", " friend" }, Decode("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}""", "▁Hey", "▁friend"));
        Assert.Equal(new[] { " Hey", " friend" }, Decode("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}""", "▁Hey", "▁friend"));
        Assert.Equal(new[] { " Hey" }, Decode("""{"type": "Metaspace", "replacement": "▁", "add_prefix_space": false}""", "▁Hey"));
        Assert.Equal(new[] { "Hey" }, Decode("""{"type": "Metaspace", "replacement": "▁"}""", "▁Hey"));
        Assert.Equal(new[] { "Hey friend" }, Decode(
            """{"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1}]}""",
            "▁Hey", "▁friend"));
    }

    [Fact]
    public void ByteFallbackDecodesRunsOfByteTokens()
    {
        var spec = """{"type": "ByteFallback"}""";
        Assert.Equal(new[] { "a", "b", "€", "c" }, Decode(spec, "<0x61>", "b", "<0xE2>", "<0x82>", "<0xAC>", "c"));
        Assert.Equal(new[] { "x", "\uFFFD\uFFFD", "y" }, Decode(spec, "x", "<0xE2>", "<0x82>", "y"));   // invalid run: one U+FFFD per byte
        Assert.Equal(new[] { "<0x6G>", "<0x61", "<0x612>", "0x61>" }, Decode(spec, "<0x6G>", "<0x61", "<0x612>", "0x61>"));   // not byte tokens
        Assert.Equal(new[] { "€" }, Decode(spec, "<0xe2>", "<0x82>", "<0xac>"));   // hex in either case
    }

    [Fact]
    public void BadDecodersAreNamed()
    {
        Fails(() => Decode("""{"type": "WordPiece"}"""), "decoder.type", "unsupported decoder type \"WordPiece\"");
        Fails(() => Decode("""{"type": "Replace", "pattern": {"Regex": "a"}, "content": "b"}"""), "decoder.pattern", "regex replacement in decoders is not supported");
        Fails(() => Decode("""{"type": "Sequence", "decoders": [{"type": "Fuse"}, {"type": "CTC"}]}"""), "decoder.decoders[1].type", "\"CTC\"");
        Fails(() => Decode("""[]"""), "decoder", "must be an object");
    }
}
