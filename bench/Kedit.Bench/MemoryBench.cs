using System.Diagnostics;
using System.Text.Json;
using Kedit.IO;

namespace Kedit.Bench;

/// <summary>
/// Peak resident memory of the CLI on a GPT-2-small-sized random model (12 × 768, MLP 3072, vocabulary 50257) written
/// to disk as F32 and as BF16: info, trace (64 tokens), stats (layers 3–8, 40 documents of 128 tokens), MEMIT (1 request,
/// layers 3–8) and D4S (3 sequential requests, layers 3–8). Each case runs in its own process under /usr/bin/time -v;
/// its peak (maximum resident set) is printed beside the floor (weights + what the algorithm must hold + the runtime's
/// own, measured as the peak of `kedit --help`), the issue's target and <c>kedit plan</c>'s prediction.
/// </summary>
public static class MemoryBench
{
    public static void Run(string[] args)
    {
        string kedit = FindCli();
        string root = Path.Combine(Path.GetTempPath(), $"kedit-membench-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try { RunIn(root, kedit, args.Contains("keep")); }
        finally { if (!args.Contains("keep")) Directory.Delete(root, recursive: true); }
    }

    static void RunIn(string root, string kedit, bool keep)
    {
        string f32 = Path.Combine(root, "f32"), bf16 = Path.Combine(root, "bf16");
        WriteModel(f32, DType.F32); WriteModel(bf16, DType.BF16);
        long fileF32 = new FileInfo(Path.Combine(f32, "model.safetensors")).Length, fileBf16 = new FileInfo(Path.Combine(bf16, "model.safetensors")).Length;
        var rng = new Random(3);
        string corpus = Path.Combine(root, "corpus.jsonl");
        File.WriteAllLines(corpus, Enumerable.Range(0, 40).Select(_ => JsonSerializer.Serialize(new { ids = Enumerable.Range(0, 128).Select(_ => rng.Next(50257)).ToArray() })));
        string memit = Path.Combine(root, "memit.json"), d4s = Path.Combine(root, "d4s.json");
        File.WriteAllText(memit, HParams(false)); File.WriteAllText(d4s, HParams(true));
        string req1 = Path.Combine(root, "req1.json"), req3 = Path.Combine(root, "req3.json");
        File.WriteAllText(req1, Requests(1)); File.WriteAllText(req3, Requests(3));
        string stats = Path.Combine(root, "stats.safetensors"), cache = Path.Combine(root, "cache");
        string ids = string.Join(",", Enumerable.Range(0, 64).Select(_ => rng.Next(50257)));
        if (keep) Console.WriteLine($"memory: files kept in {root}");

        const double Mb = 1e6;
        long runtime = Peak(kedit, cache, "--help").Peak;
        double f = 3072, d = 768, weights = fileF32;
        Console.WriteLine($"memory: GPT-2-small-sized random model; model.safetensors {fileF32 / Mb:F0} MB (F32), {fileBf16 / Mb:F0} MB (BF16); runtime alone (kedit --help) {runtime / Mb:F0} MB; {Load()}");
        Console.WriteLine($"{"case",-28} {"peak MB",8} {"floor MB",9} {"target MB",10} {"plan MB",8} {"seconds",8}");
        void Case(string name, double floor, double target, string[] argv, string[]? planArgs)
        {
            var (peak, seconds) = Peak(kedit, cache, argv);
            string plan = planArgs == null ? "" : $"{PlanPeak(kedit, cache, planArgs) / Mb:F0}";
            Console.WriteLine($"{name,-28} {peak / Mb,8:F0} {floor / Mb,9:F0} {target / Mb,10:F0} {plan,8} {seconds,8:F1}{(peak > target ? "  over target" : "")}");
        }
        Case("info", runtime, 250 * Mb, ["info", "--model", f32], null);
        Case("trace 64 tokens, F32", runtime + fileF32, 1.1 * fileF32 + 200 * Mb, ["trace", "--model", f32, "--ids", ids, "--out", Path.Combine(root, "t32.safetensors")], null);
        Case("trace 64 tokens, BF16", runtime + fileBf16, 1.1 * fileBf16 + 200 * Mb, ["trace", "--model", bf16, "--ids", ids, "--out", Path.Combine(root, "t16.safetensors")], null);
        string[] statsArgs = ["--model", f32, "--layers", "3,4,5,6,7,8", "--corpus", corpus, "--samples", "40"];
        // float64 sums of 6 layers (f² × 8 bytes each) beside the weights
        Case("stats, 6 layers", runtime + weights + 6 * f * f * 8, 1500 * Mb, ["stats", .. statsArgs, "--out", stats], ["plan", "--method", "stats", .. statsArgs]);
        string[] memitArgs = ["--model", f32, "--method", "memit", "--hparams", memit, "--requests", req1, "--stats", stats];
        // statistics as float32, one layer's float64 C and its factor
        Case("memit, 1 request, 6 layers", runtime + weights + 6 * f * f * 4 + 2 * f * f * 8, 1400 * Mb, ["edit", .. memitArgs, "--out", Path.Combine(root, "memit-out")], ["plan", .. memitArgs]);
        string[] d4sArgs = ["--model", f32, "--method", "d4s", "--hparams", d4s, "--requests", req3, "--stats", stats, "--sequential"];
        // statistics as float32 and per layer D4S's factor (packed, f(f+1)/2 float64) and Γ (d f float64); S_KK and S_RK are
        // held as the 3 keys and residuals added
        Case("d4s, 3 sequential, 6 layers", runtime + weights + 6 * f * f * 4 + 6 * (f * (f + 1) / 2 * 8 + d * f * 8), 2000 * Mb, ["edit", .. d4sArgs, "--out", Path.Combine(root, "d4s-out")], ["plan", .. d4sArgs]);
    }

    /// <summary>
    /// The README's table: kedit plan's host and device peaks for the papers' models and layers (16-bit checkpoints, held
    /// 16-bit on the CPU and float32 on a device),
    /// one request (MEMIT, AlphaEdit), 10 sequential requests (D4S, PRUNE on MEMIT), on the CPU and on one 80 GB GPU.
    /// </summary>
    public static void Table()
    {
        var models = new (string Name, int Layers, int D, int F, int Vocab, long Params, int[] Edited)[]
        {
            ("GPT-2 XL", 48, 1600, 6400, 50257, 1_557_611_200, [13, 14, 15, 16, 17]),
            ("GPT-J 6B", 28, 4096, 16384, 50400, 6_050_882_784, [3, 4, 5, 6, 7, 8]),
            ("Llama-2 7B", 32, 4096, 11008, 32000, 6_738_415_616, [4, 5, 6, 7, 8]),
            ("Llama-3 8B", 32, 4096, 14336, 128256, 8_030_261_248, [4, 5, 6, 7, 8]),
        };
        const double Gb = 1e9;
        Console.WriteLine("| model | method | CPU host peak | 80 GB GPU: device peak | fits 80 GB GPU |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var m in models)
        {
            var c = new Kedit.Models.ModelConfig
            {
                ModelType = "planned", Architecture = Kedit.Models.Architecture.Llama, VocabSize = m.Vocab, Hidden = m.D, Layers = m.Layers, Heads = m.D / 128,
                KvHeads = m.D / 128, HeadDim = 128, Intermediate = m.F, MaxPositions = 2048, NormEps = 1e-5f, Activation = Kedit.Models.Activation.Silu,
            };
            foreach (var (name, work, requests, sequential) in new[] { ("MEMIT", Kedit.Editing.PlannedWork.Memit, 1, false), ("D4S", Kedit.Editing.PlannedWork.D4S, 10, true),
                         ("AlphaEdit", Kedit.Editing.PlannedWork.AlphaEdit, 1, false), ("PRUNE (MEMIT)", Kedit.Editing.PlannedWork.Prune, 10, true) })
            {
                var input = new Kedit.Editing.PlanInput { Config = c, WeightBytes = m.Params * 2, Float32WeightBytes = m.Params * 4, FileBytes = m.Params * 2, Work = work, Layers = m.Edited, Requests = requests, Sequential = sequential };
                var cpu = Kedit.Editing.MemoryPlan.For(input);
                var gpu = Kedit.Editing.MemoryPlan.For(input with { Device = "cuda" });
                Console.WriteLine($"| {m.Name} | {name} | {cpu.HostPeakBytes / Gb:F1} GB | {gpu.DevicePeakBytes / Gb:F1} GB | {(gpu.DevicePeakBytes <= 80 * Gb ? "yes" : "no")} |");
            }
        }
    }

    static string Load() => File.Exists("/proc/loadavg") ? $"load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}" : "";

    /// <summary>Peak resident bytes and seconds of one CLI run under /usr/bin/time -v (it must succeed).</summary>
    static (long Peak, double Seconds) Peak(string kedit, string cache, params string[] argv)
    {
        if (!File.Exists("/usr/bin/time")) throw new InvalidOperationException("the memory bench needs /usr/bin/time (GNU time) to measure each run's peak");
        var psi = new ProcessStartInfo("/usr/bin/time") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-v", "dotnet", kedit }.Concat(argv)) psi.ArgumentList.Add(a);
        psi.Environment["KEDIT_CACHE_DIR"] = cache;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        double seconds = sw.Elapsed.TotalSeconds;
        if (p.ExitCode != 0) throw new InvalidOperationException($"kedit {string.Join(" ", argv.Take(2))} failed ({p.ExitCode}):\n{stdout.Result}\n{err}");
        var line = err.Split('\n').First(l => l.Contains("Maximum resident set size"));
        return (long.Parse(line.Split(':')[1].Trim()) * 1024, seconds);
    }

    /// <summary>The host peak kedit plan predicts (0 when plan fails: shown, not hidden).</summary>
    static long PlanPeak(string kedit, string cache, string[] argv)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { kedit }.Concat(argv).Append("--json")) psi.ArgumentList.Add(a);
        psi.Environment["KEDIT_CACHE_DIR"] = cache;
        using var p = Process.Start(psi)!;
        string o = p.StandardOutput.ReadToEnd(); p.StandardError.ReadToEnd(); p.WaitForExit();
        if (p.ExitCode != 0) return 0;
        using var doc = JsonDocument.Parse(o);
        return doc.RootElement.GetProperty("host_peak_bytes").GetInt64();
    }

