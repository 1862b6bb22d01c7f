using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing.Inputs;
using Kedit.IO;

namespace Kedit.Api;

/// <summary>
/// The applied edits an editor keeps in a folder (<see cref="EditorOptions.StateDirectory"/>, <c>kedit serve --state</c>):
/// state.json lists every applied edit (id, time, requests) with the method, hparams and W0 fingerprint they were
/// computed with and a digest of the weights they gave. It is rewritten atomically after every edit and rollback,
/// before the new weights are served, so a restart replays exactly the edits that were being served.
/// </summary>
internal sealed class EditorState
{
    public const string FileName = "state.json";
    const string Kind = "kedit serve state";
    const int Version = 1;

    readonly HParams _hparams;
    readonly string _fingerprint;

    public EditorState(string directory, HParams hparams, string fingerprint)
    {
        Directory = Path.GetFullPath(directory);
        _hparams = hparams; _fingerprint = fingerprint;
        if (File.Exists(Directory)) throw new KeditException($"--state {directory}: is a file, not a folder");
        try { System.IO.Directory.CreateDirectory(Directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new KeditException($"--state {directory}: cannot create the folder ({e.Message})"); }
    }

    public string Directory { get; }
    string PathOf => Path.Combine(Directory, FileName);

    /// <summary>The kept edits (none when the folder holds no state yet), the next id and the weights digest they gave.</summary>
    public sealed record Kept(IReadOnlyList<EditRecord> Edits, int NextId, string? WeightsSha256);

    public Kept Load()
    {
        string path = PathOf;
        if (!File.Exists(path)) return new Kept([], 1, null);
        using var doc = StrictJson.ReadFile(path, "state");
        var f = new JsonFields(path);
        var o = f.Object(doc.RootElement, "(top level)");
        if (f.OptionalString(o, "kind") != Kind) throw f.Fail("kind", $"is not \"{Kind}\" (not a kedit serve state file)");
        int version = f.RequiredInt(o, "version");
        if (version != Version) throw f.Fail("version", $"is {version}; this kedit reads version {Version}");
        string method = f.RequiredString(o, "method");
        string want = _hparams.Method.ToString().ToLowerInvariant();
        if (method != want) throw f.Fail("method", $"is {method}, but this editor edits with {want}; start with --method {method}, or with another --state folder");
        if (f.RequiredString(o, "model_fingerprint") != _fingerprint)
            throw f.Fail("model_fingerprint", "differs: the edits were applied to another model (other weights in the edited layers); use another --state folder");
        string hparams = JsonNode.Parse(f.Required(o, "hparams").GetRawText())!.ToJsonString();
        if (hparams != JsonNode.Parse(_hparams.ToJson())!.ToJsonString())
            throw f.Fail("hparams", "differ from this editor's: the edits were applied with other hparams; start with those, or with another --state folder");
        int nextId = f.RequiredInt(o, "next_id");
        var edits = new List<EditRecord>();
        int i = 0;
        foreach (var e in f.Array(f.Required(o, "edits"), "edits").EnumerateArray())
        {
            string p = $"edits[{i++}]";
            f.Object(e, p);
            string id = f.RequiredString(e, "id", p);
            if (edits.Any(x => x.Id == id)) throw f.Fail(p + ".id", $"\"{id}\" appears twice");
            string at = f.RequiredString(e, "applied_at", p);
            if (!DateTimeOffset.TryParse(at, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind, out var appliedAt))
                throw f.Fail(p + ".applied_at", $"\"{at}\" is not an ISO 8601 time");
            double seconds = f.RequiredDouble(e, "seconds", p);
            var requests = RequestLoader.Parse(f.Required(e, "requests", p).GetRawText(), $"{path} {p}.requests");
            if (requests.Count == 0) throw f.Fail(p + ".requests", "is empty");
            edits.Add(new EditRecord(id, requests, appliedAt, seconds));
        }
        return new Kept(edits, nextId, f.OptionalString(o, "weights_sha256"));
    }

    /// <summary>Writes the state atomically: a reader (or a crash) sees the previous file or this one.</summary>
    public void Save(IReadOnlyList<EditRecord> edits, int nextId, string weightsSha256, string? statsSource)
    {
        var o = new JsonObject
        {
            ["tool"] = "kedit",
            ["kind"] = Kind,
            ["version"] = Version,
            ["method"] = _hparams.Method.ToString().ToLowerInvariant(),
            ["model_fingerprint"] = _fingerprint,
            ["hparams"] = JsonNode.Parse(_hparams.ToJson()),
            ["stats"] = statsSource,
            ["next_id"] = nextId,
            ["weights_sha256"] = weightsSha256,
            ["edits"] = new JsonArray(edits.Select(e => (JsonNode)new JsonObject
            {
                ["id"] = e.Id,
                ["applied_at"] = e.AppliedAt.ToString("O"),
                ["seconds"] = e.Seconds,
                ["requests"] = new JsonArray(e.Requests.Select(r => (JsonNode)RequestJson(r)).ToArray()),
            }).ToArray()),
        };
        AtomicOutput.WriteAllText(PathOf, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>A request in the plain format RequestLoader reads back (absent values left out).</summary>
    static JsonObject RequestJson(EditRequest r)
    {
        var o = new JsonObject { ["prompt"] = r.Prompt, ["subject"] = r.Subject, ["target_new"] = r.TargetNew };
        if (r.TargetTrue != null) o["target_true"] = r.TargetTrue;
        if (r.CaseId != null) o["case_id"] = r.CaseId;
        return o;
    }
}
