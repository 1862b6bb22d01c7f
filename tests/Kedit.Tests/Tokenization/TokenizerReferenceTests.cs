using System.Text.Json;
using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// Encodings against independent reference files: the committed fixture tokenizer, OpenAI GPT-2,
/// Meta Llama 2 and stories260k (expected ids made by other implementations, see the README files).
/// </summary>
public class TokenizerReferenceTests
{
    static JsonElement ReadJson(string path) => JsonDocument.Parse(File.ReadAllBytes(path)).RootElement;

    static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    static string FixtureDir => TestPaths.Fixture("tokenizer");

    /// <summary>Copies only vocab.json + merges.txt (+ tokenizer_config.json) so Load must use the fallback.</summary>
    static string CopyWithoutTokenizerJson(string dir, bool withConfig)
    {
        string tmp = Path.Combine(Path.GetTempPath(), "kedit-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(tmp);
        File.Copy(Path.Combine(dir, "vocab.json"), Path.Combine(tmp, "vocab.json"));
        File.Copy(Path.Combine(dir, "merges.txt"), Path.Combine(tmp, "merges.txt"));
        if (withConfig && File.Exists(Path.Combine(dir, "tokenizer_config.json")))
            File.Copy(Path.Combine(dir, "tokenizer_config.json"), Path.Combine(tmp, "tokenizer_config.json"));
        return tmp;
    }

    static void AssertFixtureEncodings(Tokenizer tok)
    {
        var cases = ReadJson(Path.Combine(FixtureDir, "encodings.json"));
        Assert.True(cases.GetArrayLength() > 10);
        foreach (var c in cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = tok.Encode(text);
            Assert.True(Ints(c.GetProperty("ids")).SequenceEqual(ids), $"ids of {JsonSerializer.Serialize(text)}: [{string.Join(",", ids)}]");
            Assert.Equal(Strings(c.GetProperty("tokens")), ids.Select(tok.IdToToken).ToArray());
            Assert.Equal(text, tok.Decode(ids));
        }
    }

    [Fact]
    public void FixtureTokenizerJsonReproducesEncodings()
    {
        var tok = Tokenizer.Load(FixtureDir);
        Assert.False(tok.AddsBos);
        Assert.Equal(297, tok.VocabSize); // 296 BPE tokens + <|endoftext|> (the models pad their embeddings to 300)
        Assert.Equal(296, tok.BosId);
        Assert.Equal(296, tok.EosId);
        Assert.True(tok.IsSpecial(296));
        AssertFixtureEncodings(tok);
    }

    [Fact]
    public void FixtureVocabAndMergesReproduceEncodings()
    {
        string tmp = CopyWithoutTokenizerJson(FixtureDir, withConfig: true);
        try
        {
            var tok = Tokenizer.Load(tmp);
            Assert.False(tok.AddsBos);
            Assert.Equal(296, tok.EosId);
            AssertFixtureEncodings(tok);
        }
        finally { Directory.Delete(tmp, true); }
    }

    [Fact]
    public void FixturePreTokensFollowGpt2Regex()
    {
        var pre = new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true);
        foreach (var c in ReadJson(Path.Combine(FixtureDir, "encodings.json")).EnumerateArray())
        {
            var output = new List<PreToken>();
            pre.Split(new PreToken(c.GetProperty("text").GetString()!, true), output);
            var expected = Strings(c.GetProperty("pretokens")).Select(p => ByteLevelMap.Encode(p)).ToArray();
            Assert.Equal(expected, output.Select(p => p.Text).ToArray());
        }
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("gptj")]
    [InlineData("gpt2_f16")]
    [InlineData("gpt2_bf16")]
    public void EachFixtureModelDirLoadsItsTokenizer(string model)
    {
        var tok = Tokenizer.Load(TestPaths.Fixture(model));
        AssertFixtureEncodings(tok);
    }

    [Fact]
    public void FixtureEditInputsTextReproducesTokenRows()
    {
        // edit_inputs.json: the prompt prefix/subject/suffix ids are the encodings of the text fields.
        var tok = Tokenizer.Load(TestPaths.Fixture("gpt2"));
        var inputs = ReadJson(TestPaths.Fixture("gpt2", "edit_inputs.json"));
        foreach (var r in inputs.GetProperty("requests").EnumerateArray())
        {
            var text = r.GetProperty("text");
            string prompt = text.GetProperty("prompt").GetString()!, subject = text.GetProperty("subject").GetString()!;
            int at = prompt.IndexOf("{}", StringComparison.Ordinal);
            int[] expected = Ints(r.GetProperty("prefix_ids")).Concat(Ints(r.GetProperty("subject_ids"))).Concat(Ints(r.GetProperty("suffix_ids"))).ToArray();
            Assert.Equal(expected, tok.Encode(prompt[..at] + subject + prompt[(at + 2)..]));
        }
    }

    // ------------------------------------------------------------------ GPT-2

