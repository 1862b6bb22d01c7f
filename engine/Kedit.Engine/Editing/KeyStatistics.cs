using System.Security.Cryptography;
using System.Text;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// Computing, resuming and caching the key statistics (spec §9). The cache lives in the user's cache
/// folder (<see cref="CacheDirectory"/>), never in the model directory, keyed by the model's weight
/// files + layers + corpus + sample count (and float64 products when asked for); a run that is
/// interrupted resumes from its last checkpoint.
/// </summary>
public static class KeyStatistics
{
    /// <remarks>
    /// Float32-product statistics keep the key they always had (caches written before float32 products existed
    /// hold exact float64 sums, within 1e-6 of what they would compute now); float64 ones add a term.
    /// </remarks>
    public static string CacheKey(string modelDir, IEnumerable<int> layers, string corpusPath, int? samples, KeyProducts products = KeyProducts.Float32)
    {
        var sb = new StringBuilder(ModelSignature(modelDir));
        sb.Append("|layers=").Append(string.Join(",", layers.Order()));
        sb.Append("|corpus=").Append(TextCorpus.Hash(corpusPath)).Append("|samples=").Append(samples?.ToString() ?? "all");
        if (products == KeyProducts.Float64) sb.Append("|products=float64");
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..20].ToLowerInvariant();
    }

    /// <summary>The model part of the cache key: names, sizes and modification times of the weight and config files.</summary>
    public static string ModelSignature(string modelDir)
    {
        var sb = new StringBuilder();
        foreach (var f in Directory.EnumerateFiles(modelDir).Where(f => f.EndsWith(".safetensors") || f.EndsWith("config.json")).Order())
        {
            var fi = new FileInfo(f);
            sb.Append(fi.Name).Append(fi.Length).Append(fi.LastWriteTimeUtc.Ticks);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Documents between checkpoints. Windows of documents end at every multiple (<see cref="Covariance.Accumulate"/>),
    /// so a run resumed at a checkpoint, or a shard made of whole such blocks, forms the same float32 product blocks.
    /// </summary>
    public const int CheckpointDocuments = 200;

    /// <summary>Overrides the statistics cache folder (the test suite points it at a temporary folder).</summary>
    public const string CacheDirectoryVariable = "KEDIT_CACHE_DIR";

    /// <summary>
    /// The statistics cache folder: $KEDIT_CACHE_DIR if set, else $XDG_CACHE_HOME/kedit, else ~/.cache/kedit.
    /// (Before, the cache lived in the model directory's .kedit-cache/; those files are no longer read:
    /// their statistics are computed again, once, here.)
    /// </summary>
    public static string CacheDirectory() => CacheDirectory(Environment.GetEnvironmentVariable(CacheDirectoryVariable),
        Environment.GetEnvironmentVariable("XDG_CACHE_HOME"), Environment.GetFolderPath(Environment.SpecialFolder.UserProfile));

    internal static string CacheDirectory(string? keditCacheDir, string? xdgCacheHome, string home) => Path.GetFullPath(
        !string.IsNullOrEmpty(keditCacheDir) ? keditCacheDir
        : Path.Combine(!string.IsNullOrEmpty(xdgCacheHome) ? xdgCacheHome : Path.Combine(home, ".cache"), "kedit"));

    /// <summary>The cache file of a key, its folder created.</summary>
    public static string CachePath(string key)
    {
        string dir = CacheDirectory();
        try { Directory.CreateDirectory(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeditException($"{dir}: cannot create the statistics cache folder ({e.Message}); set {CacheDirectoryVariable} to a writable folder");
        }
        return Path.Combine(dir, $"stats-{key}.safetensors");
    }

    /// <summary>
    /// A cached statistics file for <paramref name="modelDir"/> that holds every one of <paramref name="layers"/> with
    /// <paramref name="products"/>, or null. A cache file belongs to the model when its key, recomputed from its own
    /// layers, corpus and sample count, is its name (so its corpus file must still be there). Among several, one of
    /// <paramref name="samples"/> samples is preferred, then the newest.
    /// </summary>
    public static string? FindCached(string modelDir, IReadOnlyCollection<int> layers, KeyProducts products, int? samples)
    {
        string dir = CacheDirectory();
        if (!Directory.Exists(dir)) return null;
        var found = new List<(string Path, bool SameSamples, DateTime Written)>();
        foreach (var path in Directory.EnumerateFiles(dir, "stats-*.safetensors"))
        {
            try
            {
                IReadOnlyDictionary<string, string> meta;
                using (var f = SafetensorsFile.Open(path)) meta = f.Metadata;
                if (!meta.TryGetValue("key", out var key) || Path.GetFileName(path) != $"stats-{key}.safetensors") continue;
                if (!meta.TryGetValue("layers", out var ls) || !meta.TryGetValue("corpus", out var corpus) || !meta.TryGetValue("samples", out var s)) continue;
                var cachedLayers = ls.Split(',').Select(int.Parse).ToList();
                if (!layers.All(cachedLayers.Contains) || !File.Exists(corpus)) continue;
                int? n = s == "all" ? null : int.Parse(s, System.Globalization.CultureInfo.InvariantCulture);
                var p = meta.TryGetValue("products", out var pr) && pr == "float64" ? KeyProducts.Float64 : KeyProducts.Float32;
                if (p != products || CacheKey(modelDir, cachedLayers, corpus, n, p) != key) continue;
                found.Add((path, samples == null || n == samples, File.GetLastWriteTimeUtc(path)));
            }
            // A cache file that cannot be read (partly written, foreign, unreadable) is simply not a match.
            catch (Exception e) when (e is KeditException or FormatException or OverflowException or IOException or UnauthorizedAccessException) { }
        }
        return found.OrderByDescending(f => f.SameSamples).ThenByDescending(f => f.Written).Select(f => f.Path).FirstOrDefault();
    }

    /// <summary>
    /// Statistics for the layers: loaded from the cache when present, else computed (resuming a
    /// checkpoint if one exists) and cached. Progress goes to <paramref name="progress"/> (stderr): documents,
    /// tokens, tokens/s and, when the sample count is known, the time left.
    /// </summary>
    public static Covariance ComputeOrLoad(Transformer model, string modelDir, IReadOnlyList<int> layers, string corpusPath, int? samples,
        TextWriter? progress, string? outPath = null, KeyProducts products = KeyProducts.Float32, CancellationToken ct = default) =>
        ComputeOrLoad(model, modelDir, layers, corpusPath, samples, progress, out _, outPath, products, ct);

    /// <summary>As above, also giving the cache file the statistics live in (for the journal).</summary>
    public static Covariance ComputeOrLoad(Transformer model, string modelDir, IReadOnlyList<int> layers, string corpusPath, int? samples,
        TextWriter? progress, out string cachePath, string? outPath = null, KeyProducts products = KeyProducts.Float32, CancellationToken ct = default)
    {
        string key = CacheKey(modelDir, layers, corpusPath, samples, products);
        string cache = cachePath = CachePath(key);
        if (File.Exists(cache))
        {
            progress?.WriteLine($"statistics: cached {cache}");
            var cached = Covariance.Load(cache, layers, model.Config.Intermediate, products);
            WarnIfShort(cached, samples, corpusPath, progress);
            if (outPath != null) AtomicOutput.CopyFile(cache, outPath);
            return cached;
        }
        string partial = cache + ".partial";
        var cov = File.Exists(partial) ? Covariance.Load(partial, layers, model.Config.Intermediate, products) : new Covariance(layers, model.Config.Intermediate, products);
        var meta = Metadata(layers, corpusPath, samples, key, products);
        var docs = TextCorpus.Documents(corpusPath, model.Tokenizer, model.Config.VocabSize);
        if (samples is int n) docs = docs.Take(n);
        Accumulate(model, cov, docs, samples, partial, meta, progress, ct);
        if (cov.Count(layers[0]) == 0) throw new KeditException($"{corpusPath}: the corpus holds no tokens");
        WarnIfShort(cov, samples, corpusPath, progress);
        cov.Save(cache, meta);
        if (File.Exists(partial)) File.Delete(partial);
        if (outPath != null) AtomicOutput.CopyFile(cache, outPath);   // the same bytes, without building every layer's mean a second time
        return cov;
    }

    /// <summary>What a statistics file's metadata says of the run that made it (a shard part adds its shard).</summary>
    internal static Dictionary<string, string> Metadata(IReadOnlyList<int> layers, string corpusPath, int? samples, string key, KeyProducts products) => new()
    {
        ["kind"] = "kedit key statistics (uncentred second moment of MLP keys)", ["layers"] = string.Join(",", layers), ["corpus"] = Path.GetFullPath(corpusPath),
        ["samples"] = samples?.ToString() ?? "all", ["key"] = key,
        ["products"] = products == KeyProducts.Float64 ? "float64" : "float32 (float64 sums across batches)",
    };

    /// <summary>Called with the checkpoint's path after each one is written (the tests interrupt a run exactly there).</summary>
    internal static Action<string>? CheckpointWritten;

    /// <summary>The metadata field that marks a checkpoint (a <c>.partial</c> file): its sums cover only some documents.</summary>
    public const string CheckpointField = "checkpoint";

    /// <summary>
    /// Folds <paramref name="docs"/> into <paramref name="cov"/> (skipping the documents it already holds), with a progress
    /// bar over <paramref name="total"/> documents when known and a checkpoint to <paramref name="partial"/> every
    /// <see cref="CheckpointDocuments"/> documents.
    /// </summary>
    internal static void Accumulate(Transformer model, Covariance cov, IEnumerable<int[]> docs, int? total, string partial,
        IReadOnlyDictionary<string, string> meta, TextWriter? progress, CancellationToken ct)
    {
        var layers = cov.Layers.Order().ToList();
        if (cov.Documents > 0) progress?.WriteLine($"statistics: resuming after {cov.Documents} documents");
        var checkpointMeta = new Dictionary<string, string>(meta) { [CheckpointField] = "true" };
        var bar = new ProgressBar(progress, "statistics", total);
        int startDocs = cov.Documents;
        long startTokens = cov.Count(layers[0]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string Rate(long tokens) => $"{(tokens - startTokens) / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):N0} tokens/s";
        cov.Accumulate(model, docs, progress: new SyncProgress<(int Documents, long Tokens)>(p =>
            {
                // The time left assumes the remaining documents are as long as the ones so far.
                double perDoc = clock.Elapsed.TotalSeconds / Math.Max(1, p.Documents - startDocs);
                string eta = total is int t && p.Documents < t ? $", ~{Duration(perDoc * (t - p.Documents))} left" : "";
                bar.Report(p.Documents, $"{p.Tokens:N0} tokens, {Rate(p.Tokens)}{eta}");
            }),
            checkpointEvery: CheckpointDocuments, checkpoint: c => { c.Save(partial, checkpointMeta); CheckpointWritten?.Invoke(partial); }, ct: ct);
        bar.Done($"{cov.Documents} documents, {cov.Count(layers[0]):N0} tokens, {Rate(cov.Count(layers[0]))}");
    }

    /// <summary>A corpus shorter than the sample count asked for (upstream's 100,000) is said, not silently used.</summary>
    static void WarnIfShort(Covariance cov, int? samples, string corpusPath, TextWriter? progress)
    {
        if (samples is int asked && cov.Documents < asked)
            progress?.WriteLine($"statistics: warning: {corpusPath} holds {cov.Documents} documents, fewer than the {asked:N0} asked for (mom2_n_samples or --samples); the statistics stand on those {cov.Documents}");
    }

    static string Duration(double seconds) =>
        seconds >= 3600 ? $"{(int)(seconds / 3600)}h{(int)(seconds % 3600 / 60):D2}m" : seconds >= 60 ? $"{(int)(seconds / 60)}m{(int)(seconds % 60):D2}s" : $"{seconds:F0}s";
}