    static string FindCli()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string p = Path.Combine(dir.FullName, "engine", "Kedit.Cli", "bin", "Release", "net10.0", "kedit.dll");
            if (File.Exists(p)) return p;
        }
        throw new InvalidOperationException("engine/Kedit.Cli/bin/Release/net10.0/kedit.dll not found: build the solution in Release first");
    }

    /// <summary>GPT-2 small's shape with seeded random weights, stored as <paramref name="dtype"/>, with the fixture tokenizer.</summary>
    static void WriteModel(string dir, DType dtype)
    {
        Directory.CreateDirectory(dir);
        int L = 12, d = 768, f = 3072, V = 50257, P = 1024, s = 1;
        var entries = new List<SafetensorsWriter.Entry>();
        void Add(string name, float[] data, params long[] shape) => entries.Add(SafetensorsWriter.Entry.Converted(name, dtype, shape, data));
        float[] Ones(int n) => Enumerable.Repeat(1f, n).ToArray();
        Add("transformer.wte.weight", RandomModel.Rand((long)V * d, s++, 0.02f), V, d);
        Add("transformer.wpe.weight", RandomModel.Rand((long)P * d, s++, 0.01f), P, d);
        for (int i = 0; i < L; i++)
        {
            string p = $"transformer.h.{i}.";
            Add(p + "ln_1.weight", Ones(d), d); Add(p + "ln_1.bias", new float[d], d);
            Add(p + "ln_2.weight", Ones(d), d); Add(p + "ln_2.bias", new float[d], d);
            Add(p + "attn.c_attn.weight", RandomModel.Rand((long)d * 3 * d, s++, 0.02f), d, 3 * d); Add(p + "attn.c_attn.bias", new float[3 * d], 3 * d);
            Add(p + "attn.c_proj.weight", RandomModel.Rand((long)d * d, s++, 0.02f), d, d); Add(p + "attn.c_proj.bias", new float[d], d);
            Add(p + "mlp.c_fc.weight", RandomModel.Rand((long)d * f, s++, 0.02f), d, f); Add(p + "mlp.c_fc.bias", new float[f], f);
            Add(p + "mlp.c_proj.weight", RandomModel.Rand((long)f * d, s++, 0.02f), f, d); Add(p + "mlp.c_proj.bias", new float[d], d);
        }
        Add("transformer.ln_f.weight", Ones(d), d); Add("transformer.ln_f.bias", new float[d], d);
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": {{V}}, "n_positions": {{P}}, "n_ctx": {{P}}, "n_embd": {{d}},
             "n_layer": {{L}}, "n_head": 12, "n_inner": null, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05,
             "tie_word_embeddings": true, "bos_token_id": 50256, "eos_token_id": 50256, "torch_dtype": "{{(dtype == DType.BF16 ? "bfloat16" : "float32")}}"}
            """);
        string fixtures = FindFixtures();
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(fixtures, name), Path.Combine(dir, name), overwrite: true);
    }

    static string FindFixtures()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string p = Path.Combine(dir.FullName, "tests", "fixtures", "tokenizer");
            if (Directory.Exists(p)) return p;
        }
        throw new InvalidOperationException("tests/fixtures/tokenizer not found");
    }

    static string HParams(bool d4s) => $$"""
        {"layers": [3,4,5,6,7,8], "fact_token": "subject_last", "v_num_grad_steps": 5, "v_lr": 0.5, "v_loss_layer": 11, "v_weight_decay": 0.5,
         "clamp_norm_factor": 4, "kl_factor": 0.0625, "mom2_adjustment": true, "mom2_update_weight": 15000, "mom2_dtype": "float32"{{(d4s ? ", \"restore_between_edits\": false" : "")}}}
        """;

    static string Requests(int n) => JsonSerializer.Serialize(Enumerable.Range(0, n).Select(i => new
    {
        case_id = i,
        requested_rewrite = new { prompt = "The capital of {} is", relation_id = "P36", subject = new[] { "France", "Spain", "Italy" }[i], target_new = new { str = " Belgrade" }, target_true = new { str = " Paris" } },
    }));
}