    static void AssertGpt2Cases(Tokenizer tok, bool checkPreTokens)
    {
        var cases = ReadJson(TestPaths.RequireShared("tokenizers", "gpt2", "expected_encodings.json")).GetProperty("cases");
        Assert.Equal(48, cases.GetArrayLength());
        foreach (var c in cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = tok.Encode(text);
            Assert.True(Ints(c.GetProperty("ids")).SequenceEqual(ids), $"ids of {JsonSerializer.Serialize(text)}: [{string.Join(",", ids)}]");
            Assert.Equal(Strings(c.GetProperty("tokens")), ids.Select(tok.IdToToken).ToArray());
            Assert.Equal(text, tok.Decode(ids));
            if (checkPreTokens)
            {
                var output = new List<PreToken>();
                new ByteLevelPreTokenizer(false, true).Split(new PreToken(text, true), output);
                Assert.Equal(Strings(c.GetProperty("pretokens")).Select(p => ByteLevelMap.Encode(p)).ToArray(), output.Select(p => p.Text).ToArray());
            }
        }
    }

    [SkippableFact]
    public void Gpt2TokenizerJsonMatchesExpectedEncodings()
    {
        var tok = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "gpt2"));
        Assert.Equal(50257, tok.VocabSize);
        Assert.False(tok.AddsBos);
        Assert.Equal(50256, tok.EosId);
        Assert.Equal(new[] { 15496, 995 }, tok.Encode("Hello world"));
        AssertGpt2Cases(tok, checkPreTokens: true);
    }

    [SkippableFact]
    public void Gpt2VocabAndMergesFallbackMatchesExpectedEncodings()
    {
        string tmp = CopyWithoutTokenizerJson(TestPaths.RequireShared("tokenizers", "gpt2"), withConfig: false);
        try
        {
            var tok = Tokenizer.Load(tmp);
            Assert.Equal(50257, tok.VocabSize);
            Assert.False(tok.AddsBos);
            Assert.Equal(50256, tok.BosId);
            AssertGpt2Cases(tok, checkPreTokens: false);
        }
        finally { Directory.Delete(tmp, true); }
    }

    [SkippableFact]
    public void Gpt2EndOfTextInsideTextIsOneSpecialToken()
    {
        var tok = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "gpt2"));
        int[] ids = tok.Encode("Hello<|endoftext|> world");
        Assert.Equal(tok.Encode("Hello").Concat(new[] { 50256 }).Concat(tok.Encode(" world")), ids);
        Assert.Equal("Hello<|endoftext|> world", tok.Decode(ids));
        Assert.Equal("Hello world", tok.Decode(ids, skipSpecialTokens: true));
    }

    // ------------------------------------------------------------------ Llama 2 / stories260k

    [SkippableFact]
    public void Llama2MatchesExpectedEncodings()
    {
        var tok = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "llama2"));
        Assert.Equal(32000, tok.VocabSize);
        Assert.True(tok.AddsBos);
        Assert.Equal(1, tok.BosId);
        Assert.Equal(2, tok.EosId);
        Assert.Equal(0, tok.UnkId);
        Assert.Null(tok.PadId);
        var cases = ReadJson(TestPaths.RequireShared("tokenizers", "llama2", "expected_encodings.json")).GetProperty("cases");
        Assert.Equal(48, cases.GetArrayLength());
        foreach (var c in cases.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = tok.Encode(text);
            Assert.True(Ints(c.GetProperty("ids")).SequenceEqual(ids), $"ids of {JsonSerializer.Serialize(text)}: [{string.Join(",", ids)}]");
            Assert.Equal(Strings(c.GetProperty("tokens")), ids.Select(tok.IdToToken).ToArray());
            Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids, skipSpecialTokens: true));
            Assert.Equal(text, tok.Decode(tok.Encode(text, addSpecialTokens: false)));
        }
    }

    [SkippableFact]
    public void Stories260kMatchesRunCEncodings()
    {
        string dir = TestPaths.RequireShared("models", "stories260k");
        var tok = Tokenizer.FromTokenizerJson(Path.Combine(dir, "tokenizer.json"));
        Assert.True(tok.AddsBos);
        Assert.Equal(512, tok.VocabSize);
        var expected = ReadJson(Path.Combine(dir, "expected_generations.json"));
        foreach (var c in expected.GetProperty("tokenizer_cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] ids = tok.Encode(text);
            Assert.True(Ints(c.GetProperty("ids")).SequenceEqual(ids), $"ids of {JsonSerializer.Serialize(text)}: [{string.Join(",", ids)}]");
            Assert.Equal(Strings(c.GetProperty("tokens")), ids.Select(tok.IdToToken).ToArray());
            Assert.Equal(c.GetProperty("decoded").GetString(), tok.Decode(ids, skipSpecialTokens: true));
        }
        var withConfig = Tokenizer.Load(dir);
        foreach (var c in expected.GetProperty("cases").EnumerateArray())
        {
            int[] promptIds = Ints(c.GetProperty("prompt_token_ids"));
            Assert.Equal(promptIds, withConfig.Encode(c.GetProperty("prompt").GetString()!));
            // The generated text decodes as HF does (BOS skipped).
            int[] all = promptIds.Concat(Ints(c.GetProperty("output_token_ids"))).ToArray();
            Assert.Equal(c.GetProperty("hf_decoded_text").GetString(), withConfig.Decode(all, skipSpecialTokens: true));
        }
    }
}
