using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kedit.Api;
using Kedit.Cli;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace Kedit.Tests.Api;

/// <summary>
/// `kedit serve` as a user starts it: `--model DIR` alone (editing from the model's hparams.json and cached
/// statistics, or refused with 409), `--state` across restarts, and the service's contract: JSON 404/405,
/// unknown fields refused, /score, sampling, /openapi.json and /metrics. Every call goes through
/// <see cref="ServeClient"/>, which checks it against the OpenAPI document.
/// </summary>
public class ServeDefaultsTests(ApiFixture fx) : IClassFixture<ApiFixture>
{
    const string Gen = """{"prompt": "The home of Tom", "max_new_tokens": 4}""";
    const string Edited = " Oslo Oslo Oslo Oslo"; // the fixture's MEMIT edit (ServeCommandTests)

    /// <summary>`kedit serve ARGS --port 0` on a thread until disposed; its URL read from what it prints.</summary>
    sealed class RunningServe : IAsyncDisposable
    {
        readonly CancellationTokenSource _stop = new();
        readonly StringWriter _out = new(), _err = new();
        readonly TextWriter _stdout, _stderr;
        readonly Task<int> _run;
        public ServeClient Client { get; }
        public string Stdout => Read(_stdout, _out);
        string Stderr => Read(_stderr, _err);

        // TextWriter.Synchronized locks each write on the wrapper; reading the StringWriter under the same lock keeps a
        // read from racing a write of the server's threads (StringBuilder.ToString mid-append throws).
        static string Read(TextWriter synced, StringWriter inner) { lock (synced) return inner.ToString(); }

