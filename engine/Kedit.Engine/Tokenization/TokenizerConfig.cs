using System.Text.Json;

namespace Kedit.Tokenization;

/// <summary>The parts of tokenizer_config.json that change encoding: BOS/EOS switches and special tokens.</summary>
internal sealed record TokenizerConfig(
    string? Path, bool? AddBosToken, bool? AddEosToken, bool? AddPrefixSpace,
    string? BosToken, string? EosToken, string? UnkToken, string? PadToken,
    IReadOnlyList<string> AdditionalSpecialTokens, IReadOnlyList<AddedToken> AddedTokensDecoder)
{
    public static readonly TokenizerConfig Empty = new(null, null, null, null, null, null, null, null, [], []);

    /// <summary>bos/eos/unk/pad and additional_special_tokens, without repeats.</summary>
    public IEnumerable<string> NamedSpecialTokens =>
        new[] { BosToken, EosToken, UnkToken, PadToken }.Concat(AdditionalSpecialTokens).OfType<string>().Distinct(StringComparer.Ordinal);

    public static TokenizerConfig Read(string path)
    {
        using var doc = JsonFields.ParseFile(path);
        var f = new JsonFields(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new KeditException($"{path}: must hold a JSON object");

        var additional = new List<string>();
        if (JsonFields.Optional(root, "additional_special_tokens") is { } list)
        {
            if (list.ValueKind != JsonValueKind.Array) throw f.Error("additional_special_tokens", "must be an array");
            int i = 0;
            foreach (var item in list.EnumerateArray())
                if (TokenValue(f, item, $"additional_special_tokens[{i++}]") is { } s) additional.Add(s);
        }

        var decoderTokens = new List<AddedToken>();
        if (JsonFields.Optional(root, "added_tokens_decoder") is { } dec)
        {
            if (dec.ValueKind != JsonValueKind.Object) throw f.Error("added_tokens_decoder", "must be an object keyed by token id");
            foreach (var prop in dec.EnumerateObject())
            {
                string p = $"added_tokens_decoder[\"{prop.Name}\"]";
                if (!int.TryParse(prop.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || id > JsonFields.MaxTokenId)
                    throw f.Error(p, $"must be keyed by a token id in 0..{JsonFields.MaxTokenId}");
                if (prop.Value.ValueKind != JsonValueKind.Object) throw f.Error(p, "must be an object");
                string content = f.RequireString(prop.Value, "content", p);
                bool special = f.OptionalBool(prop.Value, "special", p) ?? false;
                decoderTokens.Add(new AddedToken(id, content, special,
                    f.OptionalBool(prop.Value, "lstrip", p) ?? false, f.OptionalBool(prop.Value, "rstrip", p) ?? false,
                    f.OptionalBool(prop.Value, "normalized", p) ?? !special, f.OptionalBool(prop.Value, "single_word", p) ?? false));
            }
        }

        return new TokenizerConfig(path,
            f.OptionalBool(root, "add_bos_token", ""), f.OptionalBool(root, "add_eos_token", ""), f.OptionalBool(root, "add_prefix_space", ""),
            TokenContent(f, root, "bos_token"), TokenContent(f, root, "eos_token"),
            TokenContent(f, root, "unk_token"), TokenContent(f, root, "pad_token"),
            additional, decoderTokens);
    }

    static string? TokenContent(JsonFields f, JsonElement root, string name) =>
        JsonFields.Optional(root, name) is { } v ? TokenValue(f, v, name) : null;

    /// <summary>A special token is written either as a string or as an AddedToken object {"content": ...}.</summary>
    static string? TokenValue(JsonFields f, JsonElement v, string path) => v.ValueKind switch
    {
        JsonValueKind.String => v.GetString(),
        JsonValueKind.Null => null,
        JsonValueKind.Object => f.RequireString(v, "content", path),
        _ => throw f.Error(path, "must be a token string or an object with \"content\""),
    };
}
