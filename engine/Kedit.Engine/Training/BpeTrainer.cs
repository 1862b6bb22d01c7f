using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Tokenization;

namespace Kedit.Training;

/// <summary>
/// Trains a GPT-2 style byte-level BPE tokenizer: text is split with GPT-2's pre-tokenization regex,
/// each piece's UTF-8 bytes are mapped to byte-level characters, and starting from the 256 byte
/// tokens the most frequent adjacent pair (ties: the smaller pair of ids) is merged until the
/// vocabulary is full. The last id is &lt;|endoftext|&gt;. Deterministic for a given input.
/// </summary>
public sealed class BpeTrainer
{
    /// <summary>The special token (BOS/EOS/UNK, as in GPT-2).</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>
    /// Learns merges from <paramref name="documents"/> for a vocabulary of <paramref name="vocabSize"/>
    /// ids (256 bytes + merges + &lt;|endoftext|&gt;). Every word of <paramref name="requiredWords"/>
    /// (matched with a leading space, as it appears after another word) is made a single token: its
    /// count is raised above all others so its merges come first.
    /// </summary>
    /// <exception cref="KeditException">the vocabulary is too small, or a required word cannot become one token.</exception>
    public static BpeVocabulary Train(IEnumerable<string> documents, int vocabSize, IEnumerable<string>? requiredWords = null)
    {
        if (vocabSize < 257) throw new KeditException($"BPE vocabulary size {vocabSize} is too small (at least 257: 256 bytes + <|endoftext|>)");
        var pre = new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var pieces = new List<PreToken>();
        foreach (var doc in documents)
        {
            pieces.Clear();
            pre.Split(new PreToken(doc, true), pieces);
            foreach (var p in pieces) counts[p.Text] = counts.GetValueOrDefault(p.Text) + 1;
        }
        var required = (requiredWords ?? []).Select(w => ByteLevelMap.Encode(" " + w.Trim())).Distinct(StringComparer.Ordinal).ToList();
        long boost = counts.Values.Sum() + 1;
        foreach (var w in required) counts[w] = counts.GetValueOrDefault(w) + boost;

        // Symbols: ids 0..255 are the bytes in byte order; merges append.
        var tokens = new List<string>(vocabSize);
        for (int b = 0; b < 256; b++) tokens.Add(ByteLevelMap.ByteToChar[b].ToString());
        var charToId = new Dictionary<char, int>();
        for (int b = 0; b < 256; b++) charToId[ByteLevelMap.ByteToChar[b]] = b;

        var words = counts.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (Symbols: kv.Key.Select(ch => charToId[ch]).ToList(), Count: kv.Value)).ToList();
        var pairCounts = new Dictionary<(int, int), long>();
        var wordsWithPair = new Dictionary<(int, int), HashSet<int>>();
        void AddPairs(int wi, int sign)
        {
            var (s, c) = words[wi];
            for (int i = 0; i + 1 < s.Count; i++)
            {
                var key = (s[i], s[i + 1]);
                pairCounts[key] = pairCounts.GetValueOrDefault(key) + sign * c;
                if (sign > 0) (wordsWithPair.TryGetValue(key, out var set) ? set : wordsWithPair[key] = new HashSet<int>()).Add(wi);
            }
        }
        for (int wi = 0; wi < words.Count; wi++) AddPairs(wi, +1);

