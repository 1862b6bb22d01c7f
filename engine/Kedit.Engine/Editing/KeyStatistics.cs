using System.Security.Cryptography;
using System.Text;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// Computing, resuming and caching the key statistics (spec §9). The cache lives next to the model
/// (or in ~/.cache/kedit when the model directory is read-only), keyed by model + layers + corpus +
/// sample count; a run that is interrupted resumes from its last checkpoint.
/// </summary>
public static class KeyStatistics
{
    public static string CacheKey(string modelDir, IEnumerable<int> layers, string corpusPath, int? samples)
    {
        var sb = new StringBuilder();
        foreach (var f in Directory.EnumerateFiles(modelDir).Where(f => f.EndsWith(".safetensors") || f.EndsWith("config.json")).Order())
        {
            var fi = new FileInfo(f);
            sb.Append(fi.Name).Append(fi.Length).Append(fi.LastWriteTimeUtc.Ticks);
        }
        sb.Append("|layers=").Append(string.Join(",", layers.Order()));
        sb.Append("|corpus=").Append(TextCorpus.Hash(corpusPath)).Append("|samples=").Append(samples?.ToString() ?? "all");
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..20].ToLowerInvariant();
    }

    public static string CachePath(string modelDir, string key)
    {
        string dir = Path.Combine(modelDir, ".kedit-cache");
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, ".write-test");
            File.WriteAllText(probe, ""); File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            dir = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "kedit");
            Directory.CreateDirectory(dir);
        }
        return Path.Combine(dir, $"stats-{key}.safetensors");
    }

    /// <summary>
    /// Statistics for the layers: loaded from the cache when present, else computed (resuming a
    /// checkpoint if one exists) and cached. Progress goes to <paramref name="progress"/> (stderr).
    /// </summary>
    public static Covariance ComputeOrLoad(Transformer model, string modelDir, IReadOnlyList<int> layers, string corpusPath, int? samples,
        TextWriter? progress, string? outPath = null, CancellationToken ct = default) =>
        ComputeOrLoad(model, modelDir, layers, corpusPath, samples, progress, out _, outPath, ct);

    /// <summary>As above, also giving the cache file the statistics live in (for the journal).</summary>
    public static Covariance ComputeOrLoad(Transformer model, string modelDir, IReadOnlyList<int> layers, string corpusPath, int? samples,
        TextWriter? progress, out string cachePath, string? outPath = null, CancellationToken ct = default)
    {
        string key = CacheKey(modelDir, layers, corpusPath, samples);
        string cache = cachePath = CachePath(modelDir, key);
        if (File.Exists(cache))
        {
            progress?.WriteLine($"statistics: cached {cache}");
            var cached = Covariance.Load(cache, layers, model.Config.Intermediate);
            if (outPath != null) AtomicOutput.CopyFile(cache, outPath);
            return cached;
        }
        string partial = cache + ".partial";
        var cov = File.Exists(partial) ? Covariance.Load(partial, layers, model.Config.Intermediate) : new Covariance(layers, model.Config.Intermediate);
        if (cov.Documents > 0) progress?.WriteLine($"statistics: resuming after {cov.Documents} documents");
        var meta = new Dictionary<string, string> { ["kind"] = "kedit key statistics (uncentred second moment of MLP keys)", ["layers"] = string.Join(",", layers), ["corpus"] = Path.GetFullPath(corpusPath), ["samples"] = samples?.ToString() ?? "all", ["key"] = key };
        var docs = TextCorpus.Documents(corpusPath, model.Tokenizer, model.Config.VocabSize);
        if (samples is int n) docs = docs.Take(n);
        var bar = new ProgressBar(progress, "statistics", samples);
        cov.Accumulate(model, docs, progress: new SyncProgress<(int Documents, long Tokens)>(p => bar.Report(p.Documents, $"{p.Tokens:N0} tokens")),
            checkpointEvery: 200, checkpoint: c => c.Save(partial, meta), ct: ct);
        bar.Done($"{cov.Documents} documents, {cov.Count(layers[0]):N0} tokens");
        if (cov.Count(layers[0]) == 0) throw new KeditException($"{corpusPath}: the corpus holds no tokens");
        cov.Save(cache, meta);
        if (File.Exists(partial)) File.Delete(partial);
        if (outPath != null) cov.Save(outPath, meta);
        return cov;
    }
}
