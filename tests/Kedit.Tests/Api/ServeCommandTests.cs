using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Kedit.Api;
using Kedit.Cli;
using Kedit.Editing.Inputs;
using Xunit;

namespace Kedit.Tests.Api;

/// <summary>`kedit serve` on a real loopback port: every endpoint, validation errors and the log.</summary>
public class ServeCommandTests(ApiFixture fx) : IClassFixture<ApiFixture>
{
    static async Task<(HttpStatusCode Status, JsonNode Body)> Send(HttpClient http, HttpMethod method, string path, string? body = null)
    {
        using var req = new HttpRequestMessage(method, path);
        if (body != null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var res = await http.SendAsync(req);
        string text = await res.Content.ReadAsStringAsync();
        return (res.StatusCode, JsonNode.Parse(text)!);
    }

    [Fact]
    public async Task ServiceAnswersEveryEndpointOnLoopback()
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        var log = new StringWriter();
        var syncedLog = TextWriter.Synchronized(log);
        await using var app = ServeCommand.Build(editor, 0, new JsonLog(syncedLog));
        await app.StartAsync();
        var url = new Uri(ServeCommand.BoundUrl(app));
        Assert.Equal("127.0.0.1", url.Host);
        using var http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };

        var (status, body) = await Send(http, HttpMethod.Get, "/health");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ok", body["status"]!.GetValue<string>());
        Assert.Equal("memit", body["method"]!.GetValue<string>());
        Assert.Equal(editor.Model.Weights.ResidentBytes, body["memory_bytes"]!["model_weights"]!.GetValue<long>());
        Assert.True(body["memory_bytes"]!["working_set"]!.GetValue<long>() > body["memory_bytes"]!["model_weights"]!.GetValue<long>());