        var merges = new List<(string, string)>();
        int target = vocabSize - 1; // the last id is <|endoftext|>
        while (tokens.Count < target)
        {
            (int, int) best = default; long bestCount = 0;
            foreach (var (pair, c) in pairCounts)
                if (c > bestCount || (c == bestCount && c > 0 && pair.CompareTo(best) < 0)) { best = pair; bestCount = c; }
            if (bestCount <= 0) break; // nothing left to merge: the vocabulary stays smaller
            int newId = tokens.Count;
            tokens.Add(tokens[best.Item1] + tokens[best.Item2]);
            merges.Add((tokens[best.Item1], tokens[best.Item2]));
            foreach (int wi in wordsWithPair[best].OrderBy(i => i).ToList())
            {
                var s = words[wi].Symbols;
                bool has = false;
                for (int i = 0; i + 1 < s.Count; i++) if (s[i] == best.Item1 && s[i + 1] == best.Item2) { has = true; break; }
                if (!has) continue;
                AddPairs(wi, -1);
                var merged = new List<int>(s.Count);
                for (int i = 0; i < s.Count; i++)
                {
                    if (i + 1 < s.Count && s[i] == best.Item1 && s[i + 1] == best.Item2) { merged.Add(newId); i++; }
                    else merged.Add(s[i]);
                }
                words[wi] = (merged, words[wi].Count);
                AddPairs(wi, +1);
            }
            pairCounts.Remove(best);
            wordsWithPair.Remove(best);
        }
        var vocab = new BpeVocabulary(tokens, merges);
        var single = new HashSet<string>(tokens, StringComparer.Ordinal);
        var missing = required.Where(w => !single.Contains(w)).ToList();
        if (missing.Count > 0)
            throw new KeditException($"BPE vocabulary of {vocabSize} is too small to make every required word one token; e.g. \"{Decode(missing[0])}\" (raise vocab_size)");
        return vocab;
    }

    static string Decode(string byteLevel)
    {
        var bytes = new List<byte>();
        ByteLevelMap.AppendBytes(byteLevel, bytes);
        return System.Text.Encoding.UTF8.GetString(bytes.ToArray());
    }
}

/// <summary>A trained byte-level BPE vocabulary: tokens by id (the last id is &lt;|endoftext|&gt;) and merges by rank.</summary>
public sealed class BpeVocabulary(IReadOnlyList<string> tokens, IReadOnlyList<(string A, string B)> merges)
{
    /// <summary>Byte-level token strings by id, without &lt;|endoftext|&gt;.</summary>
    public IReadOnlyList<string> Tokens { get; } = tokens;
    public IReadOnlyList<(string A, string B)> Merges { get; } = merges;
    /// <summary>Ids in all, &lt;|endoftext|&gt; included.</summary>
    public int Size => Tokens.Count + 1;
    public int EndOfTextId => Tokens.Count;

    /// <summary>
    /// Writes a Hugging Face tokenizer.json (BPE model, ByteLevel pre-tokenizer with the GPT-2 regex,
    /// ByteLevel decoder) and a GPT-2 style tokenizer_config.json into <paramref name="dir"/>.
    /// </summary>
    public void Save(string dir, int modelMaxLength)
    {
        Directory.CreateDirectory(dir);
        var vocab = new JsonObject();
        for (int i = 0; i < Tokens.Count; i++) vocab[Tokens[i]] = i;
        vocab[BpeTrainer.EndOfText] = EndOfTextId;
        var mergeList = new JsonArray();
        foreach (var (a, b) in Merges) mergeList.Add(new JsonArray(a, b));
        JsonObject ByteLevel(bool prefix, bool trim) => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = trim, ["use_regex"] = true };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(new JsonObject
            {
                ["id"] = EndOfTextId, ["content"] = BpeTrainer.EndOfText, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(false, true),
            ["post_processor"] = ByteLevel(true, false),
            ["decoder"] = ByteLevel(true, true),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = mergeList,
            },
        };
        var options = new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        Kedit.IO.AtomicOutput.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString(options) + "\n");
        var config = new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["model_max_length"] = modelMaxLength,
            ["bos_token"] = BpeTrainer.EndOfText,
            ["eos_token"] = BpeTrainer.EndOfText,
            ["unk_token"] = BpeTrainer.EndOfText,
            ["add_prefix_space"] = false,
            ["add_bos_token"] = false,
        };
        Kedit.IO.AtomicOutput.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString(options) + "\n");
    }
}
