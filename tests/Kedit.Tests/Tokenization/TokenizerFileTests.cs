using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// How tokenizer.json's model options, added tokens and merges (and GPT-2's merges.txt) are read, and the lookups
/// on a loaded tokenizer (ids without a token, added tokens before the vocabulary, decoding without a decoder).
/// </summary>
public class TokenizerFileTests
{
    static Tokenizer FromJson(string json)
    {
        string dir = Directory.CreateTempSubdirectory("kedit-tokfile-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json);
            return Tokenizer.Load(dir);
        }
        finally { Directory.Delete(dir, true); }
    }

    static Tokenizer FromModel(string model, string rest = "") => FromJson($$"""{"model": {{model}}{{rest}}}""");

    [Fact]
    public void ModelOptionsAreReadFromTheFile()
    {
        // Each option, present, changes the ids; absent, the same text encodes otherwise.
        const string fallback = """{"type": "BPE", "vocab": {"a": 0, "<0xC3>": 1, "<0xA9>": 2}, "merges": []""";
        Assert.Equal(new[] { 0, 1, 2 }, FromModel(fallback + """, "byte_fallback": true}""").Encode("aé"));
        Assert.Equal(new[] { 0 }, FromModel(fallback + "}").Encode("aé"));

        const string prefix = """{"type": "BPE", "vocab": {"a": 0, "##b": 1, "ab": 2, "a##b": 3}, "merges": [["a", "##b"]]""";
        Assert.Equal(new[] { 2, 1 }, FromModel(prefix + """, "continuing_subword_prefix": "##"}""").Encode("abb"));
        Assert.Equal(new[] { 0 }, FromModel(prefix + "}").Encode("abb"));

        const string suffix = """{"type": "BPE", "vocab": {"a": 0, "b</w>": 1, "ab</w>": 2}, "merges": ["a b</w>"]""";
        Assert.Equal(new[] { 2 }, FromModel(suffix + """, "end_of_word_suffix": "</w>"}""").Encode("ab"));
        Assert.Equal(new[] { 0 }, FromModel(suffix + "}").Encode("ab"));

        // No "type" but merges: still BPE. unk_token names the unknown id.
        var unk = FromModel("""{"vocab": {"<unk>": 0, "a": 1}, "merges": [], "unk_token": "<unk>"}""");
        Assert.Equal(new[] { 1, 0, 0 }, unk.Encode("azz")); // fuse_unk defaults to false
        Assert.Equal(0, unk.UnkId);
    }

    [Fact]
    public void LookupsHandleGapsAndPreferAddedTokens()
    {
        // Ids 0, 2 and 5: the table has gaps. The added token "a" (id 5) is found before the vocabulary's "a".
        var tok = FromModel("""{"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}""",
            """, "added_tokens": [{"id": 5, "content": "a", "special": true, "normalized": false}]""");
        Assert.Equal(6, tok.VocabSize);
        Assert.Equal(5, tok.TokenToId("a"));
        Assert.Equal(2, tok.TokenToId("b"));
        Assert.Equal(new[] { 5, 2 }, tok.Encode("ab"));
        Assert.True(tok.HasToken(0) && tok.HasToken(5));
        foreach (int id in new[] { 1, 3, 6, -1, int.MinValue }) Assert.False(tok.HasToken(id), $"id {id}");
        Assert.True(tok.IsSpecial(5));
        foreach (int id in new[] { 0, 6, -1, int.MaxValue }) Assert.False(tok.IsSpecial(id), $"id {id}");
        Assert.Equal("b", tok.IdToToken(2));
        Assert.Equal("token id 3 is not in the tokenizer's vocabulary (size 6)", Assert.Throws<KeditException>(() => tok.IdToToken(3)).Message);
        Assert.Throws<KeditException>(() => tok.IdToToken(-1));
        Assert.Throws<KeditException>(() => tok.IdToToken(6));
        // No decoder: the tokens joined by spaces; ids without a token skipped; special ones when asked.
        Assert.Equal("a b b", tok.Decode(new[] { 0, 1, 2, 3, 2, 6, -4 }));
        Assert.Equal("a b", tok.Decode(new[] { 5, 2 }));
        Assert.Equal("b", tok.Decode(new[] { 5, 2 }, skipSpecialTokens: true));
        Assert.Equal("", tok.Decode(ReadOnlySpan<int>.Empty));
    }

