using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Kedit.Cli;

/// <summary>
/// The routes of <c>kedit serve</c> with their request and response fields: the one description both the
/// OpenAPI 3 document (<c>GET /openapi.json</c>) and the service's refusal of unknown body fields read.
/// </summary>
public static class ServeApi
{
    /// <summary>A field of a JSON object: its name, JSON schema and whether it is required.</summary>
    sealed record Field(string Name, JsonObject Schema, bool Required = false);

    /// <summary>A route: method, path (OpenAPI template), summary, body fields (null: no body), 200 response fields and other statuses.</summary>
    sealed record Route(string Method, string Path, string Summary, Field[]? Request, Field[] Response, int[] Errors, string? ResponseType = null);

    static JsonObject T(string type, string description, JsonObject? extra = null)
    {
        var o = new JsonObject { ["type"] = type, ["description"] = description };
        if (extra != null) foreach (var (k, v) in extra) o[k] = v?.DeepClone();
        return o;
    }

    static JsonObject Ref(string name) => new() { ["$ref"] = $"#/components/schemas/{name}" };

    static readonly Field[] EditRecordFields =
    [
        new("id", T("string", "the edit's id, for DELETE /edits/{id}"), true),
        new("applied_at", T("string", "when the edit was published (ISO 8601)", new JsonObject { ["format"] = "date-time" }), true),
        new("seconds", T("number", "wall time of the edit's computation"), true),
        new("requests", new JsonObject { ["type"] = "array", ["items"] = Ref("EditRequestSummary") }, true),
    ];

