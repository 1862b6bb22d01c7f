using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Kedit.Backends;
using Kedit.Editing.Inputs;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// MEMIT's (and AlphaEdit's) target vectors z of one batch edit, computed in shards and handed to `edit --targets`.
/// Each request's z is an independent optimisation on the unedited model (spec §7), so shards need nothing of each
/// other. compute_z runs requests in batches (<see cref="ComputeZ.PlanBatches"/>); a shard is a run of whole batches
/// of the unsharded plan (batch b of B belongs to shard ⌊b·N/B⌋), so its z are the unsharded run's to the bit.
/// A part holds z, the initial target, δ, the first gradient and the loss trace of each of its requests, the
/// fingerprint of each request's token rows, and what they were made for: model files, hparams file, request file,
/// template seed and shard.
/// </summary>
public static class TargetShards
{
    const string Kind = "kedit target vectors (compute_z)";

    /// <summary>The requests [Start, Start+Count) of <paramref name="shard"/>: whole batches of the unsharded compute_z plan.</summary>
    public static (int Start, int Count) RequestsOf(ModelConfig config, IReadOnlyList<PreparedRequest> requests, int layer, Shard shard)
    {
        var plan = ComputeZ.PlanBatches(config, requests, layer, ComputeZ.MaxTapeBytes);
        int first = (int)((long)shard.Index * plan.Count / shard.Count), end = (int)((long)(shard.Index + 1) * plan.Count / shard.Count);
        if (first == end) return (first < plan.Count ? plan[first].Start : requests.Count, 0);
        return (plan[first].Start, plan[end - 1].Start + plan[end - 1].Count - plan[first].Start);
    }

    /// <summary>What the targets were made for (the metadata a part carries and `edit --targets` checks).</summary>
    public static Dictionary<string, string> Identity(string modelDir, EditMethod method, string hparamsPath, HParams h, string requestsPath, int offset, int? limit, int templateSeed) => new()
    {
        ["requests_slice"] = $"offset {offset}, limit {limit?.ToString(CultureInfo.InvariantCulture) ?? "none"}",
        ["method"] = method.ToString().ToLowerInvariant(),
        ["model_files_sha256"] = Sha(Encoding.UTF8.GetBytes(KeyStatistics.ModelSignature(modelDir))),
        ["hparams_sha256"] = Sha(File.ReadAllBytes(hparamsPath)),
        ["requests_sha256"] = Sha(File.ReadAllBytes(requestsPath)),
        ["template_seed"] = h.ContextTemplates == null ? templateSeed.ToString(CultureInfo.InvariantCulture) : "none (templates from the hparams)",
    };

    static readonly (string Field, string What)[] IdentityFields =
        [("method", "method"), ("model_files_sha256", "model"), ("hparams_sha256", "hparams file"), ("requests_sha256", "request file"),
         ("requests_slice", "slice of the request file (--offset/--limit)"), ("template_seed", "template seed")];

    /// <summary>The request's token rows and target, hashed (a part's z must belong to the request it is used for).</summary>
    public static string Fingerprint(PreparedRequest r)
    {
        var sb = new StringBuilder();
        void Row(LookupRow x) => sb.Append(string.Join(",", x.Ids)).Append('@').Append(x.Index).Append(';');
        foreach (var g in r.ContextGroups) { foreach (var x in g) Row(x); sb.Append('|'); }
        foreach (var x in r.KlRows) Row(x);
        sb.Append('|'); Row(r.Bare);
        sb.Append('|').Append(string.Join(",", r.Target));
        return Sha(Encoding.UTF8.GetBytes(sb.ToString()));
    }

