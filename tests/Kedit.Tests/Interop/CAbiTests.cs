using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Kedit.Api;
using Kedit.Editing.Inputs;
using Kedit.Tests.Api;
using Xunit;

namespace Kedit.Tests.Interop;

/// <summary>
/// libkedit.so and its sample built with interop/libkedit/build.sh into a temporary directory, beside a copy
/// of Kedit.Native's build output (so libkedit finds it next to itself), plus the error-path driver
/// kedit_error_paths.c. Needs gcc: without it every test fails saying so. libkedit is Linux-only
/// (dlfcn, pthreads): elsewhere nothing is built and the tests skip.
/// </summary>
public sealed class LibkeditBuild : IDisposable
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("kedit-cabi-").FullName;
    public string Sample => Path.Combine(Dir, "kedit_sample");
    public string ErrorPaths => Path.Combine(Dir, "kedit_error_paths");

    /// <summary>The .NET install running the tests, handed to the C programs so they start the same runtime.</summary>
    public static string DotnetRoot { get; } = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    public LibkeditBuild()
    {
        if (!OperatingSystem.IsLinux()) return;
        string cc = Environment.GetEnvironmentVariable("CC") is { Length: > 0 } c ? c : "gcc";
        if (!OnPath(cc))
            throw new InvalidOperationException($"the C ABI tests need a C compiler: '{cc}' is not on PATH (install gcc, or set CC)");
        string libkedit = Path.Combine(TestPaths.Repo, "interop", "libkedit");
        var build = CProcess.Run("bash", [Path.Combine(libkedit, "build.sh"), Dir]);
        Assert.True(build.Code == 0, $"interop/libkedit/build.sh failed:\n{build.Output}");

        string native = NativeOutput();
        foreach (var f in Directory.GetFiles(native)) File.Copy(f, Path.Combine(Dir, Path.GetFileName(f)));

        var cc2 = CProcess.Run(cc, ["-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + libkedit,
            Path.Combine(TestPaths.Repo, "tests", "Kedit.Tests", "Interop", "kedit_error_paths.c"),
            "-L" + Dir, "-lkedit", "-Wl,-rpath," + Dir, "-lpthread", "-o", ErrorPaths]);
        Assert.True(cc2.Code == 0, $"compiling kedit_error_paths.c failed:\n{cc2.Output}");
    }

    /// <summary>interop/Kedit.Native/bin/CONFIG/TFM for the configuration and framework these tests were built with.</summary>
    static string NativeOutput()
    {
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string dir = Path.Combine(TestPaths.Repo, "interop", "Kedit.Native", "bin", bin.Parent!.Name, bin.Name);
        if (!File.Exists(Path.Combine(dir, "Kedit.Native.dll")) || !File.Exists(Path.Combine(dir, "Kedit.Native.runtimeconfig.json")))
            throw new InvalidOperationException($"{dir}: no Kedit.Native build output (build Engine.sln in {bin.Parent.Name} first)");
        return dir;
    }

    static bool OnPath(string program) => program.Contains('/') ? File.Exists(program)
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, program)));

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

/// <summary>Runs a program, capturing stdout and stderr, with the test's .NET install as DOTNET_ROOT and no KEDIT_HOME unless given.</summary>
static class CProcess
{
    public static (int Code, string Output, string Error) Run(string file, IEnumerable<string> args, string? keditHome = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_ROOT"] = LibkeditBuild.DotnetRoot;
        psi.Environment.Remove("KEDIT_HOME");
        if (keditHome != null) psi.Environment["KEDIT_HOME"] = keditHome;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} did not finish in 3 minutes");
        }
        return (p.ExitCode, stdout.Result + stderr.Result, stderr.Result);
    }
}

/// <summary>The C ABI end to end on the gpt2 fixture: an edit through libkedit moves the model, rollback restores it exactly, failures come back as statuses.</summary>
public class CAbiTests(ApiFixture fx, LibkeditBuild lib) : IClassFixture<ApiFixture>, IClassFixture<LibkeditBuild>
{
    const string Prompt = "The home of Tom";
    const int NewTokens = 8;