        const string gen = """{"prompt": "The home of Tom", "max_new_tokens": 4}""";
        (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        Assert.Equal(HttpStatusCode.OK, status);
        string before = body["text"]!.GetValue<string>();
        Assert.Equal(editor.Generate("The home of Tom", 4), before);

        string requests = File.ReadAllText(ApiFixture.Data("requests.json"));
        // A budget the edit cannot meet: 504, nothing published.
        (status, body) = await Send(http, HttpMethod.Post, "/edits", $$"""{"requests": {{requests}}, "timeout_s": 0.001}""");
        Assert.Equal(HttpStatusCode.GatewayTimeout, status);
        Assert.Contains("time budget", body["error"]!.GetValue<string>());
        Assert.Empty(editor.ListEdits());
        (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        Assert.Equal(before, body["text"]!.GetValue<string>());

        (status, body) = await Send(http, HttpMethod.Post, "/edits", $$"""{"requests": {{requests}}, "timeout_s": 600}""");
        Assert.Equal(HttpStatusCode.OK, status);
        string id = body["id"]!.GetValue<string>();

        (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        Assert.Equal(" Oslo Oslo Oslo Oslo", body["text"]!.GetValue<string>());
        Assert.NotEqual(before, body["text"]!.GetValue<string>());

        (status, body) = await Send(http, HttpMethod.Get, "/edits");
        var edits = body["edits"]!.AsArray();
        Assert.Equal(id, Assert.Single(edits)!["id"]!.GetValue<string>());
        Assert.Equal(" Oslo", edits[0]!["requests"]![1]!["target_new"]!.GetValue<string>());

        (status, _) = await Send(http, HttpMethod.Delete, $"/edits/{id}");
        Assert.Equal(HttpStatusCode.OK, status);
        (status, body) = await Send(http, HttpMethod.Get, "/edits");
        Assert.Empty(body["edits"]!.AsArray());
        (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        Assert.Equal(before, body["text"]!.GetValue<string>());
        (status, body) = await Send(http, HttpMethod.Delete, $"/edits/{id}");
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Contains(id, body["error"]!.GetValue<string>());

        // Every request was logged as one JSON object per line. Stop first (every request's line is written), and read
        // under the synchronized writer's lock: a write from a server thread mid-read made StringBuilder.ToString throw.
        await app.StopAsync();
        string logged;
        lock (syncedLog) logged = log.ToString();
        var lines = logged.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Contains(lines, l => l["event"]!.GetValue<string>() == "edit_applied" && l["id"]!.GetValue<string>() == id);
        Assert.Equal(11, lines.Count(l => l["event"]!.GetValue<string>() == "request"));
        Assert.Contains(lines, l => l["event"]!.GetValue<string>() == "request" && l["status"]!.GetValue<int>() == 504);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // generation through ONNX Runtime, edits published by rebinding
    public async Task GenerationsDuringEditsAndRollbacksOverHttpSeeOnlyWholeStates(bool onnxRuntime)
    {
        using var original = Kedit.Models.Transformer.Load(ApiFixture.ModelDir);
        using var editor = fx.Editor(EditMethod.Memit, "memit.json", onnxRuntime);
        await using var app = ServeCommand.Build(editor, 0, new JsonLog(TextWriter.Null));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(ServeCommand.BoundUrl(app)), Timeout = TimeSpan.FromSeconds(60) };
        const string gen = """{"prompt": "The home of Tom", "max_new_tokens": 4}""";
        const string edited = " Oslo Oslo Oslo Oslo"; // the fixture's MEMIT edit (ServiceAnswersEveryEndpointOnLoopback)
        var (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        string before = body["text"]!.GetValue<string>();
        Assert.NotEqual(edited, before);

        // Readers generate over HTTP the whole time an edit is computed, published, read and rolled back.
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(HttpStatusCode Status, string Text)>();
        var editing = Task.Run(async () =>
        {
            string requests = File.ReadAllText(ApiFixture.Data("requests.json"));
            var (s, b) = await Send(http, HttpMethod.Post, "/edits", $$"""{"requests": {{requests}}}""");
            Assert.Equal(HttpStatusCode.OK, s);
            var (gs, gb) = await Send(http, HttpMethod.Post, "/generate", gen);
            Assert.Equal(HttpStatusCode.OK, gs);
            Assert.Equal(edited, gb["text"]!.GetValue<string>());
            (s, _) = await Send(http, HttpMethod.Delete, $"/edits/{b["id"]!.GetValue<string>()}");
            Assert.Equal(HttpStatusCode.OK, s);
        });
        var deadline = DateTime.UtcNow.AddSeconds(90);
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!editing.IsCompleted && DateTime.UtcNow < deadline)
            {
                var (s, b) = await Send(http, HttpMethod.Post, "/generate", gen);
                seen.Enqueue((s, s == HttpStatusCode.OK ? b["text"]!.GetValue<string>() : b.ToJsonString()));
            }
        })).ToList();
        await Task.WhenAll(readers);
        Assert.True(editing.IsCompleted, "the edit and rollback did not finish within 90 s");
        await editing;

        Assert.True(seen.Count >= 4, $"only {seen.Count} generations ran during the edit");
        Assert.All(seen, r =>
        {
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.True(r.Text == before || r.Text == edited, $"generation '{r.Text}' is neither the pre-edit '{before}' nor the post-edit '{edited}'");
        });
        (status, body) = await Send(http, HttpMethod.Post, "/generate", gen);
        Assert.Equal(before, body["text"]!.GetValue<string>());
        (status, body) = await Send(http, HttpMethod.Get, "/edits");
        Assert.Empty(body["edits"]!.AsArray());
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(original), ApiFixture.Logits(editor.Model), "served logits after the rollback");
        await app.StopAsync();
    }

    [Theory]
    [InlineData("/generate", """{"prompt": 5}""", "'prompt'")]
    [InlineData("/generate", """{"max_new_tokens": 3}""", "'prompt'")]
    [InlineData("/generate", """{"prompt": "a", "max_new_tokens": "many"}""", "'max_new_tokens'")]
    [InlineData("/generate", """{"prompt": "a", "max_new_tokens": -1}""", "'max_new_tokens'")]
    [InlineData("/generate", """{"prompt": """, "body")]
    [InlineData("/generate", """[1, 2]""", "body")]
    [InlineData("/edits", """{"request": []}""", "'request': not a field of POST /edits (its fields: requests, timeout_s)")]
    [InlineData("/edits", """{"timeout_s": 5}""", "'requests'")]
    [InlineData("/edits", """{"requests": [{"prompt": "{} is in", "subject": "Paris"}]}""", "target")]
    // Each of these answered 500 before bodies went through StrictJson and timeouts had a floor.
    [InlineData("/generate", """{"prompt": "a", "timeout_s": 1e-9}""", "'timeout_s'")]
    [InlineData("/edits", """{"requests": [{"prompt": "{} is in", "subject": "Paris", "target_new": " Rome"}], "timeout_s": 1e-9}""", "'timeout_s'")]
    [InlineData("/generate", """{"prompt": "Paris\ud800 is"}""", "'prompt'")]
    [InlineData("/generate", """{"prompt": "a", "prompt": "b"}""", "'prompt' appears twice")]
    [InlineData("/edits", """{"requests": [{"prompt": "{} is in", "subject": "Paris", "subject": "Rome", "target_new": "x"}]}""", "subject' appears twice")]
    [InlineData("/generate", """{"prompt": "a", "max_new_tokens": 1e999}""", "'max_new_tokens'")]
    // Unknown fields are refused by name, not ignored (a misspelt option would silently do nothing).
    [InlineData("/generate", """{"prompt": "a", "max_tokens": 3}""", "'max_tokens': not a field of POST /generate")]
    [InlineData("/edits", """{"requests": [], "dry_run": true}""", "'dry_run'")]
    [InlineData("/generate", """{"prompt": "a", "temperature": -1}""", "'temperature'")]
    [InlineData("/generate", """{"prompt": "a", "temperature": 1, "top_k": -2}""", "'top_k'")]
    public async Task MalformedBodiesGive400NamingTheField(string path, string body, string named)
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        await using var app = ServeCommand.Build(editor, 0, new JsonLog(TextWriter.Null));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(ServeCommand.BoundUrl(app)) };
        var (status, json) = await Send(http, HttpMethod.Post, path, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(named, json["error"]!.GetValue<string>());
        Assert.Empty(editor.ListEdits());
        await app.StopAsync();
    }

    [Fact]
    public async Task BodiesOverTheLimitAreRefused()
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        await using var app = ServeCommand.Build(editor, 0, new JsonLog(TextWriter.Null));
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(ServeCommand.BoundUrl(app)) };
        string big = $$"""{"prompt": "{{new string('a', (int)ServeCommand.MaxBodyBytes)}}"}""";
        var (status, json) = await Send(http, HttpMethod.Post, "/generate", big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("body", json["error"]!.GetValue<string>());
        await app.StopAsync();
    }

    [Fact]
    public void MissingOptionsAreUsageErrors()
    {
        var err = new StringWriter();
        Assert.Equal(2, ServeCommand.Run(new[] { "--method", "memit" }, TextWriter.Null, err));
        Assert.Contains("--model", err.ToString());
        // Options given explicitly are checked at start: a missing statistics file is an error, not a 409 later.
        err = new StringWriter();
        Assert.Equal(1, ServeCommand.Run(new[] { "--model", ApiFixture.ModelDir, "--hparams", ApiFixture.Data("memit.json"), "--stats", "/nonexistent/stats.safetensors" }, TextWriter.Null, err));
        Assert.Contains("/nonexistent/stats.safetensors", err.ToString());
        err = new StringWriter();
        Assert.Equal(2, ServeCommand.Run(new[] { "--model", ApiFixture.ModelDir, "--method", "sgd" }, TextWriter.Null, err));
        Assert.Contains("'sgd'", err.ToString());
    }
}
