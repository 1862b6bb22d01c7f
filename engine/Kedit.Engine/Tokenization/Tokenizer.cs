using System.Text.Json;

namespace Kedit.Tokenization;

/// <summary>
/// A Hugging Face tokenizer implemented from its files: BPE models (GPT-2/GPT-J byte-level, Llama-3
/// style regex split + byte-level, sentencepiece-style Llama-2 with byte fallback), added tokens,
/// normalizers, pre-tokenizers, post-processor and decoder as tokenizer.json describes them.
/// Immutable and thread-safe once loaded; BPE results are cached per pre-token.
/// </summary>
public sealed class Tokenizer
{
    readonly BpeModel _model;

    internal BpeModel Model => _model;
    readonly INormalizer? _normalizer;
    readonly IPreTokenizer? _preTokenizer;
    readonly IDecoder? _decoder;
    readonly AddedTokenMatcher _rawMatcher;        // added tokens matched on the raw text
    readonly AddedTokenMatcher _normalizedMatcher; // added tokens matched after normalization
    readonly string?[] _idToToken;
    readonly Dictionary<string, int> _addedTokenIds;
    readonly bool[] _special;
    readonly int[] _prefixIds, _suffixIds;

    /// <summary>Number of ids: one more than the largest id of the vocabulary and the added tokens.</summary>
    public int VocabSize => _idToToken.Length;

    /// <summary>Beginning-of-sequence token id, when the files name one.</summary>
    public int? BosId { get; }
    /// <summary>End-of-sequence token id, when the files name one.</summary>
    public int? EosId { get; }
    /// <summary>Unknown-token id, when the files name one.</summary>
    public int? UnkId { get; }
    /// <summary>Padding token id, when tokenizer_config.json names one.</summary>
    public int? PadId { get; }

    /// <summary>Whether <see cref="Encode"/> with addSpecialTokens prepends <see cref="BosId"/>.</summary>
    public bool AddsBos => BosId.HasValue && _prefixIds.Length > 0 && _prefixIds[0] == BosId.Value;

    /// <summary>Ids <see cref="Encode"/> puts before the text when addSpecialTokens is true.</summary>
    public IReadOnlyList<int> PrefixIds => _prefixIds;
    /// <summary>Ids <see cref="Encode"/> puts after the text when addSpecialTokens is true.</summary>
    public IReadOnlyList<int> SuffixIds => _suffixIds;

