using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// tokenizer_config.json (special tokens in each of their forms, added_tokens_decoder, add_bos/eos_token,
/// add_prefix_space) and the added-token matcher's flags, on a model small enough to read the ids off:
/// no pre-tokenizer, so the whole text is one BPE word; characters outside the vocabulary are dropped.
/// </summary>
public class TokenizerConfigTests
{
    const string Vocab = """{"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4, "q": 5, "x": 6, " ": 7}""";
    const string Model = $$"""{"type": "BPE", "vocab": {{Vocab}}, "merges": ["a b"]}""";

    /// <summary>Loads DIR with tokenizer.json made of <paramref name="body"/> (the model added) and an optional tokenizer_config.json.</summary>
    static Tokenizer Load(string? config, string body = "", string model = Model)
    {
        string dir = Directory.CreateTempSubdirectory("kedit-config-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), $$"""{"model": {{model}}{{(body.Length > 0 ? ", " + body : "")}}}""");
            if (config != null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config);
            return Tokenizer.Load(dir);
        }
        finally { Directory.Delete(dir, true); }
    }

    static string Added(params string[] tokens) => $"\"added_tokens\": [{string.Join(", ", tokens)}]";

    [Fact]
    public void SpecialTokensAreReadAsStringsObjectsOrNull()
    {
        var tok = Load("""
            {"bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false}, "unk_token": null, "pad_token": {"content": "x"},
             "additional_special_tokens": ["q", null, {"content": "b"}]}
            """);
        Assert.Equal((0, 1, (int?)null, 6), (tok.BosId!.Value, tok.EosId!.Value, tok.UnkId, tok.PadId!.Value));
        // Named special tokens are left out by Decode with skipSpecialTokens; the others stay.
        foreach (int id in new[] { 0, 1, 3, 5, 6 }) Assert.True(tok.IsSpecial(id), $"id {id}");
        foreach (int id in new[] { 2, 4, 7 }) Assert.False(tok.IsSpecial(id), $"id {id}");
        Assert.Equal("a", tok.Decode(new[] { 0, 2, 3, 5, 1 }, skipSpecialTokens: true));
        // No add_bos_token / add_eos_token and no post-processor: nothing is added around the text.
        Assert.Equal(new[] { 4, 5 }, tok.Encode("abq"));
        Assert.False(tok.AddsBos);
    }

    [Fact]
    public void AddedTokensDecoderAddsTokensWithTheirFlagsAndDefaults()
    {
        // "Q" is special, so not normalized by default: matched on the raw text only. "AB!" is not special, so it is
        // matched after the Lowercase normalizer, in its normalized form. Id 0 is tokenizer.json's, which wins.
        var tok = Load("""
            {"added_tokens_decoder": {
               "8": {"content": "Q", "special": true},
               "9": {"content": "AB!"},
               "0": {"content": "<zero>", "special": true},
               "10": {"content": "<l>", "lstrip": true, "normalized": false},
               "11": {"content": "<r>", "rstrip": true, "normalized": false},
               "12": {"content": "<n>", "normalized": false},
               "13": {"content": "<w>", "single_word": true, "normalized": false}}}
            """, Added("""{"id": 0, "content": "<s>", "special": true}""") + """, "normalizer": {"type": "Lowercase"}""");
        Assert.Equal(14, tok.VocabSize);
        Assert.Equal(new[] { 8 }, tok.Encode("Q"));
        Assert.Equal(new[] { 5 }, tok.Encode("q"));
        Assert.Equal(new[] { 6, 9 }, tok.Encode("xAB!"));
        Assert.Equal(new[] { 6, 9 }, tok.Encode("xab!"));
        Assert.True(tok.IsSpecial(8));
        Assert.False(tok.IsSpecial(9));
        Assert.Equal(0, tok.TokenToId("<s>"));
        Assert.Null(tok.TokenToId("<zero>"));
        Assert.Equal("AB!", tok.Decode(new[] { 8, 9 }, skipSpecialTokens: true));
        // lstrip and rstrip swallow the spaces on their side only; without either, the spaces stay.
        Assert.Equal(new[] { 2, 10, 7, 3 }, tok.Encode("a  <l> b"));
        Assert.Equal(new[] { 2, 7, 11, 3 }, tok.Encode("a <r>  b"));
        Assert.Equal(new[] { 2, 7, 12, 7, 3 }, tok.Encode("a <n> b"));
        // single_word: only between non-word characters (letters, digits and '_' are word characters).
        Assert.Equal(new[] { 7, 13, 7 }, tok.Encode(" <w> "));
        Assert.Equal(new[] { 13 }, tok.Encode("<w>"));
        Assert.DoesNotContain(13, tok.Encode("a<w>"));
        Assert.DoesNotContain(13, tok.Encode("<w>b"));
        Assert.DoesNotContain(13, tok.Encode("_<w>"));
        Assert.DoesNotContain(13, tok.Encode("<w>7"));
    }

    [Fact]
    public void StripsStopAtTheTextAlreadyTaken()
    {
        var tok = Load(null, Added(
            """{"id": 8, "content": "<r>", "rstrip": true}""", """{"id": 9, "content": "<l>", "lstrip": true}"""));
        // <r> took the spaces after it, so <l> has none left to take; at the text's start lstrip takes what is there.
        Assert.Equal(new[] { 8, 9 }, tok.Encode("<r>  <l>"));
        Assert.Equal(new[] { 9, 2 }, tok.Encode("  <l>a"));
        Assert.Equal(new[] { 2, 8 }, tok.Encode("a<r>  "));
        Assert.Equal(new[] { 8, 8, 2 }, tok.Encode("<r><r>a"));
    }

    [Fact]
    public void LongestAddedTokenWinsAndPartialMatchesAtTheEndAreText()
    {
        var tok = Load(null, Added("""{"id": 8, "content": "ab"}""", """{"id": 9, "content": "abq"}""", """{"id": 10, "content": "b"}"""));
        Assert.Equal(new[] { 9, 8 }, tok.Encode("abqab"));
        Assert.Equal(new[] { 10, 8, 10 }, tok.Encode("babb"));
        Assert.Equal(new[] { 6, 8 }, tok.Encode("xab"));
    }

    [Fact]
    public void OnlyTheTextAtTheStartGetsAFirstPrefix()
    {
        // Metaspace with prepend_scheme "first" puts "▁" before the input's first word only: text after an added token
        // is not at the start.
        var tok = Load(null, Added("""{"id": 2, "content": "<t>", "special": true}""") +
            """, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""",
            """{"type": "BPE", "vocab": {"▁": 0, "a": 1}, "merges": []}""");
        Assert.Equal(new[] { 0, 1, 2, 1 }, tok.Encode("a<t>a"));
        Assert.Equal(new[] { 2, 1 }, tok.Encode("<t>a"));
        Assert.Equal(new[] { 0, 1, 2 }, tok.Encode("a<t>"));
    }

    [Fact]
    public void AddBosAndAddEosFalseRemoveThePostProcessorsTokens()
    {
        const string template = """
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}],
              "special_tokens": {"<s>": {"id": "<s>", "ids": [0]}, "</s>": {"id": "</s>", "ids": [1]}}}
            """;
        var plain = Load(null, template);
        Assert.Equal(new[] { 0, 4, 1 }, plain.Encode("ab"));
        // The post-processor's ids are special (left out by Decode with skipSpecialTokens), though no added token names them.
        Assert.True(plain.IsSpecial(0) && plain.IsSpecial(1));
        Assert.Equal("ab", plain.Decode(plain.Encode("ab"), skipSpecialTokens: true));
        Assert.Equal(new[] { 4, 1 }, Load("""{"add_bos_token": false}""", template).Encode("ab"));
        Assert.Equal(new[] { 0, 4 }, Load("""{"add_eos_token": false}""", template).Encode("ab"));
        var both = Load("""{"add_bos_token": false, "add_eos_token": false}""", template);
        Assert.Equal(new[] { 4 }, both.Encode("ab"));
        // The ids still come from the post-processor.
        Assert.Equal((0, 1), (both.BosId!.Value, both.EosId!.Value));
        var eos = Load("""{"add_eos_token": true, "eos_token": "x"}""");
        Assert.Equal(new[] { 4, 6 }, eos.Encode("ab"));
        Assert.Equal(6, eos.EosId);
    }

    [Theory]
    [InlineData("<s>", "</s>", 8, 9)]
    [InlineData("<|begin_of_text|>", "<|end_of_text|>", 8, 9)]
    [InlineData("<|endoftext|>", "<|endoftext|>", 8, 8)]
    public void BosAndEosFallBackToConventionalSpecialTokens(string bos, string eos, int bosId, int eosId)
    {
        var tokens = new List<string> { $$"""{"id": 8, "content": "{{bos}}", "special": true}""" };
        if (eos != bos) tokens.Add($$"""{"id": 9, "content": "{{eos}}", "special": true}""");
        var tok = Load(null, Added([.. tokens]));
        Assert.Equal((bosId, eosId), (tok.BosId!.Value, tok.EosId!.Value));
        // Not special: not a BOS or EOS by name (<s> and </s> are in the vocabulary, but no added token names them).
        var plain = Load(null, Added($$"""{"id": 8, "content": "{{bos}}", "special": false}"""));
        Assert.Null(plain.BosId);
        Assert.Null(plain.EosId);
    }

    [Fact]
    public void ConfigNamesComeFirstThenThePostProcessorThenConventionalNames()
    {
        const string body = """
            "added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>", "special": true}],
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "x"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "q"}}],
              "special_tokens": {"x": {"id": "x", "ids": [6]}, "q": {"id": "q", "ids": [5]}}}
            """;
        var tok = Load(null, body);
        Assert.Equal((6, 5), (tok.BosId!.Value, tok.EosId!.Value));
        tok = Load("""{"bos_token": "b", "eos_token": "a"}""", body);
        Assert.Equal((3, 2), (tok.BosId!.Value, tok.EosId!.Value));
        // unk: the config's name before the model's unk_token.
        const string unkModel = """{"type": "BPE", "vocab": {"<unk>": 0, "x": 1}, "merges": [], "unk_token": "<unk>"}""";
        Assert.Equal(0, Load(null, "", unkModel).UnkId);
        Assert.Equal(1, Load("""{"unk_token": "x"}""", "", unkModel).UnkId);
    }

    [Fact]
    public void PostProcessorIdsBeyondTheVocabularyAreAddedButNotSpecial()
    {
        // Ids 8 (one past the last token) and 9: Encode emits them, Decode skips them as ids without a token.
        var tok = Load(null, """
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "A"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "B"}}],
              "special_tokens": {"A": {"id": "A", "ids": [8]}, "B": {"id": "B", "ids": [9]}}}
            """);
        Assert.Equal(new[] { 8, 2, 9 }, tok.Encode("a"));
        Assert.Equal(8, tok.VocabSize);
        Assert.False(tok.IsSpecial(8));
        Assert.False(tok.HasToken(8));
        Assert.Equal("a", tok.Decode(tok.Encode("a")));
    }

    [Fact]
    public void Gpt2FilesTakeEndOfTextAsBosEosAndUnkUnlessTheConfigSaysOtherwise()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-config-").FullName;
        try
        {
            foreach (string f in new[] { "vocab.json", "merges.txt" }) File.Copy(TestPaths.Fixture("tokenizer", f), Path.Combine(dir, f));
            var tok = Tokenizer.Load(dir);
            Assert.Equal((296, 296, 296), (tok.BosId!.Value, tok.EosId!.Value, tok.UnkId!.Value));
            Assert.Null(tok.PadId);
            Assert.Empty(tok.PrefixIds);
            Assert.True(tok.IsSpecial(296));
            Assert.Equal(new[] { 296 }, tok.Encode("<|endoftext|>"));
            int[] hello = tok.Encode(" Hello");

            // The named special tokens are matched whole, spaces beside them kept (no lstrip or rstrip).
            Assert.Equal(tok.Encode("a ").Append(296).Concat(tok.Encode(" b")), tok.Encode("a <|endoftext|> b"));
            // Each name the config gives replaces <|endoftext|> in its role; a name not in vocab.json gives no token.
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"bos_token": "#", "unk_token": "$", "pad_token": "<pad>"}""");
            tok = Tokenizer.Load(dir);
            Assert.Equal((2, 296, 3), (tok.BosId!.Value, tok.EosId!.Value, tok.UnkId!.Value));
            Assert.Null(tok.PadId);
            Assert.Null(tok.TokenToId("<pad>"));

            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "!", "add_prefix_space": true, "add_bos_token": true}""");
            tok = Tokenizer.Load(dir);
            Assert.Equal((296, 0, 296), (tok.BosId!.Value, tok.EosId!.Value, tok.UnkId!.Value));
            Assert.True(tok.IsSpecial(0));
            // add_prefix_space: "Hello" encodes as " Hello" does; add_bos_token puts BOS first.
            Assert.Equal(new[] { 296 }.Concat(hello), tok.Encode("Hello"));
            Assert.Equal(new[] { 0 }, tok.Encode("!", addSpecialTokens: false)); // named special: matched whole
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void LargestTokenIdIsAccepted()
    {
        var tok = Load("{\"added_tokens_decoder\": {\"" + JsonFields.MaxTokenId + "\": {\"content\": \"<big>\"}}}");
        Assert.Equal(JsonFields.MaxTokenId + 1, tok.VocabSize);
        Assert.Equal(new[] { 2, JsonFields.MaxTokenId }, tok.Encode("a<big>"));
    }

    [Theory]
    [InlineData("[]", "", "must hold a JSON object")]
    [InlineData("""{"additional_special_tokens": "q"}""", "'additional_special_tokens'", "must be an array")]
    [InlineData("""{"additional_special_tokens": ["q", 5]}""", "'additional_special_tokens[1]'", "must be a token string or an object")]
    [InlineData("""{"additional_special_tokens": [null, {"text": "q"}]}""", "'additional_special_tokens[1].content'", "is missing")]
    [InlineData("""{"bos_token": 5}""", "'bos_token'", "must be a token string")]
    [InlineData("""{"eos_token": {"content": 1}}""", "'eos_token.content'", "must be a string, found 1")]
    [InlineData("""{"unk_token": ["q"]}""", "'unk_token'", "must be a token string")]
    [InlineData("""{"pad_token": true}""", "'pad_token'", "must be a token string")]
    [InlineData("""{"add_bos_token": "yes"}""", "'add_bos_token'", "must be true or false, found \"yes\"")]
    [InlineData("""{"add_eos_token": 1}""", "'add_eos_token'", "must be true or false, found 1")]
    [InlineData("""{"add_prefix_space": null, "add_eos_token": true}""", "'add_eos_token'", "no EOS token is defined")]
    [InlineData("""{"added_tokens_decoder": []}""", "'added_tokens_decoder'", "must be an object keyed by token id")]
    [InlineData("""{"added_tokens_decoder": {"x": {"content": "q"}}}""", "'added_tokens_decoder[\"x\"]'", "must be keyed by a token id in 0..4194303")]
    [InlineData("""{"added_tokens_decoder": {"-1": {"content": "q"}}}""", "'added_tokens_decoder[\"-1\"]'", "token id")]
    [InlineData("""{"added_tokens_decoder": {"+1": {"content": "q"}}}""", "'added_tokens_decoder[\"+1\"]'", "token id")]
    [InlineData("""{"added_tokens_decoder": {"4194304": {"content": "q"}}}""", "'added_tokens_decoder[\"4194304\"]'", "token id")]
    [InlineData("""{"added_tokens_decoder": {"8": "q"}}""", "'added_tokens_decoder[\"8\"]'", "must be an object")]
    [InlineData("""{"added_tokens_decoder": {"8": {"special": true}}}""", "'added_tokens_decoder[\"8\"].content'", "is missing")]
    [InlineData("""{"added_tokens_decoder": {"8": {"content": "q", "special": "no"}}}""", "'added_tokens_decoder[\"8\"].special'", "must be true or false")]
    [InlineData("""{"added_tokens_decoder": {"8": {"content": "q", "lstrip": 0}}}""", "'added_tokens_decoder[\"8\"].lstrip'", "must be true or false")]
    [InlineData("""{"added_tokens_decoder": {"8": {"content": "q", "rstrip": 0}}}""", "'added_tokens_decoder[\"8\"].rstrip'", "must be true or false")]
    [InlineData("""{"added_tokens_decoder": {"8": {"content": "q", "normalized": 0}}}""", "'added_tokens_decoder[\"8\"].normalized'", "must be true or false")]
    [InlineData("""{"added_tokens_decoder": {"8": {"content": "q", "single_word": 0}}}""", "'added_tokens_decoder[\"8\"].single_word'", "must be true or false")]
    public void BadConfigFieldsAreNamed(string config, string field, string detail)
    {
        var e = Assert.Throws<KeditException>(() => Load(config));
        Assert.Contains($"tokenizer_config.json: {(field.Length > 0 ? "field " + field + " " : "")}", e.Message);
        Assert.Contains(detail, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
