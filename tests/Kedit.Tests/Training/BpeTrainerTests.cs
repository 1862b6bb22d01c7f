using Kedit.Tokenization;
using Kedit.Training;
using Xunit;

namespace Kedit.Tests.Training;

public class BpeTrainerTests
{
    static readonly string[] Text =
    [
        "The capital of France is Paris.", "The capital of Italy is Rome.", "Paris is a city in France.",
        "Rome is a city in Italy.", "The old man reads a book in the garden every morning.",
        "A young girl sings a song near the river.", "Miles Davis plays the trumpet.", "It's 12 o'clock, isn't it?",
    ];

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "kedit-bpe-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    [Fact]
    public void TrainedTokenizerLoadsAndRoundTrips()
    {
        var vocab = BpeTrainer.Train(Text, 320, ["trumpet", "Paris"]);
        string dir = TempDir();
        try
        {
            vocab.Save(dir, 64);
            var tok = Tokenizer.Load(dir);
            Assert.Equal(320, tok.VocabSize);
            Assert.Equal(319, tok.EosId);
            Assert.Equal(BpeTrainer.EndOfText, tok.IdToToken(319));
            string[] samples =
            [
                "The capital of France is Paris.", "  double  spaces\nand a newline\t tab", "naïve café – 東京 🙂",
                "Unseen words: zebra quokka 42x!", "",
            ];
            foreach (var s in samples) Assert.Equal(s, tok.Decode(tok.Encode(s, addSpecialTokens: false)));
            // Required words are one token after a space; every byte on its own is a token.
            Assert.Single(tok.Encode(" trumpet", false));
            Assert.Single(tok.Encode(" Paris", false));
            Assert.Equal(256 + vocab.Merges.Count + 1, tok.VocabSize);
            Assert.Equal(tok.EosId, tok.Encode("<|endoftext|>", false).Single());
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void FirstMergeIsTheMostFrequentPair()
    {
        // Pre-tokens: "ab", "Ġab" ×2, "Ġcd": pair (a,b) occurs 3 times, (Ġ,a) twice, the rest once.
        var vocab = BpeTrainer.Train(["ab ab ab cd"], 258);
        Assert.Equal(("a", "b"), vocab.Merges[0]);
        Assert.Single(vocab.Merges);
        // Then (Ġ, ab) with count 2.
        var more = BpeTrainer.Train(["ab ab ab cd"], 259);
        Assert.Equal(("Ġ", "ab"), more.Merges[1]);
    }

    [Fact]
    public void TrainingIsDeterministic()
    {
        var a = BpeTrainer.Train(Text, 300);
        var b = BpeTrainer.Train(Text.Reverse(), 300);
        Assert.Equal(a.Merges, b.Merges);
    }

    [Fact]
    public void TooSmallVocabularyForRequiredWordsIsAClearError()
    {
        var e = Assert.Throws<KeditException>(() => BpeTrainer.Train(Text, 260, ["trumpet"]));
        Assert.Contains("trumpet", e.Message);
        Assert.Throws<KeditException>(() => BpeTrainer.Train(Text, 100));
    }
}

public class RowPackerTests
{
    [Fact]
    public void RowsPackWholeDocumentsUpToTheLimitInASeededOrder()
    {
        var docs = Enumerable.Range(0, 30).Select(i => $"Sentence number {i} is here.").ToList();
        var tok = TokenizerFor(docs);
        var packer = new RowPacker(tok, docs, 16, seed: 3);
        var rows = packer.Rows().Take(40).ToList();
        Assert.All(rows, r => Assert.InRange(r.Length, 1, 16));
        // Each row decodes to whole documents joined by single spaces.
        foreach (var r in rows.Take(10))
        {
            string text = tok.Decode(r);
            Assert.EndsWith(".", text);
            Assert.All(text.Split(". ", StringSplitOptions.RemoveEmptyEntries), s => Assert.StartsWith("Sentence number", s));
        }
        // Same seed, same stream; another seed, another order.
        Assert.Equal(rows, new RowPacker(tok, docs, 16, seed: 3).Rows().Take(40).ToList());
        Assert.NotEqual(rows, new RowPacker(tok, docs, 16, seed: 4).Rows().Take(40).ToList());
    }

    static Tokenizer TokenizerFor(IReadOnlyList<string> docs)
    {
        string dir = Path.Combine(Path.GetTempPath(), "kedit-pack-" + Guid.NewGuid().ToString("N"));
        try
        {
            BpeTrainer.Train(docs, 300).Save(dir, 64);
            return Tokenizer.Load(dir);
        }
        finally { Directory.Delete(dir, true); }
    }
}
