using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>Shard <see cref="Index"/> of <see cref="Count"/> (written "I/N", I from 0).</summary>
public readonly record struct Shard(int Index, int Count)
{
    /// <summary>Most shards a run is cut into (a Slurm array is capped far lower; this only bounds bad input).</summary>
    public const int MaxCount = 100_000;

    /// <summary>Parses "I/N" with 0 ≤ I &lt; N ≤ <see cref="MaxCount"/>; <paramref name="where"/> names the option or file in the error.</summary>
    public static Shard Parse(string text, string where)
    {
        var p = text.Split('/');
        if (p.Length == 2 && int.TryParse(p[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i)
            && int.TryParse(p[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1 && n <= MaxCount && i < n)
            return new Shard(i, n);
        throw new KeditException($"{where}: shard is \"{text}\"; expected I/N with 0 <= I < N <= {MaxCount} (e.g. 0/4)");
    }

    public override string ToString() => $"{Index}/{Count}";
}

/// <summary>
/// The key statistics computed in shards and merged (spec §9 across machines). Documents are dealt out in blocks of
/// <see cref="BlockDocuments"/> (the checkpoint interval) after the <c>--samples</c> cut: document i (from 0, in
/// corpus order) belongs to shard ⌊i / 200⌋ mod N. A shard is then a run of whole blocks, each cut into the same
/// windows and batches as in the unsharded run, so the float32 product blocks are the same and a merge differs from the
/// unsharded sums only in the order of float64 additions. A part is a statistics file with its sums, counts, the
/// unsharded run's cache key and its shard in the metadata; merging adds the parts in shard order, whatever order
/// they are given in, so any order gives the same bytes.
/// </summary>
public static class StatisticsShards
{
    /// <summary>Documents per block dealt to one shard: the checkpoint interval, so blocks are whole windows.</summary>
    public const int BlockDocuments = KeyStatistics.CheckpointDocuments;

    const string ShardField = "shard", ModelField = "model_files_sha256", CorpusField = "corpus_sha256";

    /// <summary>Whether the document at <paramref name="index"/> (after the --samples cut) belongs to the shard.</summary>
    public static bool Holds(Shard shard, long index) => index / BlockDocuments % shard.Count == shard.Index;

    /// <summary>Documents the shard holds when the run takes <paramref name="documents"/> documents.</summary>
    public static int DocumentsIn(Shard shard, int documents)
    {
        int n = 0;
        for (long start = (long)shard.Index * BlockDocuments; start < documents; start += (long)shard.Count * BlockDocuments)
            n += (int)Math.Min(BlockDocuments, documents - start);
        return n;
    }

    /// <summary>
    /// Computes one shard's sums into <paramref name="outPath"/>, resuming <c>outPath.partial</c> (on the same shared
    /// folder, so a task rerun on another node resumes too) when it is a checkpoint of the same shard.
    /// </summary>
    public static Covariance Compute(Transformer model, string modelDir, IReadOnlyList<int> layers, string corpusPath, int? samples, Shard shard,
        string outPath, TextWriter? progress, KeyProducts products = KeyProducts.Float32, CancellationToken ct = default)
    {
        string key = KeyStatistics.CacheKey(modelDir, layers, corpusPath, samples, products);
        var meta = KeyStatistics.Metadata(layers, corpusPath, samples, key, products);
        meta[ShardField] = shard.ToString();
        meta[ModelField] = Sha256(KeyStatistics.ModelSignature(modelDir));
        meta[CorpusField] = TextCorpus.Hash(corpusPath);
        string partial = outPath + ".partial";
        Covariance cov;
        if (File.Exists(partial))
        {
            using (var f = SafetensorsFile.Open(partial))
                if (f.Metadata.GetValueOrDefault("key") != key || f.Metadata.GetValueOrDefault(ShardField) != shard.ToString())
                    throw new KeditException($"{partial}: a checkpoint of another run (shard {f.Metadata.GetValueOrDefault(ShardField) ?? "none"}, key {f.Metadata.GetValueOrDefault("key") ?? "none"}); delete it or choose another --out");
            cov = Covariance.Load(partial, layers, model.Config.Intermediate, products);
        }
        else cov = new Covariance(layers, model.Config.Intermediate, products);
        var docs = TextCorpus.Documents(corpusPath, model.Tokenizer, model.Config.VocabSize);
        if (samples is int n) docs = docs.Take(n);
        docs = docs.Where((_, i) => Holds(shard, i));
        KeyStatistics.Accumulate(model, cov, docs, samples is int s ? DocumentsIn(shard, s) : null, partial, meta, progress, ct);
        if (cov.Documents == 0) progress?.WriteLine($"statistics: shard {shard} holds no documents (the corpus has fewer than {shard.Index + 1} blocks of {BlockDocuments})");
        cov.Save(outPath, meta);
        if (File.Exists(partial)) File.Delete(partial);
        return cov;
    }

    /// <summary>
    /// Adds the parts' float64 sums and counts in shard order and writes a statistics file (also placed in the cache
    /// under the unsharded run's key). Refuses, naming the files, parts of different runs, missing or duplicated
    /// shards and checkpoints, before writing anything.
    /// </summary>
    public static Covariance Merge(IReadOnlyList<string> parts, string outPath, TextWriter? log = null)
    {
        if (parts.Count == 0) throw new KeditException("--merge: no parts given");
        var files = new List<(string Path, Shard Shard, SafetensorsFile File)>();
        try
        {
            foreach (string p in parts)
            {
                if (p.EndsWith(".partial", StringComparison.Ordinal))
                    throw new KeditException($"{p}: a .partial checkpoint, not a finished shard (run its shard to the end first)");
                var file = SafetensorsFile.Open(p);
                files.Add((p, default, file));
                if (file.Metadata.ContainsKey(KeyStatistics.CheckpointField))
                    throw new KeditException($"{p}: a .partial checkpoint, not a finished shard (run its shard to the end first)");
                if (!file.Metadata.TryGetValue(ShardField, out var s))
                    throw new KeditException($"{p}: not a statistics shard (its metadata has no \"{ShardField}\"; kedit stats --shard I/N writes them)");
                files[^1] = (p, Shard.Parse(s, p), file);
            }
            var first = files[0];
            foreach (var (field, what) in new[] { (ModelField, "model"), ("layers", "layers"), (CorpusField, "corpus"), ("samples", "sample count"), ("products", "products"), ("key", "statistics key") })
                foreach (var other in files.Skip(1))
                {
                    string? a = first.File.Metadata.GetValueOrDefault(field), b = other.File.Metadata.GetValueOrDefault(field);
                    if (a != b) throw new KeditException($"{other.Path}: a part of another run: its {what} ({b ?? "missing"}) differs from {first.Path}'s ({a ?? "missing"})");
                }
            foreach (var other in files.Skip(1))
                if (other.Shard.Count != first.Shard.Count)
                    throw new KeditException($"{other.Path}: a part of another run: shard {other.Shard} of {other.Shard.Count}, while {first.Path} is shard {first.Shard} of {first.Shard.Count}");
            var dup = files.GroupBy(f => f.Shard.Index).FirstOrDefault(g => g.Count() > 1);
            if (dup != null) throw new KeditException($"shard {dup.Key}/{first.Shard.Count} given twice: {string.Join(" and ", dup.Select(f => f.Path))}");
            var missing = Enumerable.Range(0, first.Shard.Count).Except(files.Select(f => f.Shard.Index)).ToList();
            if (missing.Count > 0)
                throw new KeditException($"shard{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? ", ..." : "")} of {first.Shard.Count} missing (given: {string.Join(", ", files.Select(f => $"{f.Path} = {f.Shard}"))})");

            var meta = first.File.Metadata;
            string key = meta.GetValueOrDefault("key") ?? "";
            if (key.Length != 20 || !key.All(char.IsAsciiHexDigitLower)) throw new KeditException($"{first.Path}: metadata field key is \"{key}\"; expected the 20-digit statistics key");
            var layers = ParseLayers(meta.GetValueOrDefault("layers"), first.Path);
            var products = meta.GetValueOrDefault("products") == "float64" ? KeyProducts.Float64 : KeyProducts.Float32;
            if (!first.File.TryGetInfo($"sum.{layers[0]}", out var shape0) || shape0.Shape.Length != 2 || shape0.Shape[0] != shape0.Shape[1] || shape0.Shape[0] < 1 || shape0.Shape[0] > int.MaxValue)
                throw new KeditException($"{first.Path}: no square float64 sums sum.{layers[0]}");
            int f = (int)shape0.Shape[0];
            var ordered = files.OrderBy(x => x.Shard.Index).ToList();
            foreach (var part in ordered)
                foreach (int l in layers)
                {
                    if (!part.File.TryGetInfo($"sum.{l}", out var info) || info.Shape.Length != 2 || info.Shape[0] != f || info.Shape[1] != f)
                        throw new KeditException($"{part.Path}: tensor sum.{l} is missing or not [{f},{f}] (float64 sums of the layer)");
                    if (!part.File.TryGetInfo($"count.{l}", out var ci) || ci.ElementCount != 1)
                        throw new KeditException($"{part.Path}: tensor count.{l} is missing or does not hold one token count");
                }
            var cov = new Covariance(layers, f, products);
            var buffer = new double[(long)f * f];
            foreach (int l in layers)
                foreach (var part in ordered)
                {
                    long count = part.File.ReadInt64($"count.{l}")[0];
                    if (count < 0) throw new KeditException($"{part.Path}: tensor count.{l} is {count}; a token count cannot be negative");
                    part.File.ReadFloat64($"sum.{l}", buffer);
                    int bad = Array.FindIndex(buffer, v => !double.IsFinite(v));
                    if (bad >= 0) throw new KeditException($"{part.Path}: tensor sum.{l} holds {buffer[bad]} at [{bad / f},{bad % f}]; statistics must be finite");
                    cov.AddSums(l, buffer, count);
                }
            foreach (var part in ordered)
                cov.AddDocuments(int.TryParse(part.File.Metadata.GetValueOrDefault("documents"), out int d) ? d : 0);
            if (cov.Count(layers[0]) == 0) throw new KeditException($"the {files.Count} parts hold no tokens");
            var outMeta = meta.Where(kv => kv.Key is not (ShardField or "documents")).ToDictionary(kv => kv.Key, kv => kv.Value);
            outMeta["merged_shards"] = first.Shard.Count.ToString(CultureInfo.InvariantCulture);
            cov.Save(outPath, outMeta);
            // The cache takes it as if computed here, so a later `edit --corpus` on the same model finds it.
            string cache = KeyStatistics.CachePath(key);
            if (!File.Exists(cache)) AtomicOutput.CopyFile(outPath, cache);
            log?.WriteLine($"statistics: merged {files.Count} shards; cached {cache}");
            return cov;
        }
        finally { foreach (var x in files) x.File.Dispose(); }
    }

    static int[] ParseLayers(string? layers, string path)
    {
        try { return layers!.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
        catch (Exception e) when (e is FormatException or OverflowException or NullReferenceException)
        {
            throw new KeditException($"{path}: metadata field layers is \"{layers}\"; expected comma-separated layer numbers");
        }
    }

    static string Sha256(string text) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..20].ToLowerInvariant();
}
