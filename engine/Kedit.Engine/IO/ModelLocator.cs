using System.Text.RegularExpressions;

namespace Kedit.IO;

/// <summary>
/// Turns what a user passes as <c>--model</c> into a model directory: a directory as is, or a Hugging Face hub id
/// (<c>gpt2-xl</c>, <c>EleutherAI/gpt-j-6B</c>) looked up offline in the local hub cache, the layout
/// <c>huggingface_hub</c> writes: <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>,
/// then <c>models--ORG--NAME/snapshots/&lt;revision&gt;</c> with the revision <c>refs/main</c> names (or the only
/// snapshot there is). Nothing is downloaded: a missing id says how to fetch it.
/// </summary>
public static class ModelLocator
{
    static readonly Regex HubId = new(@"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$", RegexOptions.CultureInvariant);

    /// <summary>The hub cache folders searched, in order.</summary>
    public static IReadOnlyList<string> HubCaches()
    {
        var list = new List<string>();
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) list.Add(hub);
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) list.Add(Path.Combine(home, "hub"));
        string user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x : Path.Combine(user, ".cache");
        list.Add(Path.Combine(xdg, "huggingface", "hub"));
        return list.Distinct().ToList();
    }

    /// <summary>The directory <paramref name="modelOrHubId"/> names.</summary>
    /// <exception cref="KeditException">Neither a directory nor a hub id in the local cache; the message says where it looked.</exception>
    public static string Resolve(string modelOrHubId)
    {
        if (Directory.Exists(modelOrHubId)) return modelOrHubId;
        if (File.Exists(modelOrHubId))
            throw new KeditException($"{modelOrHubId}: is a file; --model takes the model's directory (config.json, *.safetensors, tokenizer.json)");
        if (!HubId.IsMatch(modelOrHubId) || modelOrHubId.Contains(".."))
            throw new KeditException($"{modelOrHubId}: model directory not found");
        var caches = HubCaches();
        foreach (string cache in caches)
        {
            string repo = Path.Combine(cache, "models--" + modelOrHubId.Replace("/", "--"));
            string snapshots = Path.Combine(repo, "snapshots");
            if (!Directory.Exists(snapshots)) continue;
            string refMain = Path.Combine(repo, "refs", "main");
            if (File.Exists(refMain))
            {
                string rev = File.ReadAllText(refMain).Trim();
                string dir = Path.Combine(snapshots, rev);
                if (rev.Length > 0 && rev.IndexOfAny(['/', '\\']) < 0 && Directory.Exists(dir)) return dir;
            }
            var revs = Directory.GetDirectories(snapshots);
            if (revs.Length == 1) return revs[0];
            if (revs.Length > 1)
                throw new KeditException($"{modelOrHubId}: the hub cache {repo} holds {revs.Length} snapshots and no refs/main to choose one; pass the snapshot directory itself (e.g. {revs[0]})");
        }
        throw new KeditException($"{modelOrHubId}: model directory not found, nor is it in the local Hugging Face cache ({string.Join(", ", caches)}); " +
                                 $"kedit does not download: fetch it with `huggingface-cli download {modelOrHubId}` (or `hf download {modelOrHubId}`) and run again, or pass the directory");
    }
}