    [SkippableFact]
    public void SampleEditsThroughTheCApiAndRollbackRestoresTheGenerationExactly()
    {
        RequireLinux();
        var run = CProcess.Run(lib.Sample, [ApiFixture.ModelDir, "memit", ApiFixture.Data("memit.json"), fx.StatsPath,
            ApiFixture.Data("requests.json"), Prompt, " Oslo", NewTokens.ToString(CultureInfo.InvariantCulture)]);
        Assert.True(run.Code == 0, $"kedit_sample exited with {run.Code}:\n{run.Output}");
        var values = Lines(run.Output);

        // The unedited numbers must be those of the managed API itself.
        string expected;
        double expectedScore;
        using (var editor = fx.Editor(EditMethod.Memit, "memit.json"))
        {
            expected = editor.Generate(Prompt, NewTokens);
            expectedScore = editor.Score(Prompt, " Oslo");
        }
        Assert.Equal(Quoted(expected), values["before"]);
        Assert.Equal(expectedScore, Number(values["score before"]));
        // The sample starts with an 8-byte buffer: a longer text must be retried with exactly its size plus the NUL.
        int needed = Encoding.UTF8.GetByteCount(expected) + 1;
        if (needed > 8) Assert.Contains($"retry: 8-byte buffer too small, {needed} needed\nbefore: ", run.Output);
        else Assert.DoesNotContain("retry", run.Output.Split("before: ")[0]);

        Assert.StartsWith("\" Oslo", values["after"]);
        double after = Number(values["score after"]);
        Assert.True(after < 0.1 && after < expectedScore, $"after the edit the NLL of Oslo is {after} (was {expectedScore})");

        var edits = JsonNode.Parse(values["edits"])!.AsArray();
        var edit = Assert.Single(edits)!;
        Assert.Equal(values["edit"], (string)edit["id"]!);
        Assert.Equal(fx.Requests.Select(r => r.Subject), edit["requests"]!.AsArray().Select(r => (string)r!["subject"]!));

        Assert.Equal(values["before"], values["after rollback"]);
        Assert.Equal(values["score before"], values["score after rollback"]);
        Assert.Equal("[]", values["edits after rollback"]);
    }

    [SkippableFact]
    public void FailuresComeBackAsStatusCodesWithTheLastErrorNamingTheCause()
    {
        RequireLinux();
        var hparams = JsonNode.Parse(File.ReadAllText(ApiFixture.Data("rome.json")))!;
        hparams["mom2_adjustment"] = false;  // ROME without statistics: the quickest editor to open
        string hparamsJson = hparams.ToJsonString();
        string exported = Path.Combine(lib.Dir, "exported");
        var run = CProcess.Run(lib.ErrorPaths, ["api", ApiFixture.ModelDir, hparamsJson, File.ReadAllText(ApiFixture.Data("requests.json")), exported]);
        Assert.True(run.Code == 0, $"kedit_error_paths exited with {run.Code}:\n{run.Output}");
        var cases = Cases(run.Output);

        string generated;
        using (var editor = KnowledgeEditor.Load(ApiFixture.ModelDir, new EditorOptions { Method = EditMethod.Rome, HParamsJson = hparamsJson }))
            generated = editor.Generate(Prompt, 6);
        int textBytes = Encoding.UTF8.GetByteCount(generated) + 1;

        // kedit_version is the product version of this very build; kedit_status_string names each status, and any other value.
        string product = typeof(KnowledgeEditor).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.Matches(@"^\d+\.\d+\.\d+", product);
        Assert.Contains($"version: {product}\n", run.Output);
        string[] names = ["unknown status", "ok", "invalid argument", "error", "cancelled", "buffer too small", "internal error", "host error", "timeout", "unknown status"];
        for (int s = -1; s <= 8; s++) Assert.Contains($"status_string {s}: {names[s + 1]}\n", run.Output);
        AssertCase(cases, "open_missing_dir", Status.Kedit, "/nonexistent/kedit-model");
        AssertCase(cases, "open_bad_method", Status.Kedit, "'sgd'");
        AssertCase(cases, "open_null_dir", Status.InvalidArgument, "model_dir");
        AssertCase(cases, "generate_null_editor", Status.InvalidArgument, "editor");
        AssertCase(cases, "open", Status.Ok);
        AssertCase(cases, "generate_small", Status.BufferTooSmall, $"{textBytes} needed", needed: textBytes);
        AssertCase(cases, "generate_size_query", Status.BufferTooSmall, needed: textBytes);
        AssertCase(cases, "generate_retry", Status.Ok, needed: textBytes);
        Assert.Contains($"generate_retry_length: {textBytes}\n", run.Output);
        AssertCase(cases, "score_null_out", Status.InvalidArgument, "nll");
        AssertCase(cases, "score_null_candidate", Status.InvalidArgument, "candidate");
        AssertCase(cases, "apply_small_id_buffer", Status.BufferTooSmall, "nothing was applied", needed: 64);
        AssertCase(cases, "apply_bad_json", Status.Kedit, "requests");
        AssertCase(cases, "rollback_unknown", Status.Kedit, "'e42'");
        AssertCase(cases, "apply_within_1ms", Status.Timeout, "time budget");
        AssertCase(cases, "apply_within_zero", Status.InvalidArgument, "timeout_ms");
        AssertCase(cases, "memory", Status.Ok);
        var memory = System.Text.Json.Nodes.JsonNode.Parse(run.Output.Split("memory_json: ")[1].Split('\n')[0])!;
        using (var w0 = Kedit.Models.Transformer.Load(ApiFixture.ModelDir))
            Assert.Equal(w0.Weights.ResidentBytes, (long)memory["model_weights"]!);
        Assert.True((long)memory["working_set"]! > (long)memory["editor_total"]!);
        AssertCase(cases, "apply_cancelled", Status.Cancelled, "kedit_cancel");
        // None of the failures above applied anything or moved a weight.
        AssertCase(cases, "list_after_failures", Status.Ok, needed: 3);
        Assert.Contains("edits: []\n", run.Output);
        AssertCase(cases, "generate_after_failures", Status.Ok, needed: textBytes);
        Assert.Contains("generation_unchanged: yes\n", run.Output);

        // With no edit applied the exported model is the original: it generates the same text.
        AssertCase(cases, "export", Status.Ok);
        Assert.True(File.Exists(Path.Combine(exported, "journal.json")), "kedit_export wrote no journal.json");
        using (var reloaded = KnowledgeEditor.Load(exported, new EditorOptions { Method = EditMethod.Rome, HParamsJson = hparamsJson }))
            Assert.Equal(generated, reloaded.Generate(Prompt, 6));
        AssertCase(cases, "export_unwritable", Status.Kedit, "model.safetensors");
    }

