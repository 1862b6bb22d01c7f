using System.Collections.Concurrent;
using System.Text;

namespace Kedit.Tokenization;

/// <summary>
/// Byte-pair encoding as HF tokenizers' BPE model does it: a word starts as one symbol per character
/// (unknown characters become byte-fallback &lt;0xNN&gt; tokens or the unknown token), then the adjacent pair
/// with the lowest merge rank is merged, leftmost first, until no pair has a merge.
/// The merge loop uses a linked list of symbols and a priority queue of candidate pairs keyed by
/// (rank, position), so a word of n characters costs O(n log n), not O(n²); results are cached per word.
/// Thread-safe after construction.
/// </summary>
internal sealed class BpeModel
{
    const int CacheCapacity = 200_000;
    const int MaxCachedWordLength = 256;

    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<long, (int Rank, int NewId)> _merges;
    readonly Dictionary<int, int> _codePointIds = new();
    readonly int[] _byteIds = new int[256];
    readonly int? _unkId;
    readonly bool _fuseUnk, _byteFallback, _ignoreMerges;
    readonly string _prefix, _suffix;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    int _cacheCount;

    /// <summary>Sentencepiece's word-boundary marker.</summary>
    const char SpaceMarker = '\u2581';

    /// <summary>
    /// Sentencepiece-style files have no pre-tokenizer, so a whole text is one BPE "word". When no merge
    /// makes a token holding another character followed by "▁", no symbol can ever span such a boundary,
    /// and BPE on the pieces split before each "▁" run gives exactly the same ids, with per-piece caching.
    /// </summary>
    internal bool SplitBeforeSpaceMarker { get; set; } // settable so tests can compare with the unsplit path

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>The model's unknown token (model.unk_token), if any.</summary>
    public string? UnkToken { get; }