    static readonly Route[] Routes =
    [
        new("get", "/health", "Liveness, the editing setup and the editor's memory", null,
        [
            new("status", T("string", "\"ok\""), true),
            new("method", T("string", "the editing method (rome, memit, d4s, alphaedit)"), true),
            new("edits", T("integer", "edits applied now"), true),
            new("editing", Ref("Editing"), true),
            new("memory_bytes", Ref("Memory"), true),
        ], []),
        new("post", "/generate", "Continuation of a prompt: greedy, or sampled with a temperature (and top_k, seed)",
        [
            new("prompt", T("string", "the text to continue"), true),
            new("max_new_tokens", T("integer", "tokens to generate (default 32)", new JsonObject { ["minimum"] = 0, ["maximum"] = ServeCommand.MaxNewTokensLimit })),
            new("temperature", T("number", "sampling temperature; absent: greedy decoding", new JsonObject { ["minimum"] = 0, ["maximum"] = 100 })),
            new("top_k", T("integer", "sample among the k likeliest tokens (0: all)", new JsonObject { ["minimum"] = 0 })),
            new("seed", T("integer", "random seed of sampling (needs temperature); the same seed gives the same text on the same weights")),
            new("timeout_s", T("number", "time budget in seconds; past it 504 and no text", new JsonObject { ["minimum"] = 0.001, ["maximum"] = 3600 })),
        ],
        [new("text", T("string", "the new text only, without the prompt"), true)], [400, 504]),
        new("post", "/score", "Mean negative log-likelihood of a candidate continuation (as the C ABI's kedit_score)",
        [
            new("prompt", T("string", "the context"), true),
            new("candidate", T("string", "the continuation scored after the prompt"), true),
        ],
        [new("nll", T("number", "mean negative log-likelihood in nats per candidate token; lower is likelier"), true)], [400]),
        new("post", "/edits", "Applies edit requests as one edit and publishes the new weights atomically",
        [
            new("requests", new JsonObject
            {
                ["description"] = "edit requests in any format kedit edit reads (plain, CounterFact, zsRE, EasyEdit): an array, or one object",
                ["oneOf"] = new JsonArray(new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "object" } }, new JsonObject { ["type"] = "object" }),
            }, true),
            new("timeout_s", T("number", "time budget in seconds; past it 504 and nothing published", new JsonObject { ["minimum"] = 0.001, ["maximum"] = 3600 })),
        ],
        [
            new("id", T("string", "the edit's id"), true),
            new("requests", T("integer", "requests in the edit"), true),
            new("seconds", T("number", "wall time of the edit"), true),
        ], [400, 409, 504]),
        new("get", "/edits", "The applied edits, oldest first", null,
        [new("edits", new JsonObject { ["type"] = "array", ["items"] = Ref("EditRecord") }, true)], []),
        new("delete", "/edits/{id}", "Rolls one edit back (the others stay applied)", null,
        [
            new("id", T("string", "the edit rolled back"), true),
            new("rolled_back", T("boolean", "true"), true),
        ], [404]),
        new("get", "/openapi.json", "This document", null, [], [], "application/json"),
        new("get", "/metrics", "Prometheus text format: request counts by route and status, latency histograms", null, [], [], "text/plain"),
    ];

    /// <summary>The body fields of a route (empty for routes without a body).</summary>
    public static IReadOnlyList<string> RequestFields(string method, string path) =>
        Routes.Single(r => r.Method == method && r.Path == path).Request?.Select(f => f.Name).ToList() ?? [];

    static JsonObject ObjectSchema(IEnumerable<Field> fields)
    {
        var list = fields.ToList();
        var o = new JsonObject
        {
            ["type"] = "object",
            ["additionalProperties"] = false,
            ["properties"] = new JsonObject(list.Select(f => KeyValuePair.Create(f.Name, (JsonNode?)f.Schema.DeepClone()))),
        };
        if (list.Any(f => f.Required)) o["required"] = new JsonArray(list.Where(f => f.Required).Select(f => (JsonNode)f.Name).ToArray());
        return o;
    }

    static readonly Dictionary<int, string> StatusText = new()
    {
        [400] = "bad request: the error names the field", [404] = "no such route or edit", [405] = "method not allowed on this route",
        [409] = "editing is unavailable: the error says which hparams or statistics are missing", [413] = "body too large",
        [504] = "the time budget ran out",
    };

    /// <summary>The OpenAPI 3.0 document of the service.</summary>
    public static JsonObject Document()
    {
        var paths = new JsonObject();
        foreach (var r in Routes)
        {
            var op = new JsonObject { ["summary"] = r.Summary, ["operationId"] = r.Method + r.Path.Replace("/", "_").Replace("{", "").Replace("}", "").Replace(".", "_") };
            if (r.Path.Contains("{id}"))
                op["parameters"] = new JsonArray(new JsonObject { ["name"] = "id", ["in"] = "path", ["required"] = true, ["schema"] = new JsonObject { ["type"] = "string" } });
            if (r.Request != null)
                op["requestBody"] = new JsonObject { ["required"] = true, ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = ObjectSchema(r.Request) } } };
            JsonObject schema = r.ResponseType == "text/plain" ? new JsonObject { ["type"] = "string" }
                : r.ResponseType != null ? new JsonObject { ["type"] = "object" } : ObjectSchema(r.Response);
            var responses = new JsonObject
            {
                ["200"] = new JsonObject { ["description"] = "success", ["content"] = new JsonObject { [r.ResponseType ?? "application/json"] = new JsonObject { ["schema"] = schema } } },
            };
            foreach (int s in r.Errors.Concat(r.Request != null ? [405, 413] : [405]).Distinct().Order())
                responses[s.ToString(CultureInfo.InvariantCulture)] = new JsonObject
                {
                    ["description"] = StatusText[s],
                    ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = Ref("Error") } },
                };
            op["responses"] = responses;
            if (!paths.ContainsKey(r.Path)) paths[r.Path] = new JsonObject();
            paths[r.Path]![r.Method] = op;
        }
        return new JsonObject
        {
            ["openapi"] = "3.0.3",
            ["info"] = new JsonObject { ["title"] = "kedit serve", ["version"] = "1", ["description"] = "Generation, scoring and knowledge edits over one loaded model, on the loopback interface." },
            ["paths"] = paths,
            ["components"] = new JsonObject
            {
                ["schemas"] = new JsonObject
                {
                    ["Error"] = ObjectSchema([new("error", T("string", "one line naming the cause (the field, the missing file)"), true)]),
                    ["EditRecord"] = ObjectSchema(EditRecordFields),
                    ["EditRequestSummary"] = ObjectSchema(
                    [
                        new("prompt", T("string", "the prompt template with {} for the subject"), true),
                        new("subject", T("string", "the subject"), true),
                        new("target_new", T("string", "the new object"), true),
                    ]),
                    ["Editing"] = ObjectSchema(
                    [
                        new("available", T("boolean", "whether POST /edits can edit"), true),
                        new("reason", T("string", "why edits are refused (null when available)", new JsonObject { ["nullable"] = true })),
                        new("hparams", T("string", "the hparams file used", new JsonObject { ["nullable"] = true })),
                        new("stats", T("string", "the key statistics file used", new JsonObject { ["nullable"] = true })),
                        new("state", T("string", "the --state folder the edits are kept in", new JsonObject { ["nullable"] = true })),
                        new("replay_warning", T("string", "set when the kept edits did not replay bit for bit", new JsonObject { ["nullable"] = true })),
                    ]),
                    ["Memory"] = ObjectSchema(new[] { "model_weights", "edited_layer_copies", "statistics", "edit_state", "editor_total", "managed_heap", "working_set" }
                        .Select(n => new Field(n, T("integer", "bytes"), true))),
                },
            },
        };
    }
}

