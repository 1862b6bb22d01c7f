using System.Security.Cryptography;
using System.Text.Json;
using Kedit.Tokenization;

namespace Kedit.IO;

/// <summary>
/// A document corpus for statistics and perplexity: `.txt` (one document per line) or `.jsonl`
/// (one object per line with a "text" string or pre-tokenised "ids"). Documents stream lazily.
/// </summary>
public static class TextCorpus
{
    /// <summary>The documents as token ids; with <paramref name="vocabSize"/>, pre-tokenised ids outside it are refused naming the line.</summary>
    public static IEnumerable<int[]> Documents(string path, Tokenizer? tokenizer, int? vocabSize = null)
    {
        if (!File.Exists(path)) throw new KeditException($"{path}: corpus file not found");
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is not (".txt" or ".jsonl")) throw new KeditException($"{path}: corpus must be .txt (one document per line) or .jsonl (\"text\" or \"ids\" per line)");
        return Stream(path, ext == ".jsonl", tokenizer, vocabSize ?? int.MaxValue);
    }

    static IEnumerable<int[]> Stream(string path, bool jsonl, Tokenizer? tok, int vocabSize)
    {
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (!jsonl)
            {
                yield return Encode(tok, line, path, lineNo);
                continue;
            }
            JsonElement e;
            using (var doc = StrictJson.Parse(line, $"{path}:{lineNo}")) e = doc.RootElement.Clone();
            if (e.ValueKind != JsonValueKind.Object) throw new KeditException($"{path}:{lineNo}: expected an object with \"text\" or \"ids\"");
            if (e.TryGetProperty("ids", out var ids))
            {
                if (ids.ValueKind != JsonValueKind.Array) throw new KeditException($"{path}:{lineNo}: \"ids\" must be an array of integers");
                var arr = new int[ids.GetArrayLength()];
                int i = 0;
                foreach (var v in ids.EnumerateArray())
                {
                    if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out arr[i])) throw new KeditException($"{path}:{lineNo}: \"ids\"[{i}] is not an integer");
                    if ((uint)arr[i] >= (uint)vocabSize) throw new KeditException($"{path}:{lineNo}: \"ids\"[{i}] is {arr[i]}, outside the model's vocabulary (0..{vocabSize - 1})");
                    i++;
                }
                if (arr.Length > 0) yield return arr;
            }
            else if (e.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
            {
                var s = text.GetString()!;
                if (s.Length > 0) yield return Encode(tok, s, path, lineNo);
            }
            else throw new KeditException($"{path}:{lineNo}: each line needs a \"text\" string or an \"ids\" array");
        }
    }

    static int[] Encode(Tokenizer? tok, string text, string path, int line) =>
        (tok ?? throw new KeditException($"{path}:{line}: text documents need the model's tokenizer")).Encode(text);

    /// <summary>SHA-256 of the corpus file (part of the statistics cache key).</summary>
    public static string Hash(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(s))[..16].ToLowerInvariant();
    }
}