    [Theory]
    [InlineData("""{"model": {"type": "BPE", "vocab": [], "merges": []}}""", "'model.vocab'", "must be an object, found an array")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}""", "'model.vocab[\"a\"]'", "must be a token id")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": {}}}""", "'model.merges'", "must be an array")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [" a"]}}""", "'model.merges[0]'", "two tokens separated by one space, found \" a\"")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a "]}}""", "'model.merges[0]'", "two tokens separated by one space")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a", "a a a"]}}""", "'model.merges[1]'", "two tokens separated by one space")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}""", "'model.merges[0]'", "a pair [\"a\", \"b\"]")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a", "a"]]}}""", "'model.merges[0]'", "a pair")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", 1]]}}""", "'model.merges[0][1]'", "must be a string")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [[1, "a"]]}}""", "'model.merges[0][0]'", "must be a string")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [5]}}""", "'model.merges[0]'", "a pair")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "byte_fallback": "yes"}}""", "'model.byte_fallback'", "true or false")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "continuing_subword_prefix": 1}}""", "'model.continuing_subword_prefix'", "must be a string")]
    [InlineData("""{"model": {"type": 3, "vocab": {"a": 0}, "merges": []}}""", "'model.type'", "must be a string")]
    [InlineData("""{"model": "BPE"}""", "'model'", "must be an object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": {}}""", "'added_tokens'", "must be an array")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": ["x"]}""", "'added_tokens[0]'", "must be an object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": "x"}, {"content": "y"}]}""", "'added_tokens[1].id'", "is missing")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 4194304, "content": "x"}]}""", "'added_tokens[0].id'", "must be a token id")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": ""}]}""", "'added_tokens[0].content'", "must not be empty")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1, "content": "x", "single_word": 1}]}""", "'added_tokens[0].single_word'", "true or false")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "post_processor": 5}""", "'post_processor'", "must be an object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}}""", "'post_processor.single[0].SpecialToken.id'", "is missing")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "post_processor": {"type": "RobertaProcessing", "cls": ["<s>", "x"], "sep": ["</s>", 1]}}""", "'post_processor.cls[1]'", "must be a 32-bit integer")]
    public void BadTokenizerJsonFieldsAreNamed(string json, string field, string detail)
    {
        var e = Assert.Throws<KeditException>(() => FromJson(json));
        Assert.Contains($"tokenizer.json: field {field} ", e.Message);
        Assert.Contains(detail, e.Message);
    }

    [Fact]
    public void NullArgumentsAndAMissingFolderAreRefusedByName()
    {
        Assert.Equal("dir", Assert.Throws<ArgumentNullException>(() => Tokenizer.Load(null!)).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentNullException>(() => Tokenizer.FromTokenizerJson(null!)).ParamName);
        var tok = FromModel("""{"type": "BPE", "vocab": {"a": 0}, "merges": []}""");
        Assert.Equal("text", Assert.Throws<ArgumentNullException>(() => tok.Encode(null!)).ParamName);
        Assert.Equal("token", Assert.Throws<ArgumentNullException>(() => tok.TokenToId(null!)).ParamName);
        string missing = Path.Combine(Path.GetTempPath(), "kedit-no-such-" + Guid.NewGuid().ToString("N"));
        Assert.Equal($"{missing}: tokenizer folder not found", Assert.Throws<KeditException>(() => Tokenizer.Load(missing)).Message);
    }

    [Fact]
    public void ARootThatIsNotAnObjectIsNamed()
    {
        var e = Assert.Throws<KeditException>(() => FromJson("[1]"));
        Assert.EndsWith("tokenizer.json: must hold a JSON object", e.Message);
    }

    [Fact]
    public void AddedTokenFlagsAreReadFromTokenizerJson()
    {
        // special defaults to false (so normalized to true: matched after the Lowercase normalizer, as "q").
        var tok = FromModel("""{"type": "BPE", "vocab": {"a": 0, "q": 1, " ": 2}, "merges": []}""", """
            , "normalizer": {"type": "Lowercase"}, "added_tokens": [{"id": 3, "content": "Q"}, {"id": 4, "content": "<l>", "lstrip": true, "normalized": false},
              {"id": 5, "content": "<r>", "rstrip": true, "normalized": false}, {"id": 6, "content": "<w>", "single_word": true, "normalized": false},
              {"id": 7, "content": "Z", "normalized": false}, {"id": 8, "content": "aq"}]
            """);
        // "Z" is matched on the raw text only (normalized: false), so "z" is an unknown character (dropped);
        // "aq" after lowercasing, and a matched token is not also spelt out by BPE.
        Assert.Equal(new[] { 7 }, tok.Encode("Z"));
        Assert.Empty(tok.Encode("z"));
        Assert.Equal(new[] { 8 }, tok.Encode("AQ"));
        Assert.Equal(new[] { 3, 3 }, tok.Encode("qQ"));
        Assert.False(tok.IsSpecial(3));
        Assert.Equal(new[] { 0, 4, 2, 0 }, tok.Encode("a  <l> a"));
        Assert.Equal(new[] { 0, 2, 5, 0 }, tok.Encode("a <r>  a"));
        Assert.Equal(new[] { 2, 6, 2 }, tok.Encode(" <w> "));
        Assert.DoesNotContain(6, tok.Encode("a<w>"));
    }

    [Fact]
    public void MergesTxtSkipsBlankLinesAndOnlyAFirstLineVersionHeader()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-tokfile-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "vocab.json"), """{"a": 0, "b": 1, "ab": 2}""");
            File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\n\na b\n\n");
            Assert.Equal(new[] { 2 }, Tokenizer.Load(dir).Encode("ab"));
            File.WriteAllText(Path.Combine(dir, "merges.txt"), "a b\n");
            Assert.Equal(new[] { 2 }, Tokenizer.Load(dir).Encode("ab"));
            foreach (string bad in new[] { " b", "a ", "a b b", "ab" })
            {
                File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\n" + bad + "\n");
                Assert.Equal($"{Path.Combine(dir, "merges.txt")}: line 2 must be two tokens separated by one space, found \"{bad}\"",
                    Assert.Throws<KeditException>(() => Tokenizer.Load(dir)).Message);
            }
            // Without the header the first line is a merge like any other ("#version:" "0.2", whose result is not in vocab.json).
            File.WriteAllText(Path.Combine(dir, "merges.txt"), "a b\n#version: 0.2\n");
            var e = Assert.Throws<KeditException>(() => Tokenizer.Load(dir));
            Assert.Contains("merges.txt: line 2", e.Message);
            File.WriteAllText(Path.Combine(dir, "vocab.json"), "[]");
            Assert.Contains("vocab.json: field '(top level)' must be an object mapping tokens to ids", Assert.Throws<KeditException>(() => Tokenizer.Load(dir)).Message);
            // Only vocab.json: no tokenizer.
            File.Delete(Path.Combine(dir, "merges.txt"));
            Assert.Contains("no tokenizer found", Assert.Throws<KeditException>(() => Tokenizer.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
