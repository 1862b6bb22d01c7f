using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Models;

namespace Kedit.Cli;

/// <summary>The commands that cut work into shards for a cluster: `stats --merge` and `targets` (`stats --shard` is in <see cref="Commands.Stats"/>).</summary>
internal static class ClusterCommands
{
    public static int MergeStats(Args a, TextWriter o, TextWriter err)
    {
        var parts = a.Req("merge").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string outPath = a.Req("out");
        a.EnsureAllUsed();
        var cov = StatisticsShards.Merge(parts, outPath, err);
        var layers = cov.Layers.Order().ToList();
        o.WriteLine($"wrote {outPath}: layers {string.Join(",", layers)}, {cov.Count(layers[0]):N0} tokens from {cov.Documents} documents in {parts.Length} shards");
        return 0;
    }

    public static int Targets(Args a, TextWriter o, TextWriter err)
    {
        EditMethod method;
        try { method = Kedit.Api.EditorOptions.ParseMethod(a.Req("method")); }
        catch (KeditException e) { throw new UsageException($"targets: --method: {e.Message}"); }
        if (method is not (EditMethod.Memit or EditMethod.AlphaEdit)) throw new UsageException($"targets: --method must be memit or alphaedit (the methods whose batch edit takes its targets first), not {a.Req("method")}");
        if (a.Flag("sequential")) throw new UsageException("targets: --sequential: later batches' targets depend on the earlier edits, so only one batch edit can be sharded");
        string hparamsPath = a.Req("hparams"), requestsPath = a.Req("requests"), outPath = a.Req("out"), modelDir = a.ModelDir();
        int offset = a.Int("offset", 0);
        int? limit = a.Has("limit") ? a.Int("limit", 0) : null;
        var shard = Shard.Parse(a.Req("shard"), "--shard");
        int seed = a.Int("template-seed", 0);
        using var model = Cli.LoadModel(a);
        a.EnsureAllUsed();
        var h = HParams.Load(hparamsPath, method).Validate(model.Config);
        Kedit.IO.AtomicOutput.CheckFileTarget(outPath);
        var requests = RequestLoader.LoadForCommand(requestsPath, offset, limit, err);
        if (requests.Count == 0) throw new KeditException($"{requestsPath}: no requests");
        var templates = EditRunner.Templates(model, h, method, seed, requests, requestsPath);
        var tok = model.RequireTokenizer();
        var prepared = requests.Select(r => RequestPreparer.Prepare(tok, r, templates, h.FactToken)).ToList();
        var identity = TargetShards.Identity(modelDir, method, hparamsPath, h, requestsPath, offset, limit, seed);
        int n = TargetShards.Compute(model, h, prepared, identity, shard, outPath, err);
        o.WriteLine($"wrote {outPath}: targets of {n} of {requests.Count} requests (shard {shard})");
        return 0;
    }
}
