using System.Diagnostics;
using System.Text.Json;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>
/// kedit plan against the peak resident set (VmHWM from /proc/self/status) of a child process doing the work, on a small
/// random GPT-2 (4 × 512, MLP 2048, 8000 tokens) whose f×f matrices dominate its memory; and the refusal before any work.
/// </summary>
public sealed class MemoryPlanTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-plan-").FullName;

    [SkippableFact]
    public void Plan_predicts_the_peak_of_stats_memit_and_d4s_within_20_percent()
    {
        Skip.IfNot(File.Exists("/proc/self/status"), "skipped: the measured peak is VmHWM from /proc/self/status (Linux only)");
        string model = WriteModel();
        string corpus = Path.Combine(_tmp, "corpus.jsonl");
        var rng = new Random(7);
        File.WriteAllLines(corpus, Enumerable.Range(0, 40).Select(_ => JsonSerializer.Serialize(new { ids = Enumerable.Range(0, 128).Select(_ => rng.Next(8000)).ToArray() })));
        string hp = Path.Combine(_tmp, "hparams.json");
        File.WriteAllText(hp, """{"layers": [0,1,2,3], "fact_token": "subject_last", "v_num_grad_steps": 3, "v_lr": 0.5, "v_loss_layer": 3, "v_weight_decay": 0.5, "clamp_norm_factor": 4, "kl_factor": 0.0625, "mom2_adjustment": true, "mom2_update_weight": 15000}""");
        string requests = Path.Combine(_tmp, "requests.json");
        File.WriteAllText(requests, """
            [{"case_id": 0, "requested_rewrite": {"prompt": "The capital of {} is", "subject": "France", "target_new": {"str": " Belgrade"}, "target_true": {"str": " Paris"}}},
             {"case_id": 1, "requested_rewrite": {"prompt": "The capital of {} is", "subject": "Spain", "target_new": {"str": " Rome"}, "target_true": {"str": " Madrid"}}}]
            """);
        string stats = Path.Combine(_tmp, "stats.safetensors");

        var cases = new (string Name, string[] Run, string[] Plan)[]
        {
            ("stats", ["stats", "--model", model, "--layers", "0,1,2,3", "--corpus", corpus, "--out", stats], ["plan", "--model", model, "--method", "stats", "--layers", "0,1,2,3"]),
            ("memit", ["edit", "--model", model, "--method", "memit", "--hparams", hp, "--requests", requests, "--stats", stats, "--out", Path.Combine(_tmp, "memit")],
                ["plan", "--model", model, "--method", "memit", "--hparams", hp, "--requests", requests]),
            ("d4s", ["edit", "--model", model, "--method", "d4s", "--sequential", "--hparams", hp, "--requests", requests, "--stats", stats, "--out", Path.Combine(_tmp, "d4s")],
                ["plan", "--model", model, "--method", "d4s", "--sequential", "--hparams", hp, "--requests", requests]),
        };
        var report = new List<string>();
        foreach (var (name, run, plan) in cases)
        {
            var r = Child(run);
            Assert.True(r.Code == 0, $"{name}: {r.Err}");
            long measured = long.Parse(r.Err.Split('\n').Single(l => l.StartsWith("kedit: peak resident ")).Split(' ')[3]);
            var p = Child([.. plan, "--json"]);
            Assert.True(p.Code == 0, $"plan {name}: {p.Err}");
            using var doc = JsonDocument.Parse(p.Out);
            long predicted = doc.RootElement.GetProperty("host_peak_bytes").GetInt64();
            Assert.Equal(predicted, doc.RootElement.GetProperty("parts").EnumerateObject().Where(o => o.Name.StartsWith("host ")).Sum(o => o.Value.GetInt64()));
            report.Add($"{name}: predicted {predicted >> 20} MiB, measured {measured >> 20} MiB");
        }
        foreach (var line in report)
        {
            var parts = line.Split(' ');
            double predicted = double.Parse(parts[2]), measured = double.Parse(parts[5]);
            Assert.True(Math.Abs(predicted - measured) <= 0.2 * measured, string.Join("; ", report));
        }
    }

    [Fact]
    public void A_plan_over_the_budget_is_refused_in_one_line_before_any_work_and_force_overrides_it()
    {
        string model = TestPaths.Fixture("gpt2");
        string data = Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit");
        string outDir = Path.Combine(_tmp, "refused"), cache = Path.Combine(_tmp, "cache");
        string[] edit = ["edit", "--model", model, "--method", "memit", "--hparams", Path.Combine(data, "memit.json"), "--requests", Path.Combine(data, "requests.json"),
            "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", outDir];
        var env = new Dictionary<string, string> { ["KEDIT_MEMORY_BUDGET"] = "1000000", ["KEDIT_CACHE_DIR"] = cache };
        var r = Child(edit, env);
        Assert.Equal(1, r.Code);
        string line = Assert.Single(r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("kedit: peak resident")));
        Assert.Contains("edit would need about", line);
        Assert.Matches(@"largest: runtime \d+ MiB, ", line);   // names its largest parts, with their sizes (the fixture's runtime dwarfs its 0.9 MB of weights)
        Assert.Contains("--force", line);
        Assert.False(Directory.Exists(outDir), "a refused edit left its output");
        Assert.False(Directory.Exists(cache) && Directory.EnumerateFileSystemEntries(cache).Any(), "a refused edit computed statistics");
        var s = Child(["stats", "--model", model, "--layers", "1,2", "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", Path.Combine(_tmp, "s.safetensors")], env);
        Assert.Equal(1, s.Code);
        Assert.Contains("stats would need about", s.Err);
        Assert.False(File.Exists(Path.Combine(_tmp, "s.safetensors")));

        var forced = Child([.. edit, "--force"], env);
        Assert.True(forced.Code == 0, forced.Err);
        Assert.True(File.Exists(Path.Combine(outDir, "journal.json")));
    }

    [Fact]
    public void Plan_parts_follow_the_algorithms_sizes()
    {
        // Closed forms: D4S holds the factor (packed, f(f+1)/2 float64; λC is rebuilt) and Γ (d·f float64) per layer, and its
        // sums as the 3 keys (f) and residuals (d) added; statistics are one f×f float64 sum per layer.
        var config = Kedit.Models.ModelConfig.Load(TestPaths.Fixture("gpt2"));
        long f = config.Intermediate, d = config.Hidden;
        var input = new Kedit.Editing.PlanInput { Config = config, WeightBytes = 1000, FileBytes = 1000, Work = Kedit.Editing.PlannedWork.D4S, Layers = [1, 2], Requests = 3, Sequential = true };
        var plan = Kedit.Editing.MemoryPlan.For(input);
        Assert.Equal(2 * (f * (f + 1) / 2 * 8 + d * f * 8 + 3 * (f + d) * 8), plan.HostParts["method state"]);
        Assert.Equal(2 * f * f * 8, plan.HostParts["statistics"]);
        Assert.Equal(1000, plan.HostParts["weights"]);
        Assert.Empty(plan.DeviceParts);
        // One MEMIT step keeps no factor; several keep one per layer.
        var one = Kedit.Editing.MemoryPlan.For(input with { Work = Kedit.Editing.PlannedWork.Memit, Sequential = false });
        var many = Kedit.Editing.MemoryPlan.For(input with { Work = Kedit.Editing.PlannedWork.Memit, Sequential = true, BatchSize = 1 });
        Assert.Equal(0, one.HostParts["method state"]);
        Assert.Equal(2 * f * (f + 1) / 2 * 8, many.HostParts["method state"]);
        // On a device, the weights are there too.
        var dev = Kedit.Editing.MemoryPlan.For(input with { Device = "cuda" });
        Assert.Equal(1000, dev.DeviceParts["weights"]);
        // 16-bit weights stay 16-bit on the host and on a device, but the two edited matrices become float32 (2 more
        // bytes a value) on both.
        var half = input with { WeightBytes = 1000, Float32WeightBytes = 2000 };
        Assert.Equal(1000 + 2 * d * f * 2, Kedit.Editing.MemoryPlan.For(half).HostParts["weights"]);
        Assert.Equal(1000, Kedit.Editing.MemoryPlan.For(half with { Work = Kedit.Editing.PlannedWork.Stats }).HostParts["weights"]);
        Assert.Equal(1000, Kedit.Editing.MemoryPlan.For(half with { Work = Kedit.Editing.PlannedWork.Stats, Device = "cuda" }).DeviceParts["weights"]);
        Assert.Equal(1000 + 2 * d * f * 2, Kedit.Editing.MemoryPlan.For(half with { Device = "cuda" }).HostParts["weights"]);
        Assert.Equal(1000 + 2 * d * f * 2, Kedit.Editing.MemoryPlan.For(half with { Device = "cuda" }).DeviceParts["weights"]);
        // Statistics write one layer's float32 mean at a time.
        Assert.Equal(f * f * 4, Kedit.Editing.MemoryPlan.For(input with { Work = Kedit.Editing.PlannedWork.Stats }).HostParts["output"]);
    }

    /// <summary>A random GPT-2 (4 layers, 512 wide, MLP 2048, 8000 tokens, 256 positions) with the fixture tokenizer.</summary>
    string WriteModel()
    {
        string dir = Path.Combine(_tmp, "model");
        Directory.CreateDirectory(dir);
        int L = 4, d = 512, f = 2048, V = 8000, P = 256, seed = 1;
        var entries = new List<SafetensorsWriter.Entry>();
        float[] Rand(long n, float scale) { var r = new Random(seed++); var a = new float[n]; for (long i = 0; i < n; i++) a[i] = (float)((r.NextDouble() * 2 - 1) * scale); return a; }
        void Add(string name, float[] data, params long[] shape) => entries.Add(SafetensorsWriter.Entry.F32(name, shape, data));
        Add("transformer.wte.weight", Rand((long)V * d, 0.03f), V, d);
        Add("transformer.wpe.weight", Rand((long)P * d, 0.02f), P, d);
        for (int i = 0; i < L; i++)
        {
            string p = $"transformer.h.{i}.";
            Add(p + "ln_1.weight", Enumerable.Repeat(1f, d).ToArray(), d); Add(p + "ln_1.bias", new float[d], d);
            Add(p + "ln_2.weight", Enumerable.Repeat(1f, d).ToArray(), d); Add(p + "ln_2.bias", new float[d], d);
            Add(p + "attn.c_attn.weight", Rand((long)d * 3 * d, 0.03f), d, 3 * d); Add(p + "attn.c_attn.bias", new float[3 * d], 3 * d);
            Add(p + "attn.c_proj.weight", Rand((long)d * d, 0.03f), d, d); Add(p + "attn.c_proj.bias", new float[d], d);
            Add(p + "mlp.c_fc.weight", Rand((long)d * f, 0.03f), d, f); Add(p + "mlp.c_fc.bias", new float[f], f);
            Add(p + "mlp.c_proj.weight", Rand((long)f * d, 0.03f), f, d); Add(p + "mlp.c_proj.bias", new float[d], d);
        }
        Add("transformer.ln_f.weight", Enumerable.Repeat(1f, d).ToArray(), d); Add("transformer.ln_f.bias", new float[d], d);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": {{V}}, "n_positions": {{P}}, "n_ctx": {{P}}, "n_embd": {{d}}, "n_layer": {{L}},
             "n_head": 8, "n_inner": null, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "tie_word_embeddings": true, "bos_token_id": 296, "eos_token_id": 296}
            """);
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt" })
            File.Copy(TestPaths.Fixture("tokenizer", name), Path.Combine(dir, name));
        return dir;
    }

    (int Code, string Out, string Err) Child(string[] args, IReadOnlyDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kedit.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["KEDIT_REPORT_PEAK"] = "1";
        psi.Environment["KEDIT_CACHE_DIR"] = Path.Combine(_tmp, "cache-default");
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        string e = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, o.Result, e);
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
