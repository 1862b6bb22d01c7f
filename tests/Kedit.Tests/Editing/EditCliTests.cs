using System.Diagnostics;
using System.Text.Json.Nodes;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>The editing commands end to end through the CLI entry point, on the gpt2 fixture model.</summary>
public class EditCliTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-cli-").FullName;
    internal static string Data(string f) => Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", f);
    static string Model => TestPaths.Fixture("gpt2");

    /// <summary>Runs the CLI in process: exit code, stdout, stderr.</summary>
    internal static (int Code, string Out, string Err) Kedit(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Cli.Cli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    string Stats()
    {
        string stats = Path.Combine(_tmp, "stats.safetensors");
        var r = Kedit("stats", "--model", Model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats);
        Assert.True(r.Code == 0, r.Err);
        return stats;
    }

    static void AssertTensorsEqual(string expectedFile, string actualFile)
    {
        using var a = SafetensorsFile.Open(expectedFile);
        using var b = SafetensorsFile.Open(actualFile);
        Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
        foreach (var t in a.Tensors)
        {
            var u = b.GetInfo(t.Name);
            Assert.Equal(t.DType, u.DType);
            Assert.Equal(t.Shape, u.Shape);
            Assert.True(a.GetBytes(t.Name).SequenceEqual(b.GetBytes(t.Name)), $"tensor {t.Name} differs");
        }
        Assert.Equal(a.Metadata.OrderBy(k => k.Key), b.Metadata.OrderBy(k => k.Key));
    }

    [Fact]
    public void StatsMatchTheGoldenCovariance()
    {
        using var f = SafetensorsFile.Open(Stats());
        using var gold = SafetensorsFile.Open(TestPaths.Fixture("gpt2", "golden_edits.safetensors"));
        Assert.Equal(960, f.ReadInt64("count.1")[0]);
        Compare.Close("mom2.1", f.ReadFloat32("mom2.1"), gold.ReadFloat64("cov.L1"), 1e-4);
        Compare.Close("mom2.2", f.ReadFloat32("mom2.2"), gold.ReadFloat64("cov.L2"), 1e-4);
    }

    [Fact]
    public void MemitEditWritesLoadableModelDeltasJournalAndRollsBackBitExactly()
    {
        string stats = Stats(), outDir = Path.Combine(_tmp, "edited");
        var r = Kedit("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--stats", stats, "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        foreach (var f in new[] { "config.json", "tokenizer.json", "model.safetensors", "deltas.safetensors", "journal.json", "original.safetensors" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), $"{f} missing");

        // deltas.safetensors holds W_edited − W0 under the HF name in the stored (Conv1D) orientation.
        using (var edited = SafetensorsFile.Open(Path.Combine(outDir, "model.safetensors")))
        using (var orig = SafetensorsFile.Open(Path.Combine(Model, "model.safetensors")))
        using (var deltas = SafetensorsFile.Open(Path.Combine(outDir, "deltas.safetensors")))
        {
            foreach (int l in new[] { 1, 2 })
            {
                string name = $"transformer.h.{l}.mlp.c_proj.weight";
                Assert.Equal(new long[] { 256, 64 }, deltas.GetInfo(name).Shape);
                var d = deltas.ReadFloat32(name); var w = edited.ReadFloat32(name); var w0 = orig.ReadFloat32(name);
                double maxErr = 0, maxD = 0;
                for (int i = 0; i < d.Length; i++) { maxErr = Math.Max(maxErr, Math.Abs(w[i] - w0[i] - d[i])); maxD = Math.Max(maxD, Math.Abs(d[i])); }
                Assert.True(maxD > 1e-3, "the edit changed nothing");
                Assert.True(maxErr < 1e-6, $"deltas differ from W − W0 by {maxErr}");
            }
            // Other tensors are untouched, byte for byte.
            Assert.True(edited.GetBytes("transformer.h.0.mlp.c_proj.weight").SequenceEqual(orig.GetBytes("transformer.h.0.mlp.c_proj.weight")));
        }

        var journal = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "journal.json")))!;
        Assert.Equal("memit", journal["method"]!.GetValue<string>());
        Assert.Equal(3, journal["requests"]!.AsArray().Count);
        Assert.Equal(2, journal["context_templates"]!.AsArray().Count);
        Assert.Equal(100.0, journal["hparams"]!["mom2_update_weight"]!.GetValue<double>());

        // The saved deltas applied to the original give this MEMIT edit's tensors exactly (SavedEditTests covers layouts and dtypes).
        string applied = Path.Combine(_tmp, "applied");
        r = Kedit("apply", "--model", Model, "--deltas", Path.Combine(outDir, "deltas.safetensors"), "--out", applied);
        Assert.True(r.Code == 0, r.Err);
        using (var a = SafetensorsFile.Open(Path.Combine(applied, "model.safetensors")))
        using (var e = SafetensorsFile.Open(Path.Combine(outDir, "model.safetensors")))
            foreach (var t in e.Tensors) Assert.True(e.GetBytes(t.Name).SequenceEqual(a.GetBytes(t.Name)), $"apply: tensor {t.Name} differs from the edit output's");

        string back = Path.Combine(_tmp, "rolled-back");
        r = Kedit("rollback", "--journal", outDir, "--out", back);
        Assert.True(r.Code == 0, r.Err);
        AssertTensorsEqual(Path.Combine(Model, "model.safetensors"), Path.Combine(back, "model.safetensors"));

        // The edit moved the model: eval sees efficacy 100 after, less before.
        string report = Path.Combine(_tmp, "report.json");
        r = Kedit("eval", "--model", outDir, "--requests", Data("requests.json"), "--original", Model, "--corpus", Data("corpus.jsonl"), "--out", report);
        Assert.True(r.Code == 0, r.Err);
        var rep = JsonNode.Parse(File.ReadAllText(report))!;
        Assert.Equal(100.0, rep["scores"]!["counterfact"]!["efficacy"]!.GetValue<double>());
        Assert.True(rep["original"]!["scores"]!["counterfact"]!["efficacy"]!.GetValue<double>() < 100.0);
        Assert.True(rep["scores"]!["perplexity"]!.GetValue<double>() > 1);
        Assert.Equal(2, rep["matrices"]!.AsArray().Count);
    }

    [Theory]
    [InlineData("d4s", "d4s.json", "log")]
    [InlineData("memit", "memit.json", "log2")]
    [InlineData("memit", "memit-prune-in-loop.json", "log2")]
    [InlineData("rome", "rome.json", null)]
    [InlineData("alphaedit", "alphaedit.json", "log")]
    public void SequentialEditsReplayInEvalEveryK(string method, string hparams, string? prune)
    {
        string stats = Stats(), outDir = Path.Combine(_tmp, method);
        var args = new List<string> { "edit", "--model", Model, "--method", method, "--hparams", Data(hparams), "--requests", Data("requests.json"), "--stats", stats, "--out", outDir, "--sequential", "--batch-size", "1" };
        if (prune != null) args.AddRange(new[] { "--prune", prune });
        var r = Kedit(args.ToArray());
        Assert.True(r.Code == 0, r.Err);
        string editOut = r.Out;
        var nullSpaces = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "journal.json")))!["null_spaces"];
        if (method == "alphaedit")
            Assert.All(nullSpaces!.AsArray(), n => Assert.InRange(n!["rank"]!.GetValue<int>(), 1, n["key_dim"]!.GetValue<int>() - 1));
        else Assert.Null(nullSpaces);
        string report = Path.Combine(_tmp, method + ".json");
        r = Kedit("eval", "--model", outDir, "--requests", Data("requests.json"), "--every", "1", "--out", report);
        Assert.True(r.Code == 0, r.Err);
        var rep = JsonNode.Parse(File.ReadAllText(report))!;
        var curve = rep["curve"]!.AsArray();
        Assert.Equal(3, curve.Count);
        Assert.Equal(new[] { 1, 2, 3 }, curve.Select(p => p!["edits"]!.GetValue<int>()));
        // The replayed final point is the written model: same scores and matrix norms.
        var last = curve[^1]!;
        Assert.Equal(rep["scores"]!["counterfact"]!["efficacy"]!.GetValue<double>(), last["counterfact"]!["efficacy"]!.GetValue<double>());
        double l1Written = rep["matrices"]![0]!["l1_mean_abs"]!.GetValue<double>(), l1Replayed = last["matrices"]![0]!["l1_mean_abs"]!.GetValue<double>();
        Assert.True(Math.Abs(l1Written - l1Replayed) < 1e-7 * l1Written, $"written {l1Written} vs replayed {l1Replayed}");

        // The regime (edit sizes against σ_max(W0)) in edit's output, the journal, eval's report and every replayed point;
        // the replay recomputes the accumulated σ₁ from the weights and must agree with the run's own figure.
        Assert.Contains("σ₁(ΔW accumulated)", editOut);
        var journal = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "journal.json")))!;
        Assert.Equal(prune == null ? null : hparams.Contains("in-loop"), journal["prune_in_loop"]?.GetValue<bool>());
        int layers = journal["layers"]!.AsArray().Count;
        Assert.All(journal["steps"]!.AsArray(), st => Assert.Equal(layers, st!["sigma_ratio"]!.AsArray().Count));
        Assert.Equal(journal["regime"]!.ToJsonString(), rep["regime"]!.ToJsonString());
        for (int l = 0; l < layers; l++)
        {
            double run = journal["regime"]![l]!["accumulated_sigma_ratio"]!.GetValue<double>(), replayed = last["regime"]![l]!["accumulated_sigma_ratio"]!.GetValue<double>();
            Assert.True(run > 0 && Math.Abs(run - replayed) < 1e-4 * run, $"layer {l}: accumulated σ₁ ratio {run} in the run, {replayed} replayed");
            Assert.Equal(prune != null, journal["regime"]![l]!["prune_restrained"] != null);
        }
    }

    [Fact]
    public void BadInputsGiveClearErrorsNamingTheCulprit()
    {
        string stats = Stats();
        string badH = Path.Combine(_tmp, "bad.json");
        File.WriteAllText(badH, File.ReadAllText(Data("memit.json")).Replace("\"kl_factor\"", "\"kl_factr\""));
        var r = Kedit("edit", "--model", Model, "--method", "memit", "--hparams", badH, "--requests", Data("requests.json"), "--stats", stats, "--out", Path.Combine(_tmp, "x"));
        Assert.Equal(1, r.Code);
        Assert.Contains("kl_factr", r.Err);
        Assert.DoesNotContain("   at ", r.Err);

        string badR = Path.Combine(_tmp, "reqs.json");
        File.WriteAllText(badR, """[{"prompt": "{} is in", "subject": "Paris", "target_new": ""}]""");
        r = Kedit("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", badR, "--stats", stats, "--out", Path.Combine(_tmp, "x"));
        Assert.Equal(1, r.Code);
        Assert.Contains("target_new", r.Err);

        string badC = Path.Combine(_tmp, "corpus.jsonl");
        File.WriteAllText(badC, "{\"ids\": [1,2,3]}\n{not json}\n");
        r = Kedit("stats", "--model", Model, "--layers", "1", "--corpus", badC, "--out", Path.Combine(_tmp, "s.safetensors"));
        Assert.Equal(1, r.Code);
        Assert.Contains("corpus.jsonl:2", r.Err);

        r = Kedit("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--out", Path.Combine(_tmp, "x"));
        Assert.Equal(1, r.Code);
        Assert.Contains("--stats", r.Err);
        Assert.False(Directory.Exists(Path.Combine(_tmp, "x")));

        r = Kedit("edit", "--model", Model, "--method", "memti");
        Assert.Equal(2, r.Code);
    }

    [Fact]
    public void AKilledEditLeavesNoHalfWrittenOutputAndKeepsThePreviousOne()
    {
        string stats = Stats(), outDir = Path.Combine(_tmp, "kept");
        var r = Kedit("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--stats", stats, "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        var before = Directory.GetFiles(outDir).ToDictionary(Path.GetFileName, File.ReadAllBytes);

        // An edit that would run for minutes (no early stop, many steps), killed after it started.
        string slow = Path.Combine(_tmp, "slow.json");
        File.WriteAllText(slow, File.ReadAllText(Data("memit.json")).Replace("\"v_num_grad_steps\": 20", "\"v_num_grad_steps\": 100000").Replace("\"early_stop_loss\": 0.05", "\"early_stop_loss\": 0.0"));
        string dll = Path.Combine(AppContext.BaseDirectory, "kedit.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { dll, "edit", "--model", Model, "--method", "memit", "--hparams", slow, "--requests", Data("requests.json"), "--stats", stats, "--out", outDir })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        // The progress line is rewritten with '\r' (no newline): read characters, not lines.
        var seen = new System.Text.StringBuilder();
        var reader = Task.Run(() => { int c; while ((c = p.StandardError.Read()) >= 0) lock (seen) seen.Append((char)c); });
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < 120) { lock (seen) if (seen.ToString().Contains("edits")) break; Thread.Sleep(50); }
        Thread.Sleep(500);
        Assert.False(p.HasExited, "the slow edit finished before it could be killed");
        p.Kill(entireProcessTree: true);
        p.WaitForExit();
        var after = Directory.GetFiles(outDir).ToDictionary(Path.GetFileName, File.ReadAllBytes);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var k in before.Keys) Assert.True(before[k].SequenceEqual(after[k]), $"{k} changed");
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
