using System.Diagnostics;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.IO;

/// <summary>
/// Kill-at-every-step tests of the outputs kedit replaces: `edit`, `rollback`, `stats --out`,
/// `demo --out`, `train --out`. Each command runs as its own process with KEDIT_FAULT_KILL_AT=N, so
/// it SIGKILLs itself just before the N-th rename, copy or delete of <see cref="AtomicOutput"/>;
/// N goes 1, 2, … until a run finishes. Every run starts from the same state (an earlier output in
/// place); after each kill the output must be the earlier one, byte for byte, or the new one,
/// complete — or, in the two-rename fallback killed between its renames, absent with the earlier
/// one whole under its recovery name — and the next plain run must end with the new output and no
/// staging left behind. Both the RENAME_EXCHANGE path and the two-rename fallback are driven.
/// </summary>
public sealed class OutputFaultInjectionTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-fault-").FullName;
    static string Data(string f) => Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", f);

    /// <summary>The gpt2 fixture copied (its statistics cache then lives here, not in the checkout), statistics, fast hparams, one request.</summary>
    (string Model, string Stats, string HParams, string Request) Inputs()
    {
        string model = Path.Combine(_tmp, "model");
        Directory.CreateDirectory(model);
        foreach (var f in Directory.GetFiles(TestPaths.Fixture("gpt2")).Where(f => !f.Contains("golden") && !f.EndsWith("traces.json")))
            File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        string stats = Path.Combine(_tmp, "stats.safetensors");
        Assert.Equal(0, InProcess("stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats));
        var h = JsonNode.Parse(File.ReadAllText(Data("memit.json")))!.AsObject();
        h["v_num_grad_steps"] = 2;
        string hparams = Path.Combine(_tmp, "memit.json");
        File.WriteAllText(hparams, h.ToJsonString());
        string request = Path.Combine(_tmp, "one.json");
        File.WriteAllText(request, new JsonArray(JsonNode.Parse(File.ReadAllText(Data("requests.json")))![0]!.DeepClone()).ToJsonString());
        return (model, stats, hparams, request);
    }

    static int InProcess(params string[] args) => Cli.Cli.Run(args, TextWriter.Null, TextWriter.Null);

    static (int Code, bool Killed, string Err) Process(int? killAt, bool twoRenames, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kedit.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (killAt is int n) psi.Environment["KEDIT_FAULT_KILL_AT"] = n.ToString();
        if (twoRenames) psi.Environment["KEDIT_FAULT_TWO_RENAMES"] = "1";
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "the command did not finish");
        string e = err.Result;
        return (p.ExitCode, e.Contains("fault injection: killed"), e);
    }

    static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.Exists(dir) ? Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f)!, File.ReadAllBytes) : new();

    static bool Same(Dictionary<string, byte[]> a, Dictionary<string, byte[]> b, params string[] except) =>
        a.Keys.Order().SequenceEqual(b.Keys.Order()) && a.Keys.Where(k => !except.Contains(k)).All(k => a[k].AsSpan().SequenceEqual(b[k]));

    static void Restore(string dir, Dictionary<string, byte[]> snapshot)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        foreach (var (name, bytes) in snapshot) File.WriteAllBytes(Path.Combine(dir, name), bytes);
    }

    /// <summary>Staging and recovery names next to <paramref name="output"/> (files or folders).</summary>
    static string[] Leftovers(string output)
    {
        string name = Path.GetFileName(output), parent = Path.GetDirectoryName(output)!;
        return Directory.EnumerateFileSystemEntries(parent, $".{name}.kedit-*").ToArray();
    }

    /// <summary>
    /// Drives <paramref name="args"/> killed at step 1, 2, … from <paramref name="reset"/>'s state;
    /// <paramref name="check"/> judges the state after each kill ("old", "new" or "recoverable");
    /// the next plain run must leave <paramref name="isNew"/> true and nothing behind. Returns the outcomes.
    /// </summary>
    static List<string> KillAtEveryStep(string[] args, string output, bool twoRenames, Action reset, Func<string> check, Func<bool> isNew)
    {
        var seen = new List<string>();
        for (int n = 1; ; n++)
        {
            Assert.True(n <= 40, "the command never ran to the end");
            reset();
            var r = Process(n, twoRenames, args);
            if (!r.Killed)
            {
                Assert.True(r.Code == 0, r.Err);
                Assert.True(isNew(), "an unkilled run did not leave the new output");
                Assert.Empty(Leftovers(output));
                break;
            }
            string state = check();
            seen.Add(state);
            // The next plain run repairs and cleans up: checked after the first kill and whenever the kill left more than the old output.
            if (n > 1 && state == "old") continue;
            var next = Process(null, twoRenames, args);
            Assert.True(next.Code == 0, $"after a kill at step {n}, the next run failed: {next.Err}");
            Assert.True(isNew(), $"after a kill at step {n}, the next run did not leave the new output");
            Assert.Empty(Leftovers(output));
        }
        Assert.Contains("old", seen);
        return seen;
    }

    /// <summary>The judgement of a directory output after a kill.</summary>
    static string JudgeDirectory(string output, Dictionary<string, byte[]> old, Func<bool> isNew, int n)
    {
        var now = Snapshot(output);
        if (Directory.Exists(output) && Same(now, old)) return "old";
        if (Directory.Exists(output) && isNew()) return "new";
        // Only the two-rename fallback has a moment without the output: the old one must be whole under its recovery name.
        Assert.False(Directory.Exists(output), $"kill at step {n}: the output is neither the earlier one nor the new one");
        var parked = Leftovers(output).Where(d => d.Contains(".kedit-old-")).ToList();
        Assert.True(parked.Count == 1 && Same(Snapshot(parked[0]), old), $"kill at step {n}: the output is gone and the earlier one is not recoverable");
        return "recoverable";
    }

    /// <summary>edit through RENAME_EXCHANGE; rollback (cheaper: no edit to compute) through both paths.</summary>
    [Fact]
    public void EditAndRollbackNeverLoseTheirOutput()
    {
        var (model, stats, hparams, request) = Inputs();
        string[] EditArgs(string outDir) => new[] { "edit", "--model", model, "--method", "memit", "--hparams", hparams, "--requests", request, "--stats", stats, "--out", outDir };
        // The earlier output: an edit of another request; the new one: a reference run of the same command.
        string other = Path.Combine(_tmp, "other.json");
        File.WriteAllText(other, new JsonArray(JsonNode.Parse(File.ReadAllText(Data("requests.json")))![1]!.DeepClone()).ToJsonString());
        string oldDir = Path.Combine(_tmp, "old"), refDir = Path.Combine(_tmp, "ref"), outDir = Path.Combine(_tmp, "out");
        Assert.Equal(0, InProcess("edit", "--model", model, "--method", "memit", "--hparams", hparams, "--requests", other, "--stats", stats, "--out", oldDir));
        Assert.Equal(0, InProcess(EditArgs(refDir)));
        var old = Snapshot(oldDir);
        var expected = Snapshot(refDir);
        // journal.json holds the time and timings of its run: it must parse, the rest must match byte for byte.
        bool IsNewEdit() => Same(Snapshot(outDir), expected, EditJournal.FileName) && EditJournal.Read(outDir).Steps.Count == 1;
        var seen = KillAtEveryStep(EditArgs(outDir), outDir, twoRenames: false, () => Restore(outDir, old),
            () => JudgeDirectory(outDir, old, IsNewEdit, 0), IsNewEdit);
        Assert.Contains("new", seen);

        // rollback onto an existing edit output: the old output is that edit, the new one the original model.
        string rolled = Path.Combine(_tmp, "rolled");
        Assert.Equal(0, InProcess("rollback", "--journal", refDir, "--out", Path.Combine(_tmp, "rolled-ref")));
        var original = Snapshot(Path.Combine(_tmp, "rolled-ref"));
        bool IsRolledBack() => Same(Snapshot(rolled), original);
        foreach (bool fallback in new[] { false, true })
        {
            seen = KillAtEveryStep(new[] { "rollback", "--journal", refDir, "--out", rolled }, rolled, fallback, () => Restore(rolled, old),
                () => JudgeDirectory(rolled, old, IsRolledBack, 0), IsRolledBack);
            Assert.Contains("new", seen);
            if (fallback) Assert.Contains("recoverable", seen);
        }
    }

    [Fact]
    public void StatsOutIsCopiedAtomicallyFromTheCache()
    {
        var (model, _, _, _) = Inputs();
        string outPath = Path.Combine(_tmp, "mine.safetensors");
        string[] args = { "stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", outPath };
        // Inputs() computed these statistics, so they come from the cache: the path that was a plain copy.
        byte[] cached = File.ReadAllBytes(KeyStatistics.CachePath(KeyStatistics.CacheKey(model, new[] { 1, 2 }, Data("corpus.jsonl"), null)));
        byte[] old = "an earlier file the user keeps"u8.ToArray();
        var seen = KillAtEveryStep(args, outPath, twoRenames: false, () => File.WriteAllBytes(outPath, old), () =>
        {
            byte[] now = File.ReadAllBytes(outPath);
            if (now.AsSpan().SequenceEqual(old)) return "old";
            Assert.True(now.AsSpan().SequenceEqual(cached), "the output is neither the earlier file nor the statistics");
            return "new";
        }, () => File.ReadAllBytes(outPath).AsSpan().SequenceEqual(cached));
        Assert.True(seen.Count >= 2, $"the copy took {seen.Count} steps");
    }

    [Fact]
    public void DemoOutNeverLosesTheEarlierReport()
    {
        var (model, _, hparams, _) = Inputs();
        // A demo folder on the fixture model: its hparams, CounterFact requests and two small corpora.
        Directory.CreateDirectory(Path.Combine(model, "data"));
        var h = JsonNode.Parse(File.ReadAllText(hparams))!.AsObject();
        h["mom2_n_samples"] = 24;
        File.WriteAllText(Path.Combine(model, "hparams.json"), h.ToJsonString());
        File.Copy(Data("requests.json"), Path.Combine(model, "data", "counterfact.json"));
        string text = string.Join("\n", Enumerable.Range(0, 30).Select(i => $"Paris is located in France, said Tom {i}."));
        File.WriteAllText(Path.Combine(model, "data", "train.txt"), text);
        File.WriteAllText(Path.Combine(model, "data", "heldout.txt"), text);
        string outDir = Path.Combine(_tmp, "demo");
        string[] args = { "demo", "--model", model, "--edits", "1", "--quick", "--out", outDir };
        var old = new Dictionary<string, byte[]> { ["report.json"] = "{\"earlier\": true}"u8.ToArray(), ["report.html"] = "<p>earlier</p>"u8.ToArray() };
        bool IsNew()
        {
            var s = Snapshot(outDir);
            return s.Keys.Order().SequenceEqual(new[] { AtomicOutput.MarkerName, "report.html", "report.json" }) && s.ContainsKey("report.html") && s.TryGetValue("report.json", out var j) && JsonNode.Parse(j)?["edits"]?.GetValue<int>() == 1;
        }
        var seen = KillAtEveryStep(args, outDir, twoRenames: false, () => Restore(outDir, old), () => JudgeDirectory(outDir, old, IsNew, 0), IsNew);
        Assert.Contains("new", seen);
    }

    [Fact]
    public void TrainOutReplacesTheModelFilesTogether()
    {
        string recipeDir = Path.Combine(_tmp, "recipe");
        Directory.CreateDirectory(Path.Combine(recipeDir, "data"));
        File.WriteAllLines(Path.Combine(recipeDir, "data", "train.txt"), Enumerable.Range(0, 40).Select(i => $"story {i}: the cat sat on the mat and Tom went home."));
        string Recipe(int seed)
        {
            string path = Path.Combine(recipeDir, $"recipe-{seed}.json");
            File.WriteAllText(path, $$"""
                {"name": "tiny", "seed": {{seed}}, "data_dir": "data", "corpus_generator": null, "train_file": "train.txt", "held_out_file": null,
                 "required_tokens_file": null, "vocab_size": 300, "layers": 1, "hidden": 16, "heads": 2, "positions": 32,
                 "steps": 3, "batch_rows": 2, "row_tokens": 16, "warmup_steps": 1, "checkpoint_every": 1000, "log_every": 1}
                """);
            return path;
        }
        string outDir = Path.Combine(_tmp, "trained"), refDir = Path.Combine(_tmp, "trained-ref");
        string[] Args(string dir) => new[] { "train", "--recipe", Recipe(2), "--out", dir };
        Assert.Equal(0, InProcess("train", "--recipe", Recipe(1), "--out", outDir));
        var old = Snapshot(outDir);
        Assert.Equal(0, InProcess(Args(refDir)));
        string[] model = { "model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json" };
        var expected = Snapshot(refDir);
        Assert.False(old["model.safetensors"].AsSpan().SequenceEqual(expected["model.safetensors"]), "the two seeds trained the same model");
        string Judge()
        {
            // A kill after the commit manifest is finished by the next command that opens the folder.
            AtomicOutput.Recover(outDir);
            var now = Snapshot(outDir);
            if (model.All(f => now[f].AsSpan().SequenceEqual(old[f]))) return "old";
            Assert.True(model.All(f => now[f].AsSpan().SequenceEqual(expected[f])), "the model folder mixes files of two runs");
            return "new";
        }
        bool IsNew() { var now = Snapshot(outDir); return model.All(f => now[f].AsSpan().SequenceEqual(expected[f])); }
        var seen = KillAtEveryStep(Args(outDir), outDir, twoRenames: false, () => Restore(outDir, old), Judge, IsNew);
        Assert.Contains("new", seen);
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