    /// <summary>Computes shard <paramref name="shard"/>'s targets and writes them to <paramref name="outPath"/> (atomically).</summary>
    public static int Compute(Transformer model, HParams h, IReadOnlyList<PreparedRequest> requests, IReadOnlyDictionary<string, string> identity, Shard shard,
        string outPath, TextWriter? log, CancellationToken ct = default)
    {
        var z = ZSettings.From(h, model.Config.Layers);
        var (start, count) = RequestsOf(model.Config, requests, h.ZLayer, shard);
        log?.WriteLine($"targets: shard {shard}: requests {start}..{start + count - 1} of {requests.Count}");
        var mine = requests.Skip(start).Take(count).ToList();
        var runs = count == 0 ? [] : ComputeZ.RunBatch(model, mine, h.ZLayer, HookPoint.BlockOutput, z, ct);
        foreach (var r in runs)
            if (!double.IsFinite(r.Trace[^1].Loss) || !double.IsFinite(r.Trace[0].Loss) || !double.IsFinite(ComputeZ.Norm(r.Delta)))
                throw new KeditException($"{h.Source}: the target optimisation diverged (loss {r.Trace[^1].Loss}); lower v_lr or clamp_norm_factor");
        int d = model.Config.Hidden, steps = runs.Length == 0 ? 0 : runs.Max(r => r.Trace.Count);
        float[] Rows(Func<ZResult, float[]> f) => runs.SelectMany(f).ToArray();
        var trace = new double[(long)runs.Length * steps * 7];
        for (int j = 0; j < runs.Length; j++)
            for (int s = 0; s < runs[j].Trace.Count; s++)
            {
                var t = runs[j].Trace[s];
                new[] { t.Iteration, t.Loss, t.Nll, t.Kl, t.WeightDecay, t.AvgProb, t.DeltaNorm }.CopyTo(trace, ((long)j * steps + s) * 7);
            }
        long n = runs.Length;
        var entries = new List<SafetensorsWriter.Entry>
        {
            SafetensorsWriter.Entry.F32("z", [n, d], Rows(r => r.Z)),
            SafetensorsWriter.Entry.F32("target_init", [n, d], Rows(r => r.TargetInit)),
            SafetensorsWriter.Entry.F32("delta", [n, d], Rows(r => r.Delta)),
            SafetensorsWriter.Entry.F32("grad0", [n, d], Rows(r => r.Grad0)),
            SafetensorsWriter.Entry.F64("trace", [n, steps, 7], trace),
            SafetensorsWriter.Entry.I64("trace_length", [n], runs.Select(r => (long)r.Trace.Count).ToArray()),
        };
        var meta = new Dictionary<string, string>(identity)
        {
            ["kind"] = Kind, ["shard"] = shard.ToString(), ["requests"] = requests.Count.ToString(CultureInfo.InvariantCulture),
            ["first"] = start.ToString(CultureInfo.InvariantCulture), ["count"] = count.ToString(CultureInfo.InvariantCulture),
            ["fingerprints"] = string.Join(",", mine.Select(Fingerprint)),
        };
        SafetensorsWriter.Write(outPath, entries, meta);
        return count;
    }

