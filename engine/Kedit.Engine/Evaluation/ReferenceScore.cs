using System.Text.Json;
using System.Text.RegularExpressions;
using Kedit.Editing.Inputs;
using Kedit.IO;

namespace Kedit.Evaluation;

/// <summary>
/// ROME/MEMIT's reference score ("RS", consistency): the TF-IDF cosine similarity between the text generated after a
/// record's <c>generation_prompts</c> (all of it, joined) and Wikipedia snippets about the new object
/// (<c>attribute_snippets.json</c> entries of the record's relation and <c>target_new.id</c>, joined). Their files, as
/// ROME's <c>data/</c> holds them: <c>attribute_snippets.json</c>, <c>idf.npy</c>, <c>tfidf_vocab.json</c>. The vectoriser is
/// scikit-learn's default TfidfVectorizer with that vocabulary and IDF: lower-cased tokens of two or more word
/// characters, raw counts × idf, L2-normalised.
/// </summary>
public sealed class ReferenceScore
{
    static readonly Regex Token = new(@"\b\w\w+\b", RegexOptions.CultureInvariant);

    readonly Dictionary<string, int> _vocab;
    readonly double[] _idf;
    readonly Dictionary<(string Relation, string Target), List<string>> _snippets;

    ReferenceScore(Dictionary<string, int> vocab, double[] idf, Dictionary<(string, string), List<string>> snippets) { _vocab = vocab; _idf = idf; _snippets = snippets; }

    /// <summary>Reads ROME's three files from <paramref name="dir"/>.</summary>
    /// <exception cref="KeditException">A file missing or malformed, or a vocabulary index outside the IDF vector.</exception>
    public static ReferenceScore Load(string dir)
    {
        string snipPath = Path.Combine(dir, "attribute_snippets.json"), idfPath = Path.Combine(dir, "idf.npy"), vocabPath = Path.Combine(dir, "tfidf_vocab.json");
        var (shape, idf) = Npz.ReadNpyFile(idfPath, maxElements: 1 << 24);
        if (shape.Length != 1) throw new KeditException($"{idfPath}: the IDF must be a vector, got shape ({string.Join(",", shape)})");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            using var v = JsonDocument.Parse(File.ReadAllText(vocabPath));
            foreach (var p in v.RootElement.EnumerateObject())
            {
                int i = p.Value.GetInt32();
                if (i < 0 || i >= idf.Length) throw new KeditException($"{vocabPath}: word '{p.Name}' has index {i}, outside the {idf.Length} IDF entries of {idfPath}");
                vocab[p.Name] = i;
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or FileNotFoundException)
        { throw new KeditException($"{vocabPath}: expected a JSON object mapping words to indices ({e.Message.Split('\n')[0]})"); }
        var snippets = new Dictionary<(string, string), List<string>>();
        try
        {
            using var s = JsonDocument.Parse(File.ReadAllText(snipPath));
            foreach (var el in s.RootElement.EnumerateArray())
            {
                var key = (el.GetProperty("relation_id").GetString()!, el.GetProperty("target_id").GetString()!);
                if (!snippets.TryGetValue(key, out var list)) snippets[key] = list = new List<string>();
                foreach (var sample in el.GetProperty("samples").EnumerateArray()) list.Add(sample.GetProperty("text").GetString()!);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FileNotFoundException)
        { throw new KeditException($"{snipPath}: expected ROME's list of {{relation_id, target_id, samples: [{{text}}]}} ({e.Message.Split('\n')[0]})"); }
        return new ReferenceScore(vocab, idf, snippets);
    }

    /// <summary>The L2-normalised TF-IDF vector of <paramref name="text"/> (sparse: index → weight).</summary>
    public Dictionary<int, double> Vector(string text)
    {
        var v = new Dictionary<int, double>();
        foreach (Match m in Token.Matches(text.ToLowerInvariant()))
            if (_vocab.TryGetValue(m.Value, out int i)) v[i] = v.GetValueOrDefault(i) + 1;
        foreach (int i in v.Keys.ToList()) v[i] *= _idf[i];
        double norm = Math.Sqrt(v.Values.Sum(x => x * x));
        if (norm > 0) foreach (int i in v.Keys.ToList()) v[i] /= norm;
        return v;
    }

    /// <summary>Cosine similarity of two texts' TF-IDF vectors (0 when either has no known word).</summary>
    public double Similarity(string a, string b)
    {
        var x = Vector(a); var y = Vector(b);
        return x.Sum(kv => y.TryGetValue(kv.Key, out double w) ? kv.Value * w : 0);
    }

    /// <summary>The snippets about the request's new object under its relation, or null when the files hold none (or the request lacks ids).</summary>
    public IReadOnlyList<string>? SnippetsFor(EditRequest r) =>
        r.RelationId is string rel && r.TargetNewId is string tid && _snippets.TryGetValue((rel, tid), out var list) && list.Count > 0 ? list : null;
}
