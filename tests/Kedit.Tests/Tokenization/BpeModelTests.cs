using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// The BPE model on hand-made vocabularies where every expected id can be worked out by hand from HF
/// tokenizers' merge_word rules: continuing-subword prefix and end-of-word suffix, byte fallback (all bytes
/// or none), unknown tokens, surrogate pairs, repeated merges, the sentencepiece "▁" split and the errors.
/// </summary>
public class BpeModelTests
{
    static BpeModel Model(string[] tokens, string[] merges, string? unk = null, bool fuseUnk = false, bool byteFallback = false,
        bool ignoreMerges = false, string? prefix = null, string? suffix = null)
    {
        var vocab = tokens.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i);
        var pairs = merges.Select(m => m.Split(' ')).Select(p => (p[0], p[1])).ToList();
        return new BpeModel(vocab, pairs, unk, fuseUnk, byteFallback, ignoreMerges, prefix, suffix, "model.merges", "model.unk_token",
            (field, problem) => new KeditException($"tokenizer.json: field '{field}' {problem}"));
    }

    static string[] Tokens(BpeModel model, string word)
    {
        var ids = new List<int>();
        model.Tokenize(word, ids);
        var byId = model.Vocab.ToDictionary(p => p.Value, p => p.Key);
        return ids.Select(i => byId[i]).ToArray();
    }

    /// <summary>A word made long enough for the queue-based merge (over 24 symbols) by repeating it with a separator that never merges.</summary>
    static string Long(string word) => string.Join("|", Enumerable.Repeat(word, 30 / word.Length + 1));

    [Fact]
    public void ContinuingSubwordPrefixMarksEverySymbolButTheFirstAndMergesDropIt()
    {
        // WordPiece-style BPE: "abc" starts as a ##b ##c; "a ##b" makes "ab", "ab ##c" makes "abc";
        // inside a word "##a ##b" makes "##ab" (the right half loses its prefix, the left keeps it).
        var m = Model(new[] { "a", "b", "c", "##a", "##b", "##c", "ab", "abc", "##ab", "##abc", "|", "##|" },
            new[] { "a ##b", "ab ##c", "##a ##b", "##ab ##c" }, prefix: "##");
        Assert.Equal(new[] { "abc" }, Tokens(m, "abc"));
        Assert.Equal(new[] { "ab", "##a" }, Tokens(m, "aba"));
        Assert.Equal(new[] { "b", "##c" }, Tokens(m, "bc")); // no merge "b ##c"
        Assert.Equal(new[] { "ab", "##abc" }, Tokens(m, "ababc"));
        // The same in the long-word loop: 11 groups, the first unprefixed.
        var expected = new[] { "abc" }.Concat(Enumerable.Repeat(new[] { "##|", "##abc" }, 10).SelectMany(x => x)).ToArray();
        Assert.Equal(expected, Tokens(m, Long("abc")));
    }

    [Fact]
    public void PrefixedMergeOfAnUnprefixedRightHalfKeepsItWhole()
    {
        // Merge "a b" (b without the prefix): merged text is "ab" either way; "x ##y" makes "xy".
        var m = Model(new[] { "x", "##y", "xy", "a", "b", "ab" }, new[] { "x ##y", "a b" }, prefix: "##");
        Assert.Equal(new[] { "xy" }, Tokens(m, "xy"));
        var e = Assert.Throws<KeditException>(() => Model(new[] { "x", "##y", "x##y" }, new[] { "x ##y" }, prefix: "##"));
        Assert.Contains("'model.merges[0]'", e.Message);
        Assert.Contains("makes \"xy\"", e.Message); // the prefix is dropped from the merged text, so "x##y" does not count
    }

    [Fact]
    public void EndOfWordSuffixMarksTheLastSymbol()
    {
        var m = Model(new[] { "a", "b", "a</w>", "b</w>", "ab</w>", "ab", "|", "|</w>" }, new[] { "a b</w>", "a b" }, suffix: "</w>");
        Assert.Equal(new[] { "ab</w>" }, Tokens(m, "ab"));
        Assert.Equal(new[] { "ab", "a</w>" }, Tokens(m, "aba"));
        Assert.Equal(new[] { "a</w>" }, Tokens(m, "a")); // a one-character word is first and last
        var longTokens = Tokens(m, Long("ab"));
        Assert.Equal("ab</w>", longTokens[^1]);
        Assert.Equal(Long("ab").Count(ch => ch == 'a') - 1, longTokens.Count(t => t == "ab"));
    }

    [Fact]
    public void PrefixAndSuffixTogether()
    {
        var m = Model(new[] { "a", "##b", "##b</w>", "a</w>", "ab</w>" }, new[] { "a ##b</w>" }, prefix: "##", suffix: "</w>");
        Assert.Equal(new[] { "ab</w>" }, Tokens(m, "ab"));
        Assert.Equal(new[] { "a", "##b", "##b</w>" }, Tokens(m, "abb"));
    }

    [Fact]
    public void ByteFallbackTakesAllBytesOfACharacterOrNone()
    {
        // "€" is E2 82 AC in UTF-8; "😀" (a surrogate pair) is F0 9F 98 80.
        var tokens = new[] { "<unk>", "a", "<0xE2>", "<0x82>", "<0xAC>", "<0xF0>", "<0x9F>", "<0x98>" };
        var m = Model(tokens, Array.Empty<string>(), unk: "<unk>", byteFallback: true);
        Assert.Equal(new[] { "a", "<0xE2>", "<0x82>", "<0xAC>", "a" }, Tokens(m, "a€a"));
        // <0x80> is missing: not three of the four bytes, the unknown token instead.
        Assert.Equal(new[] { "a", "<unk>", "a" }, Tokens(m, "a😀a"));
        // Without byte fallback the same character is unknown.
        Assert.Equal(new[] { "a", "<unk>", "a" }, Tokens(Model(tokens, Array.Empty<string>(), unk: "<unk>"), "a€a"));
        // Byte tokens merge like any other symbol.
        var merged = Model(tokens.Append("<0xE2><0x82>").ToArray(), new[] { "<0xE2> <0x82>" }, byteFallback: true);
        Assert.Equal(new[] { "<0xE2><0x82>", "<0xAC>" }, Tokens(merged, "€"));
    }

    [Fact]
    public void ByteFallbackWithAffixesUsesTheMarkedText()
    {
        // HF: the byte fallback encodes the symbol's text with its prefix ("##€" = 23 23 E2 82 AC).
        var tokens = new[] { "a", "<0x23>", "<0xE2>", "<0x82>", "<0xAC>" };
        var m = Model(tokens, Array.Empty<string>(), byteFallback: true, prefix: "##");
        Assert.Equal(new[] { "a", "<0x23>", "<0x23>", "<0xE2>", "<0x82>", "<0xAC>" }, Tokens(m, "a€"));
        Assert.Equal(new[] { "<0xE2>", "<0x82>", "<0xAC>" }, Tokens(m, "€")); // the first symbol has no prefix
    }

    [Fact]
    public void CharactersOutsideTheBmpAreOneSymbol()
    {
        var m = Model(new[] { "😀", "a", "a😀" }, new[] { "a 😀" });
        Assert.Equal(new[] { "a😀", "😀" }, Tokens(m, "a😀😀"));
        var withAffix = Model(new[] { "😀", "##😀", "a", "##a" }, Array.Empty<string>(), prefix: "##");
        Assert.Equal(new[] { "😀", "##a", "##😀" }, Tokens(withAffix, "😀a😀"));
    }

    [Fact]
    public void UnknownsWithoutAnUnknownTokenAreDropped()
    {
        var m = Model(new[] { "a", "b", "ab" }, new[] { "a b" });
        Assert.Equal(new[] { "ab" }, Tokens(m, "axb")); // x dropped, so a and b become adjacent and merge (as HF)
        Assert.Empty(Tokens(m, "xyz"));
        Assert.Null(m.UnkToken);
    }

    [Theory]
    [InlineData(true, new[] { "<unk>", "a", "<unk>" })]
    [InlineData(false, new[] { "<unk>", "<unk>", "a", "<unk>", "<unk>", "<unk>" })]
    public void UnknownRunsFuseOnlyWhenAsked(bool fuse, string[] expected)
    {
        var m = Model(new[] { "<unk>", "a" }, Array.Empty<string>(), unk: "<unk>", fuseUnk: fuse);
        Assert.Equal(expected, Tokens(m, "xyaxyz"));
        Assert.Equal("<unk>", m.UnkToken);
    }

    [Fact]
    public void ARepeatedMergeTakesItsLastRank()
    {
        // "b c" first at rank 0 and again at rank 2, after "a b" (rank 1): HF keeps the last, so "a b" wins in "abc".
        var m = Model(new[] { "a", "b", "c", "ab", "bc", "abc" }, new[] { "b c", "a b", "b c", "ab c" });
        Assert.Equal(new[] { "abc" }, Tokens(m, "abc"));
        var once = Model(new[] { "a", "b", "c", "ab", "bc" }, new[] { "b c", "a b" });
        Assert.Equal(new[] { "a", "bc" }, Tokens(once, "abc"));
        // The same in the long-word loop.
        Assert.Equal(new[] { "abc" }, Tokens(m, Long("abc").Replace("|", "")).Distinct());
        Assert.Equal(new[] { "a", "bc" }, Tokens(once, Long("abc").Replace("|", "")).Distinct());
    }

    [Fact]
    public void IgnoreMergesTakesAWholeVocabularyWordEvenWhenMergesWouldNot()
    {
        var tokens = new[] { "a", "b", "c", "bc", "abc" };
        Assert.Equal(new[] { "abc" }, Tokens(Model(tokens, new[] { "b c" }, ignoreMerges: true), "abc"));
        Assert.Equal(new[] { "a", "bc" }, Tokens(Model(tokens, new[] { "b c" }), "abc"));
        Assert.Equal(new[] { "a", "bc", "a" }, Tokens(Model(tokens, new[] { "b c" }, ignoreMerges: true), "abca"));
    }

    [Theory]
    [InlineData(new[] { "b", "ab" }, new[] { "a b" }, "'model.merges[0]'", "uses \"a\", which is not in the vocabulary")]
    [InlineData(new[] { "a", "ab" }, new[] { "a b" }, "'model.merges[0]'", "uses \"b\", which is not in the vocabulary")]
    [InlineData(new[] { "a", "b" }, new[] { "a b" }, "'model.merges[0]'", "makes \"ab\", which is not in the vocabulary")]
    [InlineData(new[] { "a", "b", "ab", "c" }, new[] { "a b", "ab c" }, "'model.merges[1]'", "makes \"abc\"")]
    public void BadMergesAreNamedByIndex(string[] tokens, string[] merges, string field, string detail)
    {
        var e = Assert.Throws<KeditException>(() => Model(tokens, merges));
        Assert.Contains(field, e.Message);
        Assert.Contains(detail, e.Message);
    }

    [Fact]
    public void UnknownTokenOutsideTheVocabularyIsNamed()
    {
        var e = Assert.Throws<KeditException>(() => Model(new[] { "a" }, Array.Empty<string>(), unk: "<unk>"));
        Assert.Equal("tokenizer.json: field 'model.unk_token' names \"<unk>\", which is not in the vocabulary", e.Message);
    }

    [Fact]
    public void SpaceMarkerSplitIsUsedExactlyWhenItCannotChangeTheIds()
    {
        string[] tokens = { "▁", "a", "b", "▁a", "▁▁", "ab", "b▁", "▁ab" };
        Assert.True(Model(tokens, new[] { "▁ a", "a b", "▁a b" }).SplitBeforeSpaceMarker);
        Assert.True(Model(tokens, new[] { "▁ ▁" }).SplitBeforeSpaceMarker);               // "▁▁" starts a run: no boundary inside
        Assert.False(Model(tokens, new[] { "b ▁" }).SplitBeforeSpaceMarker);              // "b▁" spans a boundary
        Assert.False(Model(tokens.Skip(1).ToArray(), new[] { "a b" }).SplitBeforeSpaceMarker); // no "▁" in the vocabulary
        Assert.False(Model(tokens, new[] { "a b" }, ignoreMerges: true).SplitBeforeSpaceMarker);
        Assert.False(Model(tokens.Append("##a").ToArray(), new[] { "a b" }, prefix: "##").SplitBeforeSpaceMarker);
        Assert.False(Model(tokens.Append("a</w>").ToArray(), new[] { "a b" }, suffix: "</w>").SplitBeforeSpaceMarker);

        // Split and unsplit give the same ids on words with marker runs anywhere.
        var m = Model(tokens, new[] { "▁ a", "a b", "▁a b", "▁ ▁" });
        foreach (var word in new[] { "▁ab▁ab", "ab▁▁ab", "▁▁▁ab", "ab▁", "▁", "a▁b▁▁a▁", string.Concat(Enumerable.Repeat("▁ab", 12)) })
        {
            m.SplitBeforeSpaceMarker = true;
            var split = Tokens(m, word);
            m.SplitBeforeSpaceMarker = false;
            Assert.Equal(Tokens(m, word), split);
        }
        m.SplitBeforeSpaceMarker = true;
        Assert.Equal(new[] { "ab", "▁ab", "▁▁", "▁ab" }, Tokens(m, "ab▁ab▁▁▁ab"));
    }

    [Fact]
    public void SpaceMarkerSplitPiecesAreMergedSeparately()
    {
        // With the split forced on over a merge that spans "b▁", the pieces can no longer merge across it:
        // this proves the split actually happens (the shortcut is only taken when no such merge exists).
        var m = Model(new[] { "▁", "a", "b", "b▁", "▁a" }, new[] { "b ▁", "▁ a" });
        Assert.False(m.SplitBeforeSpaceMarker);
        Assert.Equal(new[] { "a", "b▁", "a" }, Tokens(m, "ab▁a"));
        m.SplitBeforeSpaceMarker = true;
        Assert.Equal(new[] { "a", "b", "▁a" }, Tokens(m, "ab▁a"));
        Assert.Equal(new[] { "▁a", "b", "▁", "▁a" }, Tokens(m, "▁ab▁▁a"));
    }

    [Fact]
    public void CachedWordsGiveTheSameIdsAgainAndEmptyWordsNothing()
    {
        var m = Model(new[] { "a", "b", "ab" }, new[] { "a b" });
        var first = Tokens(m, "abab");
        Assert.Equal(first, Tokens(m, "abab"));
        Assert.Equal(new[] { "ab", "ab" }, first);
        string longWord = string.Concat(Enumerable.Repeat("ab", 200)); // past the cached word length
        Assert.Equal(200, Tokens(m, longWord).Length);
        Assert.Equal(Tokens(m, longWord), Tokens(m, longWord));
        Assert.Empty(Tokens(m, ""));
    }

    [Fact]
    public void AByteTokenWithIdZeroIsUsed()
    {
        var m = Model(new[] { "<0x61>", "<unk>", "b" }, Array.Empty<string>(), unk: "<unk>", byteFallback: true);
        Assert.Equal(new[] { "<0x61>", "b" }, Tokens(m, "ab"));
    }
}