    /// <param name="vocab">token → id.</param>
    /// <param name="merges">merge pairs in rank order.</param>
    /// <param name="error">builds the exception for a bad field (e.g. "model.merges[3]") with a problem text.</param>
    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges, string? unkToken,
        bool fuseUnk, bool byteFallback, bool ignoreMerges, string? continuingSubwordPrefix, string? endOfWordSuffix,
        string mergesField, string unkField, Func<string, string, KeditException> error)
    {
        _vocab = vocab;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = continuingSubwordPrefix ?? "";
        _suffix = endOfWordSuffix ?? "";
        UnkToken = unkToken;
        if (unkToken != null)
            _unkId = vocab.TryGetValue(unkToken, out int u) ? u : throw error(unkField, $"names \"{unkToken}\", which is not in the vocabulary");

        _merges = new Dictionary<long, (int, int)>(merges.Count, PairKeyComparer.Instance);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            string field = $"{mergesField}[{rank}]";
            if (!vocab.TryGetValue(a, out int idA)) throw error(field, $"uses \"{a}\", which is not in the vocabulary");
            if (!vocab.TryGetValue(b, out int idB)) throw error(field, $"uses \"{b}\", which is not in the vocabulary");
            string merged = a + (_prefix.Length > 0 && b.StartsWith(_prefix, StringComparison.Ordinal) ? b[_prefix.Length..] : b);
            if (!vocab.TryGetValue(merged, out int newId)) throw error(field, $"makes \"{merged}\", which is not in the vocabulary");
            _merges[PairKey(idA, idB)] = (rank, newId); // a repeated pair takes its last rank, as in HF
        }
        SplitBeforeSpaceMarker = !ignoreMerges && _prefix.Length == 0 && _suffix.Length == 0 && vocab.ContainsKey(SpaceMarker.ToString())
            && !merges.Any(m => SpansSpaceMarkerBoundary(m.A + m.B));

        foreach (var (token, id) in vocab)
            if (token.Length == 1 || (token.Length == 2 && char.IsSurrogatePair(token[0], token[1])))
                _codePointIds[char.ConvertToUtf32(token, 0)] = id;
        for (int b = 0; b < 256; b++)
            _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
    }

    static long PairKey(int a, int b) => ((long)a << 32) | (uint)b;

    static bool SpansSpaceMarkerBoundary(string token)
    {
        for (int i = 1; i < token.Length; i++)
            if (token[i] == SpaceMarker && token[i - 1] != SpaceMarker) return true;
        return false;
    }

    /// <summary>Appends the ids of one pre-token.</summary>
    public void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (SplitBeforeSpaceMarker && word.Length > 1 && word.IndexOf(SpaceMarker, 1) > 0)
        {
            int start = 0;
            for (int i = 1; i < word.Length; i++)
            {
                if (word[i] != SpaceMarker || word[i - 1] == SpaceMarker) continue;
                TokenizeWord(word[start..i], output);
                start = i;
            }
            TokenizeWord(start == 0 ? word : word[start..], output);
            return;
        }
        TokenizeWord(word, output);
    }

    void TokenizeWord(string word, List<int> output)
    {
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole)) { output.Add(whole); return; }
        if (_cache.TryGetValue(word, out var cached)) { output.AddRange(cached); return; }
        int[] ids = Merge(word);
        if (word.Length <= MaxCachedWordLength)
        {
            // A bounded cache: start over rather than grow without limit on endless distinct words.
            // (An own counter: ConcurrentDictionary.Count takes every lock and would dominate the cost of a miss.)
            if (Volatile.Read(ref _cacheCount) >= CacheCapacity)
            {
                _cache.Clear();
                Volatile.Write(ref _cacheCount, 0);
            }
            if (_cache.TryAdd(word, ids)) Interlocked.Increment(ref _cacheCount);
        }
        output.AddRange(ids);
    }

    [ThreadStatic] static List<int>? t_symbols;
    [ThreadStatic] static PriorityQueue<int, long>? t_queue;
    [ThreadStatic] static List<(int, long)>? t_initial;

    /// <summary>
    /// Queue entries taken by this thread's long-word merges so far: the merge loop's unit of work, which
    /// the tests count instead of timing it (each merge queues at most two pairs, so a word of n symbols
    /// takes at most 3n; a loop that rescanned the word would take O(n²)).
    /// </summary>
    [ThreadStatic] internal static long t_queueEntries;

    int[] Merge(string word)
    {
        var symbols = t_symbols ??= new List<int>();
        symbols.Clear();
        InitialSymbols(word, symbols);
        int n = symbols.Count;
        if (n <= 1) return symbols.ToArray();

        if (n <= ShortWordLength) return MergeShort(symbols);

        int[] ids = symbols.ToArray();
        int[] next = new int[n], prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }

        var queue = t_queue ??= new PriorityQueue<int, long>();
        queue.Clear();
        // Filling an empty queue in one call heapifies in O(n).
        var initial = t_initial ??= new List<(int, long)>();
        initial.Clear();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(PairKey(ids[i], ids[i + 1]), out var m)) initial.Add((i, ((long)m.Rank << 32) | (uint)i));
        queue.EnqueueRange(initial);

        const int Removed = -1;
        long taken = 0;
        while (queue.TryDequeue(out int pos, out long priority))
        {
            taken++;
            int rank = (int)(priority >> 32);
            if (ids[pos] == Removed) continue;
            int right = next[pos];
            if (right < 0) continue;
            // Stale entry: the pair at pos changed since it was queued. (Its own statement: a condition that could
            // skip TryGetValue leaves `merge` unassigned under Stryker's mutants, which then drops the whole method.)
            if (!_merges.TryGetValue(PairKey(ids[pos], ids[right]), out var merge) || merge.Rank != rank) continue;

            ids[pos] = merge.NewId;
            ids[right] = Removed;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) prev[after] = pos;
            if (prev[pos] >= 0) Enqueue(queue, ids, prev[pos], pos);
            if (after >= 0) Enqueue(queue, ids, pos, after);
        }
        t_queueEntries += taken;

        var result = new List<int>(n);
        for (int i = 0; i >= 0; i = next[i]) result.Add(ids[i]);
        return result.ToArray();
    }

    /// <summary>Words at most this long are merged by rescanning, cheaper than a queue for typical words.</summary>
    const int ShortWordLength = 24;

    /// <summary>
    /// The same rule as the queue (lowest rank, then leftmost) by scanning all adjacent pairs each round:
    /// O(n²) but allocation-free and fast for the short words that make up almost all text.
    /// </summary>
    int[] MergeShort(List<int> symbols)
    {
        // ranks[i]: merge of pair (i, i + 1); only the two pairs beside a merge are looked up again.
        Span<int> ids = stackalloc int[ShortWordLength];
        Span<int> ranks = stackalloc int[ShortWordLength];
        Span<int> newIds = stackalloc int[ShortWordLength];
        int n = symbols.Count;
        for (int i = 0; i < n; i++) ids[i] = symbols[i];
        for (int i = 0; i + 1 < n; i++) LookUpPair(ids, i, ranks, newIds);
        while (n > 1)
        {
            int bestPos = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++)
                if (ranks[i] < bestRank) (bestRank, bestPos) = (ranks[i], i);
            if (bestPos < 0) break;
            ids[bestPos] = newIds[bestPos];
            // Drop the right half of the merged pair and its pair entry.
            ids[(bestPos + 2)..n].CopyTo(ids[(bestPos + 1)..]);
            ranks[(bestPos + 2)..n].CopyTo(ranks[(bestPos + 1)..]);
            newIds[(bestPos + 2)..n].CopyTo(newIds[(bestPos + 1)..]);
            n--;
            if (bestPos > 0) LookUpPair(ids, bestPos - 1, ranks, newIds);
            if (bestPos + 1 < n) LookUpPair(ids, bestPos, ranks, newIds);
        }
        return ids[..n].ToArray();
    }

    void LookUpPair(Span<int> ids, int i, Span<int> ranks, Span<int> newIds)
    {
        if (_merges.TryGetValue(PairKey(ids[i], ids[i + 1]), out var m)) (ranks[i], newIds[i]) = (m.Rank, m.NewId);
        else ranks[i] = int.MaxValue;
    }

    void Enqueue(PriorityQueue<int, long> queue, int[] ids, int left, int right)
    {
        if (_merges.TryGetValue(PairKey(ids[left], ids[right]), out var merge))
            queue.Enqueue(left, ((long)merge.Rank << 32) | (uint)left);
    }

    /// <summary>One symbol per character, as HF's BPE merge_word: byte fallback, then (fused) unknown token, else dropped.</summary>
    void InitialSymbols(string word, List<int> symbols)
    {
        bool affixes = _prefix.Length > 0 || _suffix.Length > 0;
        bool pendingUnk = false;
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsSurrogatePair(word, i) ? 2 : 1;
            bool isFirst = i == 0, isLast = i + width == word.Length;
            int id;
            bool found;
            string? symbolText = null;
            if (!affixes)
                found = _codePointIds.TryGetValue(width == 2 ? char.ConvertToUtf32(word[i], word[i + 1]) : word[i], out id);
            else
            {
                symbolText = (isFirst ? "" : _prefix) + word.Substring(i, width) + (isLast ? _suffix : "");
                found = _vocab.TryGetValue(symbolText, out id);
            }
            if (found)
            {
                if (pendingUnk) { symbols.Add(_unkId!.Value); pendingUnk = false; }
                symbols.Add(id);
            }
            else if (!(_byteFallback && TryAddBytes(symbolText ?? word.Substring(i, width), symbols)) && _unkId != null)
            {
                // Consecutive unknowns fuse into one when fuse_unk; otherwise each is its own unknown token.
                if (pendingUnk && !_fuseUnk) symbols.Add(_unkId.Value);
                pendingUnk = true;
            }
            i += width;
        }
        if (pendingUnk) symbols.Add(_unkId!.Value);
    }

    bool TryAddBytes(string text, List<int> symbols)
    {
        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(text.Length)];
        int count = Encoding.UTF8.GetBytes(text, bytes);
        for (int k = 0; k < count; k++) if (_byteIds[bytes[k]] < 0) return false;
        for (int k = 0; k < count; k++) symbols.Add(_byteIds[bytes[k]]);
        return true;
    }

    /// <summary>
    /// long's own hash is (low ^ high), which for pairs of small ids collides massively (every pair with
    /// the same a ^ b) and made merge lookups walk long chains; mix the bits instead.
    /// </summary>
    sealed class PairKeyComparer : IEqualityComparer<long>
    {
        public static readonly PairKeyComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
    }
}
