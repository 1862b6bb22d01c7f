using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// Behaviour beyond the reference files: the merge loop against a naive BPE, code-point regex semantics,
/// Llama-3 style Split pre-tokenization, Metaspace files, added-token flags, errors.
/// </summary>
public class TokenizerBehaviourTests
{
    static string FixtureDir => TestPaths.Fixture("tokenizer");

    static JsonObject FixtureJson() => JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, "tokenizer.json")))!.AsObject();

    /// <summary>Writes a tokenizer.json (and optional tokenizer_config.json) into a new temp dir and loads it.</summary>
    static Tokenizer LoadJson(JsonNode json, JsonNode? config = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "kedit-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
            if (config != null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
            return Tokenizer.Load(dir);
        }
        finally { Directory.Delete(dir, true); }
    }

    static KeditException LoadFails(JsonNode json, JsonNode? config = null) => Assert.Throws<KeditException>(() => LoadJson(json, config));

    // ------------------------------------------------------------------ BPE merge loop

    /// <summary>The original GPT-2 algorithm: repeatedly merge every occurrence of the lowest-ranked pair.</summary>
    static List<string> NaiveBpe(string word, Dictionary<(string, string), int> ranks)
    {
        var parts = word.Select(c => c.ToString()).ToList();
        while (parts.Count > 1)
        {
            (string, string)? best = null;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < parts.Count; i++)
                if (ranks.TryGetValue((parts[i], parts[i + 1]), out int r) && r < bestRank) { bestRank = r; best = (parts[i], parts[i + 1]); }
            if (best == null) break;
            var merged = new List<string>();
            for (int i = 0; i < parts.Count; i++)
            {
                if (i + 1 < parts.Count && (parts[i], parts[i + 1]) == best.Value) { merged.Add(parts[i] + parts[i + 1]); i++; }
                else merged.Add(parts[i]);
            }
            parts = merged;
        }
        return parts;
    }

    static Dictionary<(string, string), int> ReadRanks(string mergesTxt)
    {
        var ranks = new Dictionary<(string, string), int>();
        foreach (var line in File.ReadLines(mergesTxt).Where(l => l.Length > 0 && !l.StartsWith("#version")))
        {
            var p = line.Split(' ');
            ranks.TryAdd((p[0], p[1]), ranks.Count);
        }
        return ranks;
    }

    static void AssertMatchesNaive(Tokenizer tok, Dictionary<(string, string), int> ranks, IEnumerable<string> texts)
    {
        var pre = new ByteLevelPreTokenizer(false, true);
        foreach (string text in texts)
        {
            var words = new List<PreToken>();
            pre.Split(new PreToken(text, true), words);
            var expected = words.SelectMany(w => NaiveBpe(w.Text, ranks)).ToArray();
            var actual = tok.Encode(text).Select(tok.IdToToken).ToArray();
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void MergeLoopMatchesNaiveBpeOnRandomAndLongWords()
    {
        var tok = Tokenizer.Load(FixtureDir);
        var ranks = ReadRanks(Path.Combine(FixtureDir, "merges.txt"));
        var rng = new Random(1234);
        const string alphabet = "thequickbrownfoxlaeinrs ";
        var texts = Enumerable.Range(0, 300).Select(_ => new string(Enumerable.Range(0, rng.Next(1, 30)).Select(_ => alphabet[rng.Next(alphabet.Length)]).ToArray())).ToList();
        // Long words (the queue path); ties and the amount of work: TiedMergesGoLeftmostFirstInShortAndLongWords, LongWordMergeWorkIsLinearInTheWordLength.
        texts.Add(string.Concat(Enumerable.Repeat("the", 4000)));
        texts.Add(new string('e', 9999));
        texts.Add(string.Concat(Enumerable.Range(0, 5000).Select(_ => alphabet[rng.Next(alphabet.Length - 1)])));
        AssertMatchesNaive(tok, ranks, texts);
    }

    /// <summary>
    /// A tokenizer whose merges tie everywhere: a run of one letter holds the same pair at every position,
    /// and only leftmost-first gives the naive (GPT-2 encoder.py) result for odd runs.
    /// </summary>
    static (Tokenizer, Dictionary<(string, string), int>) TieTokenizer()
    {
        var json = FixtureJson();
        string[] tokens = { "a", "b", "aa", "aaa", "aaaa", "ab", "aab", "<|endoftext|>" };
        string[] merges = { "a a", "aa a", "aa aa", "a b", "aa b" };
        var vocab = new JsonObject();
        for (int i = 0; i < tokens.Length; i++) vocab[tokens[i]] = i;
        json["model"]!["vocab"] = vocab;
        json["model"]!["merges"] = new JsonArray(merges.Select(m => (JsonNode)m).ToArray());
        json["added_tokens"]![0]!["id"] = tokens.Length - 1;
        var ranks = merges.Select((m, i) => (m.Split(' '), i)).ToDictionary(x => (x.Item1[0], x.Item1[1]), x => x.i);
        return (LoadJson(json), ranks);
    }

    [Fact]
    public void TiedMergesGoLeftmostFirstInShortAndLongWords()
    {
        var (tok, ranks) = TieTokenizer();
        var rng = new Random(5);
        // Runs of every length across the short-word limit (24 symbols) and far beyond it, and random a/b words.
        var texts = Enumerable.Range(2, 60).Select(n => new string('a', n))
            .Concat(Enumerable.Range(0, 200).Select(_ => new string(Enumerable.Range(0, rng.Next(3, 60)).Select(_ => "ab"[rng.Next(4) == 0 ? 1 : 0]).ToArray())))
            .Append(new string('a', 9999)).Append(new string('a', 10000));
        AssertMatchesNaive(tok, ranks, texts);
        Assert.Equal(new[] { "aaaa", "aaa" }, tok.Encode("aaaaaaa").Select(tok.IdToToken));        // leftmost: aa aa aa a → aaaa aaa
        Assert.Equal(new[] { "aaaa", "aaaa", "aaaa", "aaaa", "aaaa", "aaaa", "aaa" }, tok.Encode(new string('a', 27)).Select(tok.IdToToken));
    }

    [Fact]
    public void LongWordMergeWorkIsLinearInTheWordLength()
    {
        // Counted, not timed: queue entries the merge loop takes (each merge queues at most two new pairs).
        var (tok, _) = TieTokenizer();
        foreach (int n in new[] { 1000, 4000, 16000 })
        {
            string word = new string('a', n - 1) + "b"; // over 256 symbols: never cached
            long before = BpeModel.t_queueEntries;
            var ids = tok.Encode(word);
            long taken = BpeModel.t_queueEntries - before;
            Assert.True(taken >= n - ids.Length, $"{n} symbols: {taken} queue entries for {n - ids.Length} merges");
            Assert.True(taken <= 3L * n, $"{n} symbols: {taken} queue entries (limit 3n = {3L * n})");
        }
    }

    /// <summary>
    /// A GPT-2 sample the project may redistribute (GPT-2 is MIT): the GPT-2 merges that encoding the
    /// sample texts applies, with GPT-2's ids, and the ids OpenAI's encoder.py gives with all 50,000
    /// merges (tests/data/gpt2-tokenizer-sample, made once by its make_sample.py): the shared reference
    /// strings plus runs whose merges tie, short and long, where rightmost-first would differ.
    /// </summary>
    [Fact]
    public void Gpt2SampleEncodesAsGpt2DoesIncludingTies()
    {
        string dir = Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-tokenizer-sample");
        var tok = Tokenizer.Load(dir);
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")))!["cases"]!.AsArray();
        foreach (var c in cases)
        {
            string text = c!["text"]!.GetValue<string>();
            var ids = c["ids"]!.AsArray().Select(i => i!.GetValue<int>()).ToArray();
            Assert.True(ids.SequenceEqual(tok.Encode(text)), $"{JsonSerializer.Serialize(text)}: [{string.Join(",", tok.Encode(text))}], GPT-2 [{string.Join(",", ids)}]");
            Assert.Equal(text, tok.Decode(ids));
        }
        // The sample discriminates: ties where the other order gives other ids, in short and in long words.
        var tied = cases.Where(c => c!["rightmost_first_differs"]!.GetValue<bool>()).Select(c => c!["text"]!.GetValue<string>()).ToList();
        Assert.Contains(tied, t => t.Length <= 24);
        Assert.Contains(tied, t => t.Length > 24 && !t.Contains(' '));
    }

    [SkippableFact]
    public void Gpt2MergeLoopMatchesNaiveBpeOnCorpusWords()
    {
        string dir = TestPaths.RequireShared("tokenizers", "gpt2");
        var tok = Tokenizer.FromTokenizerJson(Path.Combine(dir, "tokenizer.json"));
        var ranks = ReadRanks(Path.Combine(dir, "merges.txt"));
        string corpus = File.ReadAllText(Path.Combine(FixtureDir, "train_text.txt"));
        var rng = new Random(7);
        var texts = corpus.Split('\n').ToList();
        // Shuffled characters make words the vocabulary does not hold whole.
        texts.AddRange(Enumerable.Range(0, 200).Select(_ => new string(Enumerable.Range(0, 40).Select(_ => corpus[rng.Next(corpus.Length)]).ToArray())));
        texts.Add(string.Concat(Enumerable.Repeat("abracadabra", 500)));
        AssertMatchesNaive(tok, ranks, texts);
    }

    [Fact]
    public void EncodingIsThreadSafe()
    {
        var tok = Tokenizer.Load(FixtureDir);
        var lines = File.ReadAllLines(Path.Combine(FixtureDir, "train_text.txt"));
        var expected = lines.Select(l => Tokenizer.Load(FixtureDir).Encode(l)).ToArray();
        Parallel.For(0, lines.Length * 4, i => Assert.Equal(expected[i % lines.Length], tok.Encode(lines[i % lines.Length])));
    }

    // ------------------------------------------------------------------ pre-tokenization

    static string[] Split(IPreTokenizer pre, string text)
    {
        var output = new List<PreToken>();
        pre.Split(new PreToken(text, true), output);
        return output.Select(p => p.Text).ToArray();
    }

    [Fact]
    public void Gpt2RegexTreatsCharactersOutsideTheBmpByCategory()
    {
        // 𝐀𝐁 are letters (Lu), 𝟏𝟐 digits (Nd), 😀 a symbol (So): one code point each, as the Python/Rust regexes see them.
        var pre = new ByteLevelPreTokenizer(false, true);
        Assert.Equal(new[] { "a𝐀𝐁", " 𝟏𝟐3", " 😀!", "  ", " x" }.Select(s => ByteLevelMap.Encode(s)), Split(pre, "a𝐀𝐁 𝟏𝟐3 😀!   x"));
    }

    [Fact]
    public void Gpt2RegexLeavesTheLastSpaceOfARunForTheNextWord()
    {
        var pre = new ByteLevelPreTokenizer(false, true);
        Assert.Equal(new[] { "a", "  ", " b", "\n\t ", " c", " " }.Select(s => ByteLevelMap.Encode(s)), Split(pre, "a   b\n\t  c "));
        // Case-sensitive contractions: "'S" is punctuation then a letter.
        Assert.Equal(new[] { "'s", "'", "S", " don", "'t" }.Select(s => ByteLevelMap.Encode(s)), Split(pre, "'s'S don't"));
    }

    const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    static JsonObject Llama3PreTokenizer(string pattern) => new()
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(
            new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
            new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
    };

    [Fact]
    public void Llama3SplitPatternIsolatesPieces()
    {
        var f = new JsonFields("test");
        var pre = PreTokenizerFactory.Create(f, JsonDocument.Parse(Llama3PreTokenizer(Llama3Pattern).ToJsonString()).RootElement, "pre_tokenizer");
        // Derived by hand from the pattern: case-insensitive contractions, digits in threes, newline runs kept whole.
        string[] expected = { "I", "'M", " ", "123", "45", " ", " ok", "\n\n", "yes", "𝟏𝟐𝟑", "𝟒" };
        Assert.Equal(expected.Select(s => ByteLevelMap.Encode(s)), Split(pre, "I'M 12345  ok\n\nyes𝟏𝟐𝟑𝟒"));
    }

    [Fact]
    public void SplitPlusByteLevelWithoutRegexEqualsByteLevelWithRegex()
    {
        // Llama-3 layout (Split then ByteLevel(use_regex=false), template BOS) with the GPT-2 pattern must give GPT-2's ids.
        var json = FixtureJson();
        json["pre_tokenizer"] = Llama3PreTokenizer(ByteLevelPreTokenizer.Gpt2Pattern);
        json["post_processor"] = JsonNode.Parse("""
            {"type": "Sequence", "processors": [
              {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
              {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
               "pair": [], "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [296], "tokens": ["<|endoftext|>"]}}}]}
            """);
        var llama3Style = LoadJson(json);
        var reference = Tokenizer.Load(FixtureDir);
        Assert.True(llama3Style.AddsBos);
        Assert.Equal(296, llama3Style.BosId);
        foreach (var c in JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, "encodings.json"))).RootElement.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            Assert.Equal(new[] { 296 }.Concat(reference.Encode(text)), llama3Style.Encode(text));
            Assert.Equal(reference.Encode(text), llama3Style.Encode(text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void IgnoreMergesTakesWholeWordsFromTheVocabulary()
    {
        var json = JsonNode.Parse("""
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": ["a b"], "ignore_merges": true}}
            """)!;
        var tok = LoadJson(json);
        Assert.Equal(new[] { 4 }, tok.Encode("abc"));      // whole word in the vocabulary: no merges needed
        Assert.Equal(new[] { 3, 1 }, tok.Encode("abb"));   // otherwise BPE as usual
        json["model"]!["ignore_merges"] = false;
        Assert.Equal(new[] { 3, 2 }, LoadJson(json).Encode("abc"));
    }

    [Fact]
    public void UnknownCharactersBecomeUnkFusedWhenAsked()
    {
        var json = JsonNode.Parse("""
            {"model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": ["a b"], "unk_token": "<unk>", "fuse_unk": true}}
            """)!;
        var fused = LoadJson(json);
        Assert.Equal(0, fused.UnkId);
        Assert.Equal(new[] { 3, 0, 1, 0 }, fused.Encode("abxy😀a€"));
        json["model"]!["fuse_unk"] = false;
        Assert.Equal(new[] { 3, 0, 0, 0, 1, 0 }, LoadJson(json).Encode("abxy😀a€"));
    }

    [Fact]
    public void MergesAsPairsEqualMergesAsStrings()
    {
        var json = FixtureJson();
        var pairs = new JsonArray();
        foreach (var m in json["model"]!["merges"]!.AsArray())
        {
            var parts = m!.GetValue<string>().Split(' ');
            pairs.Add(new JsonArray(parts[0], parts[1]));
        }
        json["model"]!["merges"] = pairs;
        var tok = LoadJson(json);
        var reference = Tokenizer.Load(FixtureDir);
        foreach (string line in File.ReadLines(Path.Combine(FixtureDir, "train_text.txt")))
            Assert.Equal(reference.Encode(line), tok.Encode(line));
    }

    [SkippableFact]
    public void MetaspacePreTokenizerFilesEncodeLikeTheNormalizerForm()
    {
        // Older sentencepiece-style tokenizer.json: no normalizer, pre_tokenizer Metaspace (prefix "▁", spaces → "▁").
        string dir = TestPaths.RequireShared("models", "stories260k");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))!.AsObject();
        var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected_generations.json"))).RootElement.GetProperty("tokenizer_cases");
        json["normalizer"] = null;
        foreach (bool split in new[] { false, true })
        {
            json["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["add_prefix_space"] = true, ["split"] = split };
            var tok = LoadJson(json);
            foreach (var c in cases.EnumerateArray())
            {
                string text = c.GetProperty("text").GetString()!;
                // Metaspace prepends "▁" only where the text does not already start with a space.
                if (text.Length == 0 || text.StartsWith(' ')) continue;
                Assert.Equal(c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), tok.Encode(text));
            }
        }
        json["decoder"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["add_prefix_space"] = true };
        var withDecoder = LoadJson(json);
        Assert.Equal("Once upon a time", withDecoder.Decode(withDecoder.Encode("Once upon a time"), skipSpecialTokens: true));
    }

    [SkippableFact]
    public void SentencepieceWordSplittingShortcutGivesTheSameIds()
    {
        // Without a pre-tokenizer the whole text is one BPE word; the model splits it before "▁" runs when
        // no merge can span such a boundary. Compare with BPE over the unsplit text.
        var split = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "llama2"));
        var whole = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "llama2"));
        Assert.True(split.Model.SplitBeforeSpaceMarker);
        whole.Model.SplitBeforeSpaceMarker = false;
        var texts = JsonDocument.Parse(File.ReadAllText(TestPaths.RequireShared("tokenizers", "llama2", "expected_encodings.json")))
            .RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToList();
        texts.Add(string.Join("  \n ", texts));
        texts.Add(File.ReadAllText(Path.Combine(FixtureDir, "train_text.txt")));
        texts.Add("def f(x):\n        return  x\n\n    \t  end    ");
        foreach (string text in texts) Assert.Equal(whole.Encode(text), split.Encode(text));
    }

    // ------------------------------------------------------------------ added tokens, special tokens, decoding

    [Fact]
    public void AddedTokensAreMatchedWholeWithTheirStripFlags()
    {
        var json = FixtureJson();
        var added = json["added_tokens"]!.AsArray();
        added.Add(new JsonObject { ["id"] = 297, ["content"] = "<mask>", ["special"] = false, ["lstrip"] = true, ["rstrip"] = false, ["normalized"] = false, ["single_word"] = false });
        added.Add(new JsonObject { ["id"] = 298, ["content"] = "<sep>", ["special"] = true, ["lstrip"] = false, ["rstrip"] = true, ["normalized"] = false, ["single_word"] = false });
        added.Add(new JsonObject { ["id"] = 299, ["content"] = "<sep>!", ["special"] = true, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["single_word"] = false });
        var tok = LoadJson(json);
        var plain = Tokenizer.Load(FixtureDir);
        Assert.Equal(300, tok.VocabSize);
        // lstrip swallows the spaces before <mask>; rstrip the spaces after <sep>; the longest match wins.
        Assert.Equal(plain.Encode("the").Append(297).Concat(plain.Encode(" fox")), tok.Encode("the  <mask> fox"));
        Assert.Equal(plain.Encode("a").Append(298).Concat(plain.Encode("b")), tok.Encode("a<sep>   b"));
        Assert.Equal(plain.Encode("a").Append(299), tok.Encode("a<sep>!"));
        Assert.False(tok.IsSpecial(297));
        Assert.True(tok.IsSpecial(298));
        Assert.Equal(297, tok.TokenToId("<mask>"));
        Assert.Equal("a<mask><sep>", tok.Decode(new[] { 64, 297, 298 }));
        Assert.Equal("a<mask>", tok.Decode(new[] { 64, 297, 298 }, skipSpecialTokens: true));
    }

    [Fact]
    public void ConfigAddBosAndAddEosOverrideThePostProcessor()
    {
        var config = JsonNode.Parse("""{"add_bos_token": true, "add_eos_token": true, "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}""");
        var tok = LoadJson(FixtureJson(), config);
        Assert.True(tok.AddsBos);
        Assert.Equal(296, tok.PadId);
        var plain = Tokenizer.Load(FixtureDir);
        Assert.Equal(new[] { 296 }.Concat(plain.Encode("Hello world")).Append(296), tok.Encode("Hello world"));
        Assert.Equal(plain.Encode("Hello world"), tok.Encode("Hello world", addSpecialTokens: false));
    }

    [Fact]
    public void DecodingBrokenUtf8GivesReplacementCharacters()
    {
        var tok = Tokenizer.Load(FixtureDir);
        int[] emoji = tok.Encode("😀");
        Assert.True(emoji.Length > 1);
        Assert.Equal("\uFFFD", tok.Decode(emoji.AsSpan(0, 1)));
        Assert.Equal("😀", tok.Decode(emoji));
        Assert.Equal("", tok.Decode(new[] { 100_000, -1 })); // ids without a token are skipped, as HF does
        Assert.Throws<KeditException>(() => tok.IdToToken(100_000));
        Assert.Null(tok.TokenToId("no such token"));
    }

    [SkippableFact]
    public void Llama2ByteFallbackDecodesInvalidBytesPerByte()
    {
        var tok = Tokenizer.Load(TestPaths.RequireShared("tokenizers", "llama2"));
        int b0 = tok.TokenToId("<0xF0>")!.Value, b1 = tok.TokenToId("<0x9F>")!.Value;
        Assert.Equal("\uFFFD\uFFFD", tok.Decode(new[] { b0, b1 }));
        Assert.Equal("<s> Hi", tok.Decode(tok.Encode("Hi")));
        Assert.Equal("<s>  Hi", tok.Decode(tok.Encode(" Hi"))); // Strip removes one leading space of the whole text only
    }

    // ------------------------------------------------------------------ errors

    [Fact]
    public void MissingFolderOrFilesAreNamed()
    {
        string missing = Path.Combine(Path.GetTempPath(), "kedit-no-such-dir-" + Guid.NewGuid().ToString("N"));
        Assert.Contains(missing, Assert.Throws<KeditException>(() => Tokenizer.Load(missing)).Message);
        Assert.Contains("tokenizer.json", Assert.Throws<KeditException>(() => Tokenizer.FromTokenizerJson(Path.Combine(missing, "tokenizer.json"))).Message);
        string empty = Directory.CreateTempSubdirectory("kedit-tok-").FullName;
        try
        {
            var e = Assert.Throws<KeditException>(() => Tokenizer.Load(empty));
            Assert.Contains("tokenizer.json", e.Message);
            Assert.Contains("merges.txt", e.Message);
        }
        finally { Directory.Delete(empty, true); }
    }

    [Fact]
    public void BrokenJsonIsReportedWithTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-tok-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), "{\"model\": {\"type\": \"BPE\", ");
            var e = Assert.Throws<KeditException>(() => Tokenizer.Load(dir));
            Assert.Contains(Path.Combine(dir, "tokenizer.json"), e.Message);
            Assert.Contains("invalid JSON", e.Message);

            File.Copy(Path.Combine(FixtureDir, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"), overwrite: true);
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"add_bos_token\": yes}");
            Assert.Contains("tokenizer_config.json", Assert.Throws<KeditException>(() => Tokenizer.Load(dir)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("model", """{"type": "Unigram", "vocab": []}""", "'model.type'", "Unigram")]
    [InlineData("model", """{"vocab": {"a": 0}}""", "'model.type'", "missing")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}""", "'model.merges[0]'", "zz")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}""", "'model.merges[0]'", "two tokens")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": "x"}, "merges": []}""", "model.vocab[\"a\"]", "integer")]
    [InlineData("model", """{"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}""", "'model.unk_token'", "<unk>")]
    [InlineData("normalizer", """{"type": "Sequence", "normalizers": [{"type": "Precompiled"}]}""", "'normalizer.normalizers[0].type'", "Precompiled")]
    [InlineData("pre_tokenizer", """{"type": "BertPreTokenizer"}""", "'pre_tokenizer.type'", "BertPreTokenizer")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"Regex": "a++("}, "behavior": "Isolated"}""", "'pre_tokenizer.pattern.Regex'", "regex")]
    [InlineData("pre_tokenizer", """{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}""", "'pre_tokenizer.behavior'", "Sideways")]
    [InlineData("decoder", """{"type": "WordPiece"}""", "'decoder.type'", "WordPiece")]
    [InlineData("post_processor", """{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}""", "'post_processor.special_tokens'", "<x>")]
    [InlineData("added_tokens", """[{"id": 5, "special": true}]""", "'added_tokens[0].content'", "missing")]
    public void BadFieldsAreNamed(string field, string value, string expectedField, string expectedDetail)
    {
        var json = FixtureJson();
        json[field] = JsonNode.Parse(value);
        var e = LoadFails(json);
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains(expectedField, e.Message);
        Assert.Contains(expectedDetail, e.Message);
    }

    [Fact]
    public void AddBosWithoutBosTokenIsAnError()
    {
        var json = JsonNode.Parse("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}""")!;
        var e = LoadFails(json, JsonNode.Parse("""{"add_bos_token": true}"""));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("add_bos_token", e.Message);
    }

    [Fact]
    public void BadMergesTxtLineIsNamed()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-tok-").FullName;
        try
        {
            File.Copy(Path.Combine(FixtureDir, "vocab.json"), Path.Combine(dir, "vocab.json"));
            File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\nh e\nthree part line\n");
            var e = Assert.Throws<KeditException>(() => Tokenizer.Load(dir));
            Assert.Contains("merges.txt", e.Message);
            Assert.Contains("line 3", e.Message);
            File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\nh e\nq z\n");
            e = Assert.Throws<KeditException>(() => Tokenizer.Load(dir));
            Assert.Contains("merges.txt", e.Message);
            Assert.Contains("line 3", e.Message);
            Assert.Contains("\"qz\"", e.Message); // the merged token is not in vocab.json
        }
        finally { Directory.Delete(dir, true); }
    }
}