    /// <summary>
    /// Reads the parts, in shard order whatever order they are given in, and returns one z run per request. Refuses
    /// (naming the file) parts made for another model, method, hparams file, request file or template seed, other shard
    /// counts, missing or duplicated shards, and z that do not belong to the requests of this edit.
    /// </summary>
    public static IReadOnlyList<ZResult> Load(IReadOnlyList<string> parts, IReadOnlyDictionary<string, string> identity, IReadOnlyList<PreparedRequest> requests, int hidden)
    {
        if (parts.Count == 0) throw new KeditException("--targets: no parts given");
        var loaded = new List<(string Path, Shard Shard, int First, ZResult[] Runs, string[] Fingerprints)>();
        foreach (string p in parts)
        {
            using var f = SafetensorsFile.Open(p);
            var m = f.Metadata;
            if (m.GetValueOrDefault("kind") != Kind) throw new KeditException($"{p}: not a targets part (metadata kind is \"{m.GetValueOrDefault("kind")}\"; kedit targets writes them)");
            foreach (var (field, what) in IdentityFields)
                if (m.GetValueOrDefault(field) != identity[field])
                    throw new KeditException($"{p}: targets made for another {what} ({field} {m.GetValueOrDefault(field) ?? "missing"}; this edit's is {identity[field]})");
            var shard = Shard.Parse(m.GetValueOrDefault("shard") ?? "", p);
            if (m.GetValueOrDefault("requests") != requests.Count.ToString(CultureInfo.InvariantCulture))
                throw new KeditException($"{p}: targets for {m.GetValueOrDefault("requests")} requests; this edit has {requests.Count}");
            if (!int.TryParse(m.GetValueOrDefault("first"), out int first) || !int.TryParse(m.GetValueOrDefault("count"), out int count) || first < 0 || count < 0 || first + count > requests.Count)
                throw new KeditException($"{p}: metadata fields first/count are missing or outside the {requests.Count} requests");
            string fp = m.GetValueOrDefault("fingerprints") ?? "";
            var fingerprints = fp.Length == 0 ? [] : fp.Split(',');
            if (fingerprints.Length != count) throw new KeditException($"{p}: metadata field fingerprints lists {fingerprints.Length} requests; count says {count}");
            foreach (var (name, shape) in new[] { ("z", new long[] { count, hidden }), ("target_init", [count, hidden]), ("delta", [count, hidden]), ("grad0", [count, hidden]), ("trace_length", [count]) })
                if (!f.TryGetInfo(name, out var info) || !info.Shape.SequenceEqual(shape))
                    throw new KeditException($"{p}: tensor {name} is missing or not [{string.Join(",", shape)}] (the model is {hidden} wide)");
            if (!f.TryGetInfo("trace", out var ti) || ti.Shape.Length != 3 || ti.Shape[0] != count || ti.Shape[2] != 7 || ti.Shape[1] > 100_000)
                throw new KeditException($"{p}: tensor trace is missing or not [{count},steps,7]");
            int steps = (int)ti.Shape[1];
            float[] z = f.ReadFloat32("z"), init = f.ReadFloat32("target_init"), delta = f.ReadFloat32("delta"), grad0 = f.ReadFloat32("grad0");
            double[] trace = f.ReadFloat64("trace");
            long[] lengths = f.ReadInt64("trace_length");
            var runs = new ZResult[count];
            for (int j = 0; j < count; j++)
            {
                if (lengths[j] < 1 || lengths[j] > steps) throw new KeditException($"{p}: trace_length[{j}] is {lengths[j]}; expected 1..{steps}");
                var t = Enumerable.Range(0, (int)lengths[j]).Select(s =>
                {
                    var v = trace.AsSpan((int)(((long)j * steps + s) * 7), 7);
                    return new ZStep((int)v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
                }).ToList();
                float[] Row(float[] a) => a.AsSpan(j * hidden, hidden).ToArray();
                runs[j] = new ZResult(Row(z), Row(init), Row(delta), Row(grad0), t);
                if (runs[j].Z.Any(x => !float.IsFinite(x))) throw new KeditException($"{p}: tensor z row {j} is not finite");
            }
            loaded.Add((p, shard, first, runs, fingerprints));
        }
        int n = loaded[0].Shard.Count;
        foreach (var x in loaded.Skip(1))
            if (x.Shard.Count != n) throw new KeditException($"{x.Path}: shard {x.Shard} of {x.Shard.Count}, while {loaded[0].Path} is shard {loaded[0].Shard} of {n}");
        var dup = loaded.GroupBy(x => x.Shard.Index).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new KeditException($"targets shard {dup.Key}/{n} given twice: {string.Join(" and ", dup.Select(x => x.Path))}");
        var missing = Enumerable.Range(0, n).Except(loaded.Select(x => x.Shard.Index)).ToList();
        if (missing.Count > 0) throw new KeditException($"targets shard{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(20))} of {n} missing (given: {string.Join(", ", loaded.Select(x => $"{x.Path} = {x.Shard}"))})");
        var all = new List<ZResult>();
        foreach (var x in loaded.OrderBy(x => x.Shard.Index))
        {
            if (x.First != all.Count) throw new KeditException($"{x.Path}: starts at request {x.First}; the shards before it end at {all.Count}");
            for (int j = 0; j < x.Runs.Length; j++)
                if (x.Fingerprints[j] != Fingerprint(requests[x.First + j]))
                    throw new KeditException($"{x.Path}: the z of request {x.First + j} was made for other token rows (templates, tokenizer or request text differ)");
            all.AddRange(x.Runs);
        }
        if (all.Count != requests.Count) throw new KeditException($"the targets parts cover {all.Count} of the {requests.Count} requests");
        return all;
    }

    static string Sha(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes))[..20].ToLowerInvariant();
}