    [SkippableFact]
    public void AMissingKeditNativeIsAHostErrorStatusNotACrash()
    {
        RequireLinux();
        string empty = Directory.CreateTempSubdirectory("kedit-home-").FullName;
        try
        {
            var run = CProcess.Run(lib.ErrorPaths, ["host"], keditHome: empty);
            Assert.True(run.Code == 0, $"kedit_error_paths exited with {run.Code}:\n{run.Output}");
            var cases = Cases(run.Output);
            AssertCase(cases, "host_open", Status.Host, Path.Combine(empty, "Kedit.Native.dll") + ": not found");
            AssertCase(cases, "host_again", Status.Host, "KEDIT_HOME");
            // Without a runtime the version is "unknown" (the reason in kedit_last_error) and status names still work.
            Assert.Contains("host_version: unknown\n", run.Output);
            Assert.Contains("host_status_string: host error\n", run.Output);
        }
        finally { Directory.Delete(empty, true); }
    }

    static void RequireLinux() => Skip.IfNot(OperatingSystem.IsLinux(), "skipped: libkedit (the C ABI) is built for Linux only");

    /// <summary>kedit_status values (kedit.h).</summary>
    enum Status { Ok = 0, InvalidArgument = 1, Kedit = 2, Cancelled = 3, BufferTooSmall = 4, Internal = 5, Host = 6, Timeout = 7 }

    static void AssertCase(Dictionary<string, (int Status, long Needed, string Error)> cases, string name, Status status, string? error = null, long? needed = null)
    {
        Assert.True(cases.TryGetValue(name, out var c), $"kedit_error_paths printed no '{name}' case");
        Assert.True(c.Status == (int)status, $"{name}: status {c.Status}, expected {(int)status} ({status}); error: {c.Error}");
        if (error != null) Assert.Contains(error, c.Error);
        if (needed != null) Assert.Equal(needed.Value, c.Needed);
    }

    static Dictionary<string, (int Status, long Needed, string Error)> Cases(string output) =>
        Regex.Matches(output, @"^(\w+): status=(\d+) needed=(\d+) error=(.*)$", RegexOptions.Multiline)
            .ToDictionary(m => m.Groups[1].Value, m => (int.Parse(m.Groups[2].Value), long.Parse(m.Groups[3].Value), m.Groups[4].Value));

    /// <summary>The sample's "label: value" lines.</summary>
    static Dictionary<string, string> Lines(string output) =>
        output.Split('\n').Select(l => l.Split(": ", 2)).Where(p => p.Length == 2).GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.Last()[1]);

    /// <summary>How the sample prints a text: quoted, with newlines, quotes and backslashes escaped.</summary>
    static string Quoted(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n") + "\"";

    static double Number(string s) => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);
}