/// <summary>
/// Request counts and latency histograms of <c>kedit serve</c>, rendered in the Prometheus text exposition format
/// (version 0.0.4) by <c>GET /metrics</c>.
/// </summary>
public sealed class ServeMetrics
{
    /// <summary>Histogram upper bounds in seconds: generation takes milliseconds to seconds, edits seconds to minutes.</summary>
    public static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    /// <summary>The operations timed: which route and method each is.</summary>
    static readonly Dictionary<(string Method, string Route), string> Operations = new()
    {
        [("POST", "/generate")] = "generate", [("POST", "/score")] = "score",
        [("POST", "/edits")] = "edit", [("DELETE", "/edits/{id}")] = "rollback",
    };

    readonly ConcurrentDictionary<(string Method, string Route, int Status), long> _counts = new();
    readonly object _gate = new();
    readonly Dictionary<string, (long[] Buckets, double Sum, long Count)> _latency = new();

    public void Record(string method, string route, int status, double seconds)
    {
        _counts.AddOrUpdate((method, route, status), 1, (_, n) => n + 1);
        if (!Operations.TryGetValue((method, route), out var op)) return;
        lock (_gate)
        {
            var (counts, sum, count) = _latency.TryGetValue(op, out var x) ? x : (new long[Buckets.Length], 0.0, 0L);
            for (int i = 0; i < Buckets.Length; i++) if (seconds <= Buckets[i]) counts[i]++;
            _latency[op] = (counts, sum + seconds, count + 1);
        }
    }

    public string Render()
    {
        static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append("# HELP kedit_http_requests_total HTTP requests answered, by method, route and status.\n");
        sb.Append("# TYPE kedit_http_requests_total counter\n");
        foreach (var ((method, route, status), n) in _counts.OrderBy(k => k.Key.Route, StringComparer.Ordinal).ThenBy(k => k.Key.Method).ThenBy(k => k.Key.Status))
            sb.Append($"kedit_http_requests_total{{method=\"{method}\",route=\"{Escape(route)}\",status=\"{status}\"}} {n}\n");
        sb.Append("# HELP kedit_request_duration_seconds Latency of generate, score, edit and rollback requests.\n");
        sb.Append("# TYPE kedit_request_duration_seconds histogram\n");
        lock (_gate)
            foreach (var op in Operations.Values)
            {
                var (buckets, sum, count) = _latency.TryGetValue(op, out var h) ? h : (new long[Buckets.Length], 0.0, 0L);
                for (int i = 0; i < Buckets.Length; i++)
                    sb.Append($"kedit_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{F(Buckets[i])}\"}} {buckets[i]}\n");
                sb.Append($"kedit_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}\n");
                sb.Append($"kedit_request_duration_seconds_sum{{operation=\"{op}\"}} {F(sum)}\n");
                sb.Append($"kedit_request_duration_seconds_count{{operation=\"{op}\"}} {count}\n");
            }
        return sb.ToString();
    }

    static string Escape(string s) => s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
}