        public RunningServe(params string[] args)
        {
            _stdout = TextWriter.Synchronized(_out);
            _stderr = TextWriter.Synchronized(_err);
            _run = Task.Run(() => ServeCommand.Run([.. args, "--port", "0"], _stdout, _stderr, _stop.Token));
            var deadline = DateTime.UtcNow.AddSeconds(120);
            Match m;
            while (!(m = Regex.Match(Stdout, @"listening on (http://\S+)")).Success)
            {
                if (_run.IsCompleted) throw new InvalidOperationException($"serve exited with {_run.Result}:\n{Stderr}");
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"serve did not start in 120 s:\n{Stderr}");
                Thread.Sleep(20);
            }
            Client = new ServeClient(new Uri(m.Groups[1].Value));
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            _stop.Cancel();
            Assert.Equal(0, await _run);
        }
    }

    /// <summary>A copy of the gpt2 fixture with the MEMIT hparams as its hparams.json (the fixture's own is not a kedit hparams file).</summary>
    string ModelWithHParams()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-serve-model-").FullName;
        // A fresh modification time: the statistics cache keys a model by its files' names, sizes and times, and a copy
        // keeping the fixture's would find the statistics other tests cached for the fixture.
        var now = DateTime.UtcNow;
        foreach (var f in Directory.GetFiles(ApiFixture.ModelDir))
        {
            string to = Path.Combine(dir, Path.GetFileName(f));
            File.Copy(f, to);
            File.SetLastWriteTimeUtc(to, now);
        }
        File.Copy(ApiFixture.Data("memit.json"), Path.Combine(dir, "hparams.json"), overwrite: true);
        return dir;
    }

    [Fact]
    public async Task ModelAloneStartsGeneratesAndScoresAndRefusesEditsWith409SayingWhatIsMissing()
    {
        string before;
        double nll;
        using (var editor = fx.Editor(EditMethod.Memit, "memit.json")) { before = editor.Generate("The home of Tom", 4); nll = editor.Score("The home of Tom", " Oslo"); }

        // The fixture's hparams.json is the generator's, not a kedit file: serving starts, edits say why they cannot run.
        await using (var serve = new RunningServe("--model", ApiFixture.ModelDir))
        {
            var http = serve.Client;
            var (status, body) = await http.Send(HttpMethod.Post, "/generate", Gen);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(before, (string)body["text"]!);
            (status, body) = await http.Send(HttpMethod.Post, "/score", """{"prompt": "The home of Tom", "candidate": " Oslo"}""");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(nll, (double)body["nll"]!);
            (status, body) = await http.Send(HttpMethod.Post, "/edits", $$"""{"requests": {{File.ReadAllText(ApiFixture.Data("requests.json"))}}}""");
            Assert.Equal(HttpStatusCode.Conflict, status);
            Assert.Contains("hparams.json does not fit memit", (string)body["error"]!);
            (status, body) = await http.Send(HttpMethod.Get, "/health");
            Assert.False((bool)body["editing"]!["available"]!);
            Assert.Contains("edits are refused (409)", serve.Stdout);
        }

        // With a kedit hparams.json but no statistics cached for this model: 409 naming the statistics and how to make them.
        string model = ModelWithHParams();
        string state = Directory.CreateTempSubdirectory("kedit-serve-state-").FullName;
        try
        {
            await using (var serve = new RunningServe("--model", model))
            {
                var (status, body) = await serve.Client.Send(HttpMethod.Post, "/edits", $$"""{"requests": {{File.ReadAllText(ApiFixture.Data("requests.json"))}}}""");
                Assert.Equal(HttpStatusCode.Conflict, status);
                string error = (string)body["error"]!;
                Assert.Contains("key statistics of layers 1,2", error);
                Assert.Contains("kedit stats --model", error);
            }

            // Statistics computed once for this model land in the cache: serve finds them, and editing works from --model alone.
            using (var m = Transformer.Load(model))
                KeyStatistics.ComputeOrLoad(m, model, [1, 2], ApiFixture.Data("corpus.jsonl"), null, null, products: KeyProducts.Float64);
            string id;
            float[] editedLogits;
            await using (var serve = new RunningServe("--model", model, "--state", state))
            {
                Assert.Contains("editing with memit", serve.Stdout);
                var http = serve.Client;
                var (status, body) = await http.Send(HttpMethod.Post, "/edits", $$"""{"requests": {{File.ReadAllText(ApiFixture.Data("requests.json"))}}}""");
                Assert.Equal(HttpStatusCode.OK, status);
                id = (string)body["id"]!;
                (_, body) = await http.Send(HttpMethod.Post, "/generate", Gen);
                Assert.Equal(Edited, (string)body["text"]!);
                (_, body) = await http.Send(HttpMethod.Get, "/health");
                Assert.Equal(Path.GetFullPath(model + "/hparams.json"), (string)body["editing"]!["hparams"]!);
                Assert.StartsWith(KeyStatistics.CacheDirectory(), (string)body["editing"]!["stats"]!);
            }
            // The same edit through the API with the same statistics: what a restart must reproduce.
            using (var editor = KnowledgeEditor.Load(model, new EditorOptions { Method = EditMethod.Memit, UseModelDefaults = true }))
            {
                editor.ApplyEdits(fx.Requests);
                editedLogits = ApiFixture.Logits(editor.Model);
            }

            // A restart with the same --state replays the edit: same id, same generation, same weights bit for bit.
            await using (var serve = new RunningServe("--model", model, "--state", state))
            {
                Assert.Contains("(1 replayed)", serve.Stdout);
                var http = serve.Client;
                var (_, body) = await http.Send(HttpMethod.Get, "/edits");
                Assert.Equal(id, (string)Assert.Single(body["edits"]!.AsArray())!["id"]!);
                (_, body) = await http.Send(HttpMethod.Post, "/generate", Gen);
                Assert.Equal(Edited, (string)body["text"]!);
                (_, body) = await http.Send(HttpMethod.Get, "/health");
                Assert.Null(body["editing"]!["replay_warning"]);
                var (status, _) = await http.Send(HttpMethod.Delete, $"/edits/{id}");
                Assert.Equal(HttpStatusCode.OK, status);
            }

            // The rollback was kept too: the next start serves the original model, and new ids do not reuse e1.
            await using (var serve = new RunningServe("--model", model, "--state", state))
            {
                var http = serve.Client;
                var (_, body) = await http.Send(HttpMethod.Get, "/edits");
                Assert.Empty(body["edits"]!.AsArray());
                (_, body) = await http.Send(HttpMethod.Post, "/generate", Gen);
                Assert.Equal(before, (string)body["text"]!);
            }
            using (var editor = KnowledgeEditor.Load(model, new EditorOptions { Method = EditMethod.Memit, UseModelDefaults = true, StateDirectory = state }))
            {
                var again = editor.ApplyEdits(fx.Requests);
                Assert.NotEqual(id, again.Id);
                ApiFixture.AssertBitwiseEqual(editedLogits, ApiFixture.Logits(editor.Model), "logits after the same edit");
            }
            using (var editor = KnowledgeEditor.Load(model, new EditorOptions { Method = EditMethod.Memit, UseModelDefaults = true, StateDirectory = state }))
                ApiFixture.AssertBitwiseEqual(editedLogits, ApiFixture.Logits(editor.Model), "logits after a replay of the kept state");

            // A state kept for another method is refused in one line naming the field.
            var err = new StringWriter();
            Assert.Equal(1, ServeCommand.Run(["--model", model, "--method", "d4s", "--hparams", ApiFixture.Data("d4s.json"), "--state", state], TextWriter.Null, err));
            Assert.Contains("field 'method' is memit", err.ToString());
            Assert.Single(err.ToString().Trim().Split('\n'));
        }
        finally
        {
            Directory.Delete(model, true);
            Directory.Delete(state, true);
        }
    }

    [Fact]
    public async Task ContractJson404And405UnknownFieldsSamplingScoreOpenApiAndMetrics()
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        await using var app = ServeCommand.Build(editor, 0, new JsonLog(TextWriter.Null));
        await app.StartAsync();
        using var http = new ServeClient(new Uri(ServeCommand.BoundUrl(app)));

        // Every route the service maps is in the document, and every documented route is mapped.
        var doc = ServeApi.Document();
        var mapped = app.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.HttpMethodMetadata>()!.HttpMethods.Select(m => $"{m.ToLowerInvariant()} {e.RoutePattern.RawText}"))
            .Order().ToList();
        var documented = doc["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Select(m => $"{m.Key} {p.Key}")).Order().ToList();
        Assert.Equal(documented, mapped);
        var (status, body) = await http.Send(HttpMethod.Get, "/openapi.json");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(doc.ToJsonString(), body.ToJsonString());
        Assert.StartsWith("3.", (string)body["openapi"]!);

        (status, body) = await http.Send(HttpMethod.Get, "/nowhere");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains("/nowhere", (string)body["error"]!);
        (status, body) = await http.Send(HttpMethod.Put, "/generate", Gen);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, status);
        Assert.Contains("POST", (string)body["error"]!);
        (status, body) = await http.Send(HttpMethod.Post, "/generate", """{"prompt": "a", "temprature": 0.5}""", validate: false);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'temprature'", (string)body["error"]!);
        (status, body) = await http.Send(HttpMethod.Post, "/generate", """{"prompt": "a", "seed": 3}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'seed'", (string)body["error"]!);

        // Sampling over HTTP is the API's sampling: same seed, same text; the expected text drawn in-process.
        var options = new GenerationOptions { MaxNewTokens = 8, Temperature = 1.5f, TopK = 50, Seed = 7 };
        string expected = editor.Generate("The home of Tom", options);
        const string sampled = """{"prompt": "The home of Tom", "max_new_tokens": 8, "temperature": 1.5, "top_k": 50, "seed": 7}""";
        (status, body) = await http.Send(HttpMethod.Post, "/generate", sampled);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(expected, (string)body["text"]!);
        Assert.NotEqual(editor.Generate("The home of Tom", 8), expected);  // seed 7 at T=1.5 leaves the greedy path
        (_, body) = await http.Send(HttpMethod.Post, "/generate", sampled.Replace("\"seed\": 7", "\"seed\": 8"));
        Assert.Equal(editor.Generate("The home of Tom", options with { Seed = 8 }), (string)body["text"]!);

        (status, body) = await http.Send(HttpMethod.Post, "/score", """{"prompt": "The home of Tom", "candidate": " Berlin"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(editor.Score("The home of Tom", " Berlin"), (double)body["nll"]!);
        (status, body) = await http.Send(HttpMethod.Post, "/score", """{"prompt": "The home of Tom"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'candidate'", (string)body["error"]!);

        // Metrics: the counts of what was just asked, and a histogram per timed operation.
        string text = await http.Text("/metrics");
        double Metric(string series) =>
            double.Parse(Regex.Match(text, "^" + Regex.Escape(series) + @" (\S+)$", RegexOptions.Multiline) is { Success: true } m ? m.Groups[1].Value
                : throw new Xunit.Sdk.XunitException($"no series {series} in:\n{text}"), CultureInfo.InvariantCulture);
        Assert.Equal(2, Metric("kedit_http_requests_total{method=\"POST\",route=\"/generate\",status=\"400\"}"));
        Assert.Equal(2, Metric("kedit_http_requests_total{method=\"POST\",route=\"/generate\",status=\"200\"}"));
        Assert.Equal(1, Metric("kedit_http_requests_total{method=\"GET\",route=\"(unmatched)\",status=\"404\"}"));
        Assert.Equal(1, Metric("kedit_http_requests_total{method=\"GET\",route=\"/openapi.json\",status=\"200\"}"));
        Assert.Equal(4, Metric("kedit_request_duration_seconds_count{operation=\"generate\"}"));
        Assert.Equal(4, Metric("kedit_request_duration_seconds_bucket{operation=\"generate\",le=\"+Inf\"}"));
        Assert.Equal(0, Metric("kedit_request_duration_seconds_count{operation=\"edit\"}"));
        var buckets = ServeMetrics.Buckets.Select(b => Metric($"kedit_request_duration_seconds_bucket{{operation=\"generate\",le=\"{b.ToString("R", CultureInfo.InvariantCulture)}\"}}")).ToList();
        Assert.True(buckets.Zip(buckets.Skip(1)).All(p => p.First <= p.Second), "histogram buckets must be cumulative");
        Assert.True(Metric("kedit_request_duration_seconds_sum{operation=\"generate\"}") > 0);
        // Every line is a comment or "name{labels} value" (the exposition format).
        Assert.All(text.TrimEnd('\n').Split('\n'), l => Assert.Matches(@"^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? \S+)$", l));
        await app.StopAsync();
    }

    [Fact]
    public async Task AsyncMethodsEditGenerateAndRollBack()
    {
        using var original = Transformer.Load(ApiFixture.ModelDir);
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        string before = await editor.GenerateAsync("The home of Tom", 4);
        var record = await editor.ApplyEditsAsync(fx.Requests);
        Assert.Equal(Edited, await editor.GenerateAsync("The home of Tom", 4));
        Assert.True(await editor.ScoreAsync("The home of Tom", " Oslo") < editor.Score("The home of Tom", " Berlin"));
        await editor.RollbackAsync(record.Id);
        Assert.Equal(before, await editor.GenerateAsync("The home of Tom", 4));
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(original), ApiFixture.Logits(editor.Model), "logits after RollbackAsync");

        // A cancelled token: nothing applied.
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => editor.ApplyEditsAsync(fx.Requests, cts.Token));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => editor.GenerateAsync("The home of Tom", 4, cts.Token));
        Assert.Empty(editor.ListEdits());
        // A generation-only editor refuses edits asynchronously too, with the reason.
        using var readOnly = KnowledgeEditor.Load(ApiFixture.ModelDir, new EditorOptions { Method = EditMethod.Memit, UseModelDefaults = true });
        var e = await Assert.ThrowsAsync<EditingUnavailableException>(() => readOnly.ApplyEditsAsync(fx.Requests));
        Assert.Contains("hparams.json", e.Message);
    }
}

/// <summary>An HTTP client for the service that checks every call against its OpenAPI document: the route and method, each body field, each answered field.</summary>
public sealed class ServeClient(Uri url) : IDisposable
{
    readonly HttpClient _http = new() { BaseAddress = url, Timeout = TimeSpan.FromSeconds(120) };
    static readonly JsonObject Doc = ServeApi.Document();

    public async Task<(HttpStatusCode Status, JsonNode Body)> Send(HttpMethod method, string path, string? body = null, bool validate = true)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body != null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var res = await _http.SendAsync(req);
        string text = await res.Content.ReadAsStringAsync();
        var json = JsonNode.Parse(text)!;
        var op = Operation(method, path);
        if (op != null && validate)
        {
            if (body != null && JsonNode.Parse(body) is JsonObject sent)
                foreach (var (field, _) in sent)
                    Assert.True(op["requestBody"]?["content"]?["application/json"]?["schema"]?["properties"]?[field] != null, $"{method} {path}: field '{field}' is not in /openapi.json");
        }
        if (op != null && json is JsonObject got)
        {
            string code = ((int)res.StatusCode).ToString(CultureInfo.InvariantCulture);
            var response = op["responses"]![code];
            Assert.True(response != null, $"{method} {path}: status {code} is not documented in /openapi.json");
            var schema = response!["content"]!["application/json"]!["schema"]!;
            if (schema["$ref"] is JsonNode r) schema = Doc["components"]!["schemas"]![((string)r!).Split('/')[^1]]!;
            if (schema["properties"] is JsonObject props)
                foreach (var (field, _) in got)
                    Assert.True(props.ContainsKey(field), $"{method} {path} answered field '{field}', which /openapi.json does not describe");
        }
        return (res.StatusCode, json);
    }

    public Task<string> Text(string path) => _http.GetStringAsync(path);

    /// <summary>The document's operation for a concrete path (templates such as /edits/{id} matched), or null for an undocumented one.</summary>
    static JsonNode? Operation(HttpMethod method, string path)
    {
        foreach (var (template, item) in Doc["paths"]!.AsObject())
            if (Regex.IsMatch(path, "^" + Regex.Replace(Regex.Escape(template), @"\\\{\w+}", "[^/]+") + "$"))
                return item![method.Method.ToLowerInvariant()];
        return null;
    }

    public void Dispose() => _http.Dispose();
}