    Tokenizer(BpeModel model, INormalizer? normalizer, IPreTokenizer? preTokenizer, IDecoder? decoder,
        List<AddedToken> addedTokens, int[] prefixIds, int[] suffixIds, IEnumerable<int> extraSpecialIds,
        int? bos, int? eos, int? unk, int? pad)
    {
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _decoder = decoder;
        _prefixIds = prefixIds;
        _suffixIds = suffixIds;
        (BosId, EosId, UnkId, PadId) = (bos, eos, unk, pad);

        int size = 0;
        foreach (var id in model.Vocab.Values) size = Math.Max(size, id + 1);
        foreach (var t in addedTokens) size = Math.Max(size, t.Id + 1);
        _idToToken = new string?[size];
        foreach (var (token, id) in model.Vocab) _idToToken[id] = token;
        _addedTokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        _special = new bool[size];
        foreach (var t in addedTokens)
        {
            _idToToken[t.Id] = t.Content;
            _addedTokenIds[t.Content] = t.Id;
            if (t.Special) _special[t.Id] = true;
        }
        foreach (int id in extraSpecialIds) if (id >= 0 && id < size) _special[id] = true;

        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized || normalizer == null).Select(t => (t.Content, t)));
        // HF matches "normalized" added tokens against normalized text, using the normalized token text.
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized && normalizer != null).Select(t => (normalizer!.Normalize(t.Content), t)));
    }

    // ---------------------------------------------------------------- loading

    /// <summary>
    /// Loads DIR/tokenizer.json (plus DIR/tokenizer_config.json when present); without tokenizer.json,
    /// GPT-2 style DIR/vocab.json + DIR/merges.txt.
    /// </summary>
    /// <exception cref="KeditException">the folder or files are missing or malformed, or describe something unsupported.</exception>
    public static Tokenizer Load(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir)) throw new KeditException($"{dir}: tokenizer folder not found");
        Kedit.IO.AtomicOutput.Recover(dir);
        string json = Path.Combine(dir, "tokenizer.json");
        string config = Path.Combine(dir, "tokenizer_config.json");
        string? configOrNull = File.Exists(config) ? config : null;
        if (File.Exists(json)) return FromTokenizerJson(json, configOrNull);
        string vocab = Path.Combine(dir, "vocab.json"), merges = Path.Combine(dir, "merges.txt");
        if (File.Exists(vocab) && File.Exists(merges)) return FromVocabAndMerges(vocab, merges, configOrNull);
        throw new KeditException($"{dir}: no tokenizer found (expected tokenizer.json, or vocab.json + merges.txt)");
    }

    /// <summary>Loads a tokenizer.json file, with an optional tokenizer_config.json for BOS/EOS settings and special tokens.</summary>
    /// <exception cref="KeditException">a file is missing or malformed, or describes something unsupported.</exception>
    public static Tokenizer FromTokenizerJson(string path, string? tokenizerConfigPath = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var config = tokenizerConfigPath != null ? TokenizerConfig.Read(tokenizerConfigPath) : TokenizerConfig.Empty;
        using var doc = JsonFields.ParseFile(path);
        var f = new JsonFields(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new KeditException($"{path}: must hold a JSON object");

        var added = ReadAddedTokens(f, root);
        var modelSpec = f.RequireObject(root, "model", "");
        var model = ReadBpeModel(f, modelSpec);
        var normalizer = JsonFields.Optional(root, "normalizer") is { } n ? NormalizerFactory.Create(f, n, "normalizer") : null;
        var preTokenizer = JsonFields.Optional(root, "pre_tokenizer") is { } p ? PreTokenizerFactory.Create(f, p, "pre_tokenizer") : null;
        var decoder = JsonFields.Optional(root, "decoder") is { } d ? DecoderFactory.Create(f, d, "decoder") : null;
        var (prefix, suffix) = JsonFields.Optional(root, "post_processor") is { } pp ? ReadPostProcessor(f, pp, "post_processor", model, added) : ([], []);
        return Build(model, normalizer, preTokenizer, decoder, added, prefix, suffix, config);
    }

    /// <summary>GPT-2 style files: vocab.json (token → id) and merges.txt ("a b" per line, optional "#version" header); byte-level BPE.</summary>
    /// <exception cref="KeditException">a file is missing or malformed.</exception>
    public static Tokenizer FromVocabAndMerges(string vocabPath, string mergesPath, string? tokenizerConfigPath = null)
    {
        var config = tokenizerConfigPath != null ? TokenizerConfig.Read(tokenizerConfigPath) : TokenizerConfig.Empty;
        Dictionary<string, int> vocab;
        using (var doc = JsonFields.ParseFile(vocabPath))
            vocab = ReadVocab(new JsonFields(vocabPath), doc.RootElement, "(top level)");
        var (merges, lineNumbers) = ReadMergesTxt(mergesPath);
        var model = new BpeModel(vocab, merges, null, false, false, false, null, null, "merges", "unk_token",
            (field, problem) => new KeditException($"{mergesPath}: {MergeLine(field, lineNumbers)} {problem}"));

        // GPT2Tokenizer's defaults: <|endoftext|> is BOS, EOS and UNK unless tokenizer_config.json says otherwise.
        const string gpt2Special = "<|endoftext|>";
        if (vocab.ContainsKey(gpt2Special))
            config = config with { BosToken = config.BosToken ?? gpt2Special, EosToken = config.EosToken ?? gpt2Special, UnkToken = config.UnkToken ?? gpt2Special };
        var added = new List<AddedToken>();
        foreach (string token in config.NamedSpecialTokens)
            if (vocab.TryGetValue(token, out int id) && !added.Any(a => a.Id == id))
                added.Add(new AddedToken(id, token, Special: true, LStrip: false, RStrip: false, Normalized: false, SingleWord: false));
        var pre = new ByteLevelPreTokenizer(config.AddPrefixSpace ?? false, useRegex: true);
        // GPT2Tokenizer adds no BOS/EOS unless add_bos_token / add_eos_token ask for them (applied in Build).
        return Build(model, null, pre, new ByteLevelDecoder(), added, [], [], config);
    }

    /// <summary>"merges[k]" (the k-th merge) as "line N" of merges.txt.</summary>
    static string MergeLine(string field, List<int> lineNumbers) =>
        field.StartsWith("merges[", StringComparison.Ordinal) && int.TryParse(field.AsSpan(7, field.Length - 8), out int k) && k < lineNumbers.Count
            ? $"line {lineNumbers[k]}" : field;

    static Tokenizer Build(BpeModel model, INormalizer? normalizer, IPreTokenizer? preTokenizer, IDecoder? decoder,
        List<AddedToken> added, int[] prefix, int[] suffix, TokenizerConfig config)
    {
        // Tokens named by tokenizer_config.json's added_tokens_decoder that tokenizer.json lacks.
        foreach (var t in config.AddedTokensDecoder)
            if (!added.Any(a => a.Id == t.Id)) added.Add(t);

        int? Lookup(string? token) => token == null ? null
            : added.FirstOrDefault(a => a.Content == token)?.Id ?? (model.Vocab.TryGetValue(token, out int id) ? id : null);
        int? FirstAdded(params string[] names) => names.Select(nm => added.FirstOrDefault(a => a.Special && a.Content == nm)?.Id).FirstOrDefault(id => id != null);

        // IDs: tokenizer_config.json first; else what the post-processor adds; else conventional names of added special tokens.
        int? bos = Lookup(config.BosToken) ?? (prefix.Length > 0 ? prefix[0] : (int?)null) ?? FirstAdded("<s>", "<|begin_of_text|>", "<|endoftext|>");
        int? eos = Lookup(config.EosToken) ?? (suffix.Length > 0 ? suffix[^1] : (int?)null) ?? FirstAdded("</s>", "<|end_of_text|>", "<|endoftext|>");
        int? unk = Lookup(config.UnkToken) ?? Lookup(model.UnkToken);
        int? pad = Lookup(config.PadToken);

        // add_bos_token / add_eos_token override the post-processor, as transformers' Llama/GPT-2 tokenizers do.
        if (config.AddBosToken is bool addBos)
            prefix = addBos ? [bos ?? throw new KeditException($"{config.Path}: field 'add_bos_token' is true but no BOS token is defined (bos_token)")] : [];
        if (config.AddEosToken is bool addEos)
            suffix = addEos ? [eos ?? throw new KeditException($"{config.Path}: field 'add_eos_token' is true but no EOS token is defined (eos_token)")] : [];

        var extraSpecial = config.NamedSpecialTokens.Select(Lookup).Where(id => id != null).Select(id => id!.Value).ToList();
        extraSpecial.AddRange(prefix);
        extraSpecial.AddRange(suffix);
        return new Tokenizer(model, normalizer, preTokenizer, decoder, added, prefix, suffix, extraSpecial, bos, eos, unk, pad);
    }

    static List<AddedToken> ReadAddedTokens(JsonFields f, JsonElement root)
    {
        var result = new List<AddedToken>();
        if (JsonFields.Optional(root, "added_tokens") is not { } list) return result;
        if (list.ValueKind != JsonValueKind.Array) throw f.Error("added_tokens", "must be an array");
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            string path = $"added_tokens[{i++}]";
            if (item.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object");
            int id = f.AsTokenId(f.Require(item, "id", path), path + ".id");
            string content = f.RequireString(item, "content", path);
            if (content.Length == 0) throw f.Error(path + ".content", "must not be empty");
            bool special = f.OptionalBool(item, "special", path) ?? false;
            result.Add(new AddedToken(id, content, special,
                f.OptionalBool(item, "lstrip", path) ?? false, f.OptionalBool(item, "rstrip", path) ?? false,
                f.OptionalBool(item, "normalized", path) ?? !special, f.OptionalBool(item, "single_word", path) ?? false));
        }
        return result;
    }

    static BpeModel ReadBpeModel(JsonFields f, JsonElement spec)
    {
        const string path = "model";
        string? type = f.OptionalString(spec, "type", path);
        if (type == null && JsonFields.Optional(spec, "merges") == null)
            throw f.Error("model.type", "is missing (and there is no model.merges, so this is not a BPE model)");
        if (type != null && type != "BPE")
            throw f.Error("model.type", $"has unsupported model type \"{type}\" (supported: BPE)");

        var vocab = ReadVocab(f, f.RequireObject(spec, "vocab", path), "model.vocab");
        var merges = new List<(string, string)>();
        if (JsonFields.Optional(spec, "merges") is { } mergeList)
        {
            if (mergeList.ValueKind != JsonValueKind.Array) throw f.Error("model.merges", "must be an array");
            int i = 0;
            foreach (var m in mergeList.EnumerateArray())
            {
                string mp = $"model.merges[{i++}]";
                if (m.ValueKind == JsonValueKind.String)
                {
                    // Older files: "a b"; neither side may hold a space, which is why newer files use pairs.
                    string s = m.GetString()!;
                    int space = s.IndexOf(' ');
                    if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0) throw f.Error(mp, $"must be two tokens separated by one space, found \"{s}\"");
                    merges.Add((s[..space], s[(space + 1)..]));
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                    merges.Add((f.AsString(m[0], mp + "[0]"), f.AsString(m[1], mp + "[1]")));
                else throw f.Error(mp, "must be a string \"a b\" or a pair [\"a\", \"b\"]");
            }
        }
        return new BpeModel(vocab, merges,
            f.OptionalString(spec, "unk_token", path),
            f.OptionalBool(spec, "fuse_unk", path) ?? false,
            f.OptionalBool(spec, "byte_fallback", path) ?? false,
            f.OptionalBool(spec, "ignore_merges", path) ?? false,
            f.OptionalString(spec, "continuing_subword_prefix", path),
            f.OptionalString(spec, "end_of_word_suffix", path),
            "model.merges", "model.unk_token", f.Error);
    }

    static Dictionary<string, int> ReadVocab(JsonFields f, JsonElement obj, string path)
    {
        if (obj.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object mapping tokens to ids");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var prop in obj.EnumerateObject())
        {
            int id = f.AsTokenId(prop.Value, $"{path}[\"{prop.Name}\"]");
            vocab[prop.Name] = id;
        }
        return vocab;
    }

    /// <summary>The merges in rank order, and the 1-based line each came from.</summary>
    static (List<(string, string)> Merges, List<int> Lines) ReadMergesTxt(string path)
    {
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (FileNotFoundException) { throw new KeditException($"{path}: file not found"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new KeditException($"{path}: cannot read the file ({e.Message})", e); }
        var merges = new List<(string, string)>(lines.Length);
        var lineNumbers = new List<int>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            int space = line.IndexOf(' ');
            if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0)
                throw new KeditException($"{path}: line {i + 1} must be two tokens separated by one space, found \"{line}\"");
            merges.Add((line[..space], line[(space + 1)..]));
            lineNumbers.Add(i + 1);
        }
        return (merges, lineNumbers);
    }

    /// <summary>The ids the post-processor puts before and after a single sequence.</summary>
    static (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonFields f, JsonElement spec, string path, BpeModel model, List<AddedToken> added)
    {
        if (spec.ValueKind != JsonValueKind.Object) throw f.Error(path, "must be an object");
        string type = f.RequireString(spec, "type", path);
        switch (type)
        {
            case "ByteLevel":
                return ([], []);
            case "TemplateProcessing":
            {
                var single = f.RequireArray(spec, "single", path);
                var specialTokens = f.RequireObject(spec, "special_tokens", path);
                List<int> prefix = new(), suffix = new();
                bool seenA = false;
                int i = 0;
                foreach (var item in single.EnumerateArray())
                {
                    string ip = $"{path}.single[{i++}]";
                    if (JsonFields.Optional(item, "Sequence") is { } seq)
                    {
                        string which = f.RequireString(seq, "id", ip + ".Sequence");
                        if (which != "A" || seenA) throw f.Error(ip + ".Sequence.id", $"must be \"A\" once in a single-sequence template, found \"{which}\"");
                        seenA = true;
                    }
                    else if (JsonFields.Optional(item, "SpecialToken") is { } st)
                    {
                        string name = f.RequireString(st, "id", ip + ".SpecialToken");
                        var entry = JsonFields.Optional(specialTokens, name) ?? throw f.Error($"{path}.special_tokens", $"has no entry \"{name}\" used by {ip}");
                        string ep = $"{path}.special_tokens[\"{name}\"]";
                        var ids = f.RequireArray(entry, "ids", ep);
                        int k = 0;
                        foreach (var idElement in ids.EnumerateArray())
                            (seenA ? suffix : prefix).Add(f.AsTokenId(idElement, $"{ep}.ids[{k++}]"));
                    }
                    else throw f.Error(ip, "must hold \"Sequence\" or \"SpecialToken\"");
                }
                if (!seenA) throw f.Error($"{path}.single", "has no {\"Sequence\": {\"id\": \"A\"}} item");
                return (prefix.ToArray(), suffix.ToArray());
            }
            case "RobertaProcessing":
            case "BertProcessing":
            {
                int ReadPair(string name)
                {
                    var pair = f.RequireArray(spec, name, path);
                    string pp = $"{path}.{name}";
                    if (pair.GetArrayLength() != 2) throw f.Error(pp, "must be [token, id]");
                    return f.AsTokenId(pair[1], pp + "[1]");
                }
                return ([ReadPair("cls")], [ReadPair("sep")]);
            }
            case "Sequence":
            {
                var list = f.RequireArray(spec, "processors", path);
                // Each processor wraps the output of the ones before it.
                var prefix = new List<int>();
                var suffix = new List<int>();
                int i = 0;
                foreach (var item in list.EnumerateArray())
                {
                    var (p, s) = ReadPostProcessor(f, item, $"{path}.processors[{i++}]", model, added);
                    prefix.InsertRange(0, p);
                    suffix.AddRange(s);
                }
                return (prefix.ToArray(), suffix.ToArray());
            }
            default:
                throw f.Error(JsonFields.Join(path, "type"), $"has unsupported post-processor type \"{type}\" (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
        }
    }

    // ---------------------------------------------------------------- encoding and decoding

    /// <summary>
    /// Token ids of <paramref name="text"/>. With <paramref name="addSpecialTokens"/>, the post-processor's
    /// tokens (e.g. BOS for Llama) are added around them.
    /// </summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens) ids.AddRange(_prefixIds);
        var rawSegments = new List<TextSegment>();
        var normalizedSegments = new List<TextSegment>();
        var words = new List<PreToken>();
        _rawMatcher.Split(text, atStart: true, rawSegments);
        foreach (var raw in rawSegments)
        {
            if (raw.TokenId is int rawId) { ids.Add(rawId); continue; }
            string normalized = _normalizer?.Normalize(raw.Text) ?? raw.Text;
            normalizedSegments.Clear();
            _normalizedMatcher.Split(normalized, raw.AtStart, normalizedSegments);
            foreach (var segment in normalizedSegments)
            {
                if (segment.TokenId is int id) { ids.Add(id); continue; }
                words.Clear();
                var piece = new PreToken(segment.Text, segment.AtStart);
                if (_preTokenizer == null) words.Add(piece);
                else _preTokenizer.Split(piece, words);
                foreach (var word in words) _model.Tokenize(word.Text, ids);
            }
        }
        if (addSpecialTokens) ids.AddRange(_suffixIds);
        return ids.ToArray();
    }

    /// <summary>
    /// Text of <paramref name="ids"/> through the tokenizer's decoder. Ids with no token are skipped (as HF does);
    /// with <paramref name="skipSpecialTokens"/>, special tokens (BOS, EOS, ...) are left out.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token) continue;
            if (skipSpecialTokens && _special[id]) continue;
            tokens.Add(token);
        }
        if (_decoder == null) return string.Join(" ", tokens);
        return string.Concat(_decoder.Decode(tokens));
    }

    /// <summary>Whether <paramref name="id"/> names a token (the id table can have gaps).</summary>
    public bool HasToken(int id) => (uint)id < (uint)_idToToken.Length && _idToToken[id] != null;

    /// <summary>The token string of <paramref name="id"/> (byte-level or "▁" form, as in the vocabulary).</summary>
    /// <exception cref="KeditException">the id has no token.</exception>
    public string IdToToken(int id) =>
        (uint)id < (uint)_idToToken.Length && _idToToken[id] is { } token ? token
            : throw new KeditException($"token id {id} is not in the tokenizer's vocabulary (size {VocabSize})");

    /// <summary>The id of a token string (added tokens first, then the vocabulary), or null.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_addedTokenIds.TryGetValue(token, out int id)) return id;
        return _model.Vocab.TryGetValue(token, out id) ? id : null;
    }

    /// <summary>Whether <paramref name="id"/> is a special token (left out by Decode with skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)_special.Length && _special[id];
}
