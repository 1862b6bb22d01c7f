using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Api;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Kedit.Cli;

/// <summary>
/// <c>kedit serve</c>: a <see cref="KnowledgeEditor"/> behind a small HTTP/JSON service on the
/// loopback interface only (it has no authentication, so it must not be reachable from elsewhere).
/// </summary>
public static class ServeCommand
{
    /// <summary>Largest request body accepted (bytes); larger ones get 413.</summary>
    public const long MaxBodyBytes = 1 << 20;
    /// <summary>Largest <c>max_new_tokens</c> accepted by <c>POST /generate</c>.</summary>
    public const int MaxNewTokensLimit = 2048;

    /// <summary>Runs the service until Ctrl+C. Exit codes: 0 stopped cleanly, 1 error, 2 usage.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, stdout, stderr, CancellationToken.None);

    /// <summary>Runs the service until Ctrl+C or until <paramref name="stop"/> fires (the tests' way to stop it).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        try
        {
            var a = new Args("serve", args, new HashSet<string> { "force" });
            string model = a.ModelDir();
            EditMethod method;
            try { method = EditorOptions.ParseMethod(a.Opt("method") ?? "memit"); }
            catch (KeditException e) { throw new UsageException($"serve: --method: {e.Message}"); }
            var options = new EditorOptions
            {
                // MEMIT by default: the batch method whose hparams the anchors' files and a model's hparams.json most often hold.
                Method = method,
                HParamsPath = a.Opt("hparams"),
                StatsPath = a.Opt("stats"),
                StateDirectory = a.Opt("state"),
                UseModelDefaults = true,
                Prune = a.Opt("prune") is string p ? Prune.ParseMode(p) : null,
                ServeWithOnnxRuntime = (a.Opt("device") ?? "cpu") switch
                {
                    "cpu" => false,
                    "ort" or "ort-cuda" => true,
                    var d => throw new UsageException($"serve: --device {d}: serve runs on cpu, ort or ort-cuda"),
                },
                OnnxRuntimeCuda = a.Opt("device") == "ort-cuda",
            };
            int port = a.Int("port", 8080);
            if (port is < 0 or > 65535) throw new UsageException($"serve: --port {port} is outside 0..65535");
            bool force = a.Flag("force");
            a.EnsureAllUsed();
            if (!force && PlannedLayers(model, options) is { } planned)
                PlanCommand.Check(model, Enum.Parse<Kedit.Editing.PlannedWork>(options.Method.ToString()), planned, false, "cpu", "serve", force);

            var log = new JsonLog(stderr);
            using var editor = KnowledgeEditor.Load(model, options);
            var app = Build(editor, port, log);
            app.StartAsync().GetAwaiter().GetResult();
            string url = BoundUrl(app);
            log.Write("info", "listening", new JsonObject
            {
                ["url"] = url, ["model"] = Path.GetFullPath(model), ["method"] = options.Method.ToString().ToLowerInvariant(),
                ["editing"] = EditingJson(editor),
            });
            if (editor.ReplayWarning != null) log.Write("warning", "state_replayed", new JsonObject { ["warning"] = editor.ReplayWarning });
            stdout.WriteLine($"kedit serve: listening on {url} (Ctrl+C to stop)");
            stdout.WriteLine(editor.EditingUnavailable is string why ? $"kedit serve: edits are refused (409): {why}"
                : $"kedit serve: editing with {editor.Method.ToString().ToLowerInvariant()}, hparams {editor.HParamsSource}" +
                  (editor.StatsSource != null ? $", statistics {editor.StatsSource}" : "") +
                  (editor.StateDirectory != null ? $"; edits kept in {editor.StateDirectory} ({editor.ListEdits().Count} replayed)" : ""));
            app.WaitForShutdownAsync(stop).GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
            log.Write("info", "stopped", new JsonObject());
            return 0;
        }
        catch (UsageException e) { stderr.WriteLine($"kedit: {e.Message}{Help.SeeAlso("serve")}"); return 2; }
        catch (KeditException e) { stderr.WriteLine($"kedit: error: {e.Message}"); return 1; }
        catch (IOException e) { stderr.WriteLine($"kedit: error: {e.Message}"); return 1; }
    }

    /// <summary>
    /// The layers the memory plan sizes: from --hparams, else from the model's own hparams.json when it suits the method;
    /// null when serve will not edit (it then holds the weights only, and the editor answers edits with 409).
    /// </summary>
    static IReadOnlyList<int>? PlannedLayers(string model, EditorOptions options)
    {
        if (options.HParamsPath != null) return HParams.Load(options.HParamsPath, options.Method).Layers;
        string own = Path.Combine(model, "hparams.json");
        if (!File.Exists(own)) return null;
        try { return HParams.Load(own, options.Method).Layers; }
        catch (KeditException) { return null; }
    }

    /// <summary>The address the started app listens on (useful with port 0).</summary>
    public static string BoundUrl(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

    static JsonObject EditingJson(KnowledgeEditor editor) => new()
    {
        ["available"] = editor.EditingUnavailable == null,
        ["reason"] = editor.EditingUnavailable,
        ["hparams"] = editor.HParamsSource,
        ["stats"] = editor.StatsSource,
        ["state"] = editor.StateDirectory,
        ["replay_warning"] = editor.ReplayWarning,
    };

    /// <summary>
    /// The service for <paramref name="editor"/> on 127.0.0.1:<paramref name="port"/> (0 = any free port),
    /// not yet started. Log lines (one JSON object each) go to <paramref name="log"/>.
    /// </summary>
    public static WebApplication Build(KnowledgeEditor editor, int port, JsonLog log)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            k.Limits.MaxRequestBodySize = MaxBodyBytes;
        });
        var app = builder.Build();
        var metrics = new ServeMetrics();

        app.Use(async (ctx, next) =>
        {
            var sw = Stopwatch.StartNew();
            try
            {
                await next(ctx);
                // Unknown routes and methods answer JSON like every other error.
                if (!ctx.Response.HasStarted && ctx.Response.StatusCode is 404 or 405)
                    await ctx.Response.WriteAsJsonAsync(new JsonObject
                    {
                        ["error"] = ctx.Response.StatusCode == 404
                            ? $"no route {ctx.Request.Path.Value} (GET /openapi.json lists them)"
                            : $"method {ctx.Request.Method} is not allowed on {ctx.Request.Path.Value} (allowed: {ctx.Response.Headers.Allow})",
                    });
            }
            catch (Exception e) when (!ctx.Response.HasStarted)
            {
                (int status, string message) = e switch
                {
                    EditingUnavailableException u => (409, $"editing is unavailable: {u.Message}"),
                    KeditException k => (400, k.Message),
                    TimeoutException t => (504, t.Message),
                    BadHttpRequestException b => (b.StatusCode, b.StatusCode == 413 ? $"body: larger than {MaxBodyBytes} bytes" : b.Message),
                    OperationCanceledException when ctx.RequestAborted.IsCancellationRequested => (499, "request aborted by the client"),
                    _ => (500, "internal error (see the server log)"),
                };
                if (status == 500) log.Write("error", "unhandled", new JsonObject { ["path"] = ctx.Request.Path.Value, ["exception"] = e.ToString() });
                ctx.Response.StatusCode = status;
                await ctx.Response.WriteAsJsonAsync(new JsonObject { ["error"] = message });
            }
            string route = (ctx.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(unmatched)";
            metrics.Record(ctx.Request.Method, route, ctx.Response.StatusCode, sw.Elapsed.TotalSeconds);
            log.Write("info", "request", new JsonObject
            {
                ["method"] = ctx.Request.Method, ["path"] = ctx.Request.Path.Value, ["status"] = ctx.Response.StatusCode,
                ["ms"] = Math.Round(sw.Elapsed.TotalMilliseconds, 1),
            });
        });

        app.MapGet("/health", () =>
        {
            var m = editor.Memory();
            return Json(new JsonObject
            {
                ["status"] = "ok", ["method"] = editor.Method.ToString().ToLowerInvariant(), ["edits"] = editor.ListEdits().Count,
                ["editing"] = EditingJson(editor),
                ["memory_bytes"] = new JsonObject
                {
                    ["model_weights"] = m.ModelWeights, ["edited_layer_copies"] = m.EditedLayerCopies, ["statistics"] = m.Statistics,
                    ["edit_state"] = m.EditState, ["editor_total"] = m.Editor, ["managed_heap"] = m.ManagedHeap, ["working_set"] = m.WorkingSet,
                },
            });
        });

        app.MapPost("/generate", async (HttpContext ctx) =>
        {
            var body = await ReadObject(ctx, "/generate");
            string prompt = RequiredString(body, "prompt");
            bool sampled = body["temperature"] is not null;
            if (body["seed"] is not null && !sampled) throw new KeditException("field 'seed': only makes sense with 'temperature' (without one, decoding is greedy)");
            var options = new Kedit.Models.GenerationOptions
            {
                MaxNewTokens = OptionalInt(body, "max_new_tokens", 32, 0, MaxNewTokensLimit),
                Temperature = (float)OptionalNumber(body, "temperature", 0, 0, 100),
                TopK = OptionalInt(body, "top_k", 0, 0, editor.Model.Config.VocabSize),
                Seed = OptionalInt(body, "seed", 0, int.MinValue, int.MaxValue),
            };
            var budget = OptionalSeconds(body, "timeout_s");
            var aborted = ctx.RequestAborted;
            string text = await (budget is TimeSpan b ? Task.Run(() => editor.Generate(prompt, options, b, aborted), aborted) : editor.GenerateAsync(prompt, options, aborted));
            return Json(new JsonObject { ["text"] = text });
        });

        app.MapPost("/score", async (HttpContext ctx) =>
        {
            var body = await ReadObject(ctx, "/score");
            string prompt = RequiredString(body, "prompt"), candidate = RequiredString(body, "candidate");
            double nll = await editor.ScoreAsync(prompt, candidate, ctx.RequestAborted);
            return Json(new JsonObject { ["nll"] = nll });
        });

        app.MapPost("/edits", async (HttpContext ctx) =>
        {
            var body = await ReadObject(ctx, "/edits");
            if (body["requests"] is not JsonNode requests)
                throw new KeditException("field 'requests': required (an array of edit requests, or one request object)");
            var parsed = RequestLoader.Parse(requests.ToJsonString(), "requests");
            var budget = OptionalSeconds(body, "timeout_s");
            var record = await (budget is TimeSpan b ? Task.Run(() => editor.ApplyEdits(parsed, b, ctx.RequestAborted), ctx.RequestAborted) : editor.ApplyEditsAsync(parsed, ctx.RequestAborted));
            log.Write("info", "edit_applied", new JsonObject { ["id"] = record.Id, ["requests"] = record.Requests.Count, ["seconds"] = Math.Round(record.Seconds, 3) });
            return Json(new JsonObject { ["id"] = record.Id, ["requests"] = record.Requests.Count, ["seconds"] = record.Seconds });
        });

        app.MapGet("/edits", () => Json(new JsonObject
        {
            ["edits"] = new JsonArray(editor.ListEdits().Select(r => (JsonNode)r.ToJson()).ToArray()),
        }));

        app.MapDelete("/edits/{id}", async (string id, HttpContext ctx) =>
        {
            if (!editor.ListEdits().Any(r => r.Id == id))
                return Json(new JsonObject { ["error"] = $"edit id '{id}': no such edit" }, 404);
            await editor.RollbackAsync(id, ctx.RequestAborted);
            log.Write("info", "edit_rolled_back", new JsonObject { ["id"] = id });
            return Json(new JsonObject { ["id"] = id, ["rolled_back"] = true });
        });

        app.MapGet("/openapi.json", () => Json(ServeApi.Document()));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"));

        return app;
    }

    static IResult Json(JsonObject o, int status = 200) => Results.Text(o.ToJsonString(), "application/json", statusCode: status);

    /// <summary>The body as a JSON object whose fields are all fields of <paramref name="route"/> (per <see cref="ServeApi"/>).</summary>
    static async Task<JsonObject> ReadObject(HttpContext ctx, string route)
    {
        using var reader = new StreamReader(ctx.Request.Body);
        string text = await reader.ReadToEndAsync(ctx.RequestAborted);
        JsonNode? node;
        using (var doc = Kedit.IO.StrictJson.Parse(text, "body")) node = JsonNode.Parse(doc.RootElement.GetRawText());
        var o = node as JsonObject ?? throw new KeditException("body: expected a JSON object");
        var known = ServeApi.RequestFields("post", route);
        foreach (var (name, _) in o)
            if (!known.Contains(name))
                throw new KeditException($"field '{Kedit.IO.StrictJson.Printable(name)}': not a field of POST {route} (its fields: {string.Join(", ", known)})");
        return o;
    }

    static string RequiredString(JsonObject o, string field)
    {
        if (o[field] is not JsonValue v || !v.TryGetValue(out string? s)) throw new KeditException($"field '{field}': required, a string");
        if (s.Length == 0) throw new KeditException($"field '{field}': must not be empty");
        return s;
    }

    /// <summary>An optional number of seconds (a time budget) from a millisecond to an hour: a shorter one rounds to no time at all.</summary>
    static TimeSpan? OptionalSeconds(JsonObject o, string field)
    {
        if (!o.ContainsKey(field) || o[field] is null) return null;
        if (o[field] is not JsonValue v || !v.TryGetValue(out double x)) throw new KeditException($"field '{field}': expected a number of seconds");
        if (!(x >= 0.001 && x <= 3600)) throw new KeditException($"field '{field}': {x} is outside [0.001, 3600] seconds");
        return TimeSpan.FromSeconds(x);
    }

    static double OptionalNumber(JsonObject o, string field, double dflt, double min, double max)
    {
        if (!o.ContainsKey(field) || o[field] is null) return dflt;
        if (o[field] is not JsonValue v || !v.TryGetValue(out double x)) throw new KeditException($"field '{field}': expected a number");
        if (!(x >= min && x <= max)) throw new KeditException($"field '{field}': {x} is outside [{min}, {max}]");
        return x;
    }

    static int OptionalInt(JsonObject o, string field, int dflt, int min, int max)
    {
        if (!o.ContainsKey(field) || o[field] is null) return dflt;
        if (o[field] is not JsonValue v || !v.TryGetValue(out int n)) throw new KeditException($"field '{field}': expected an integer");
        if (n < min || n > max) throw new KeditException($"field '{field}': {n} is outside {min}..{max}");
        return n;
    }
}

/// <summary>Structured log: one JSON object per line (ts, level, event, fields), thread-safe.</summary>
public sealed class JsonLog(TextWriter writer)
{
    readonly object _gate = new();

    /// <summary>Writes one line with <paramref name="fields"/> merged after ts / level / event.</summary>
    public void Write(string level, string evt, JsonObject fields)
    {
        var line = new JsonObject { ["ts"] = DateTimeOffset.UtcNow.ToString("O"), ["level"] = level, ["event"] = evt };
        foreach (var (k, v) in fields.ToList()) { fields.Remove(k); line[k] = v; }
        lock (_gate) { writer.WriteLine(line.ToJsonString()); writer.Flush(); }
    }
}
