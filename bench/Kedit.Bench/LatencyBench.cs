using System.Diagnostics;
using System.Text.Json.Nodes;
using Kedit.Api;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Latency as a service sees it (issue #6): p50 / p95 / max of a single ROME edit, a single D4S edit
/// and a rollback, and of generation alone and while edits are applied and rolled back, on the
/// default model (through <see cref="KnowledgeEditor"/>) and on a GPT-2-small-sized random model
/// (through <see cref="EditSession"/>; it has no tokenizer, so the editor cannot load it).
/// Usage: <c>kedit-bench latency [quick] [n=N] [model=DIR]</c>. Prints numbers, asserts nothing.
/// </summary>
public static class LatencyBench
{
    const int GenerateTokens = 16;

    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        int n = args.Select(a => a.StartsWith("n=") ? int.Parse(a[2..]) : 0).FirstOrDefault(v => v > 0, quick ? 10 : 30);
        string modelDir = args.FirstOrDefault(a => a.StartsWith("model="))?[6..]
                          ?? Path.Combine(StoriesExperiment.FindRepo(), "models", "factworld");
        Console.WriteLine($"latency bench: {Environment.ProcessorCount} cores; times in ms; p50/p95 interpolated between order statistics");
        DefaultModel(modelDir, n);
        Gpt2Small(quick ? 3 : Math.Clamp(n / 3, 3, 10), quick ? 5 : 15);
    }

    /// <summary>The default model through the editor a service holds, statistics as the demo computes (and caches) them.</summary>
    static void DefaultModel(string dir, int n)
    {
        string hparamsPath = Path.Combine(dir, "hparams.json"), corpus = Path.Combine(dir, "data", "train.txt");
        string hjson = File.ReadAllText(hparamsPath);
        string statsPath;
        IReadOnlyList<int> layers;
        using (var model = Transformer.Load(dir))
        {
            var h = HParams.Parse(hjson, EditMethod.D4S, hparamsPath).Validate(model.Config);
            layers = h.Layers;
            KeyStatistics.ComputeOrLoad(model, dir, h.Layers, corpus, h.Mom2NSamples ?? 3000, Console.Error, out statsPath);
            var c = model.Config;
            Header($"{Path.GetFileName(Path.GetFullPath(dir))} ({c.Layers}×{c.Hidden}, MLP {c.Intermediate}, {model.Weights.ParameterCount / 1e6:F1} M parameters) via KnowledgeEditor; layers {string.Join(",", layers)}");
        }
        var requests = RequestLoader.Load(Path.Combine(dir, "data", "counterfact.json"));
        EditRequest Request(int i) => requests[i % requests.Count];

        // ROME edits one layer: the last of the model's MEMIT/D4S layers.
        var rome = JsonNode.Parse(hjson)!.AsObject();
        rome["layers"] = new JsonArray(layers[^1]);
        using var romeEditor = KnowledgeEditor.Load(dir, new EditorOptions { Method = EditMethod.Rome, HParamsJson = rome.ToJsonString(), StatsPath = statsPath });
        var first = Time(() => romeEditor.Rollback(romeEditor.ApplyEdits(new[] { Request(0) }).Id)); // warm-up: JIT, C factorised once
        var apply = new List<double>(); var rollback = new List<double>();
        for (int i = 1; i <= n; i++)
        {
            string id = "";
            apply.Add(Time(() => id = romeEditor.ApplyEdits(new[] { Request(i) }).Id));
            rollback.Add(Time(() => romeEditor.Rollback(id)));
        }
        Row("rome edit (apply + publish)", apply, $"warm-up edit + rollback {first * 1000:F0} ms");
        Row("rome rollback (to W0)", rollback, "restore W0, publish");

        using (var d4sEditor = KnowledgeEditor.Load(dir, new EditorOptions { Method = EditMethod.D4S, HParamsPath = hparamsPath, StatsPath = statsPath }))
        {
            var d4s = new List<double>();
            for (int i = 0; i < n; i++) d4s.Add(Time(() => d4sEditor.ApplyEdits(new[] { Request(i) })));
            Row("d4s edit (sequential)", d4s, $"edits 1..{n}, one request each");
            // Rolling back one edit replays all the others, so its cost grows with the history.
            double last = Time(() => d4sEditor.Rollback(d4sEditor.ListEdits()[^1].Id));
            double oldest = Time(() => d4sEditor.Rollback(d4sEditor.ListEdits()[0].Id));
            Console.WriteLine($"  d4s rollback of the newest of {n} edits {last * 1000:F1} ms, then of the oldest of {n - 1} {oldest * 1000:F1} ms (out of the running sums: a refactorisation per layer, no target recomputed)");
        }

        // Readers wait at publish for the write lock: until the reads in flight finish, then for the
        // copy of the edited down projections the lock covers (timed here on the live arrays).
        var live = romeEditor.Model.Weights.Layers[layers[^1]].MlpOut.Weight;
        var scratch = new float[live.Length];
        var copies = Enumerable.Range(0, 200).Select(_ => Time(() => live.CopyTo(scratch, 0))).ToList();
        Row("publish copy (1 layer)", copies, $"{live.Length * 4 / 1024} KiB; the write lock's hold time");

        var prompts = Enumerable.Range(1, n).Select(i => Request(i).Sentence).ToList();
        int gens = Math.Max(20, 3 * n);
        var alone = Enumerable.Range(0, gens).Select(i => Time(() => romeEditor.Generate(prompts[i % prompts.Count], GenerateTokens))).ToList();
        Row($"generate {GenerateTokens} tokens, alone", alone, "");
        int next = 0, g = 0;
        var busy = WhileInBackground(() => romeEditor.Rollback(romeEditor.ApplyEdits(new[] { Request(next++) }).Id),
            () => romeEditor.Generate(prompts[g++ % prompts.Count], GenerateTokens), gens, n, TimeSpan.FromSeconds(120), out int edits);
        Row($"generate {GenerateTokens}, during edits", busy, $"{edits} rome edits + rollbacks ({2 * edits} publishes) meanwhile");
    }

    /// <summary>GPT-2-small shape with random weights: edits through EditSession as EditBench does, generation on token ids.</summary>
    static void Gpt2Small(int reps, int gens)
    {
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        int[] layers = { 4, 5, 6 };
        var rng = new Random(5);
        var sw = Stopwatch.StartNew();
        var stats = EditBench.RandomStatistics(model, layers, rng);
        Header($"GPT-2-small-sized random model ({c.Layers}×{c.Hidden}, MLP {c.Intermediate}) via EditSession; rome layer 5, d4s layers 4,5,6; statistics {sw.Elapsed.TotalSeconds:F0} s");
        var requests = Enumerable.Range(0, 2 * reps + 2).Select(_ => EditBench.RandomRequest(rng, c.VocabSize)).ToList();

        // Edits run on a work model sharing every array but the edited down projections, as the
        // editor does, so generation on the served model reads weights no edit writes.
        using var work = model.WithPrivateDownProjections(layers);
        var rome = new EditSession(work, HParams.Parse(EditBench.HParamsJson(c, new[] { 5 }), EditMethod.Rome), stats, ContextTemplates.Bare);
        double first = Time(() => rome.Apply(new[] { requests[0] })); // includes factorising C
        rome.RestoreOriginal();
        var apply = new List<double>(); var restore = new List<double>();
        for (int i = 1; i <= reps; i++)
        {
            apply.Add(Time(() => rome.Apply(new[] { requests[i] })));
            restore.Add(Time(rome.RestoreOriginal));
        }
        Row("rome edit", apply, $"first edit {first * 1000:F0} ms (factorises C)");
        Row("rome restore (to W0)", restore, "");

        var d4s = new EditSession(work, HParams.Parse(EditBench.HParamsJson(c, layers), EditMethod.D4S), stats, ContextTemplates.Bare);
        var d4sTimes = Enumerable.Range(0, reps + 1).Select(i => Time(() => d4s.Apply(new[] { requests[i] }))).ToList();
        Row("d4s edit (sequential)", d4sTimes.Skip(1).ToList(), $"first edit {d4sTimes[0] * 1000:F0} ms");
        d4s.RestoreOriginal();

        var live = model.Weights.Layers[5].MlpOut.Weight;
        var scratch = new float[live.Length];
        var copies = Enumerable.Range(0, 50).Select(_ => Time(() => live.CopyTo(scratch, 0))).ToList();
        Row("publish copy (1 layer)", copies, $"{live.Length * 4 / 1024} KiB per edited layer");

        var prompts = Enumerable.Range(0, gens).Select(_ => Enumerable.Range(0, 8).Select(_ => rng.Next(c.VocabSize)).ToArray()).ToList();
        var options = new GenerationOptions { MaxNewTokens = GenerateTokens, StopTokens = new HashSet<int>() };
        Time(() => Generator.Generate(model, prompts[0], options)); // warm-up
        var alone = prompts.Select(p => Time(() => Generator.Generate(model, p, options))).ToList();
        Row($"generate {GenerateTokens} tokens, alone", alone, "8-token prompts");
        int next = 0, g = 0;
        var session = new EditSession(work, HParams.Parse(EditBench.HParamsJson(c, layers), EditMethod.D4S), stats, ContextTemplates.Bare);
        var busy = WhileInBackground(() => session.Apply(new[] { requests[next++ % requests.Count] }),
            () => Generator.Generate(model, prompts[g++ % prompts.Count], options), gens, 1, TimeSpan.FromSeconds(120), out int edits);
        session.RestoreOriginal();
        Row($"generate {GenerateTokens}, during edits", busy, $"{edits} d4s edits on the work model meanwhile (no publish: CPU contention only)");
    }

    /// <summary>
    /// Times <paramref name="sample"/> over and over while another thread repeats <paramref name="background"/>:
    /// at least <paramref name="minSamples"/> samples and until <paramref name="minBackground"/> background
    /// iterations completed (so the samples span several edits), or <paramref name="limit"/> passed.
    /// </summary>
    static List<double> WhileInBackground(Action background, Action sample, int minSamples, int minBackground, TimeSpan limit, out int backgroundDone)
    {
        using var stop = new CancellationTokenSource();
        Exception? failure = null;
        int done = 0;
        var thread = new Thread(() =>
        {
            try { while (!stop.IsCancellationRequested) { background(); Interlocked.Increment(ref done); } }
            catch (Exception e) { failure = e; }
        }) { IsBackground = true, Name = "bench edits" };
        var clock = Stopwatch.StartNew();
        thread.Start();
        var samples = new List<double>();
        while ((samples.Count < minSamples || Volatile.Read(ref done) < minBackground) && clock.Elapsed < limit && failure == null)
            samples.Add(Time(sample));
        stop.Cancel();
        thread.Join();
        if (failure != null) throw new InvalidOperationException("the background edits failed", failure);
        backgroundDone = done;
        return samples;
    }

    static double Time(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalSeconds;
    }

    static double Time<T>(Func<T> f) => Time(() => { f(); });

    /// <summary>The <paramref name="p"/>-th percentile (0..100), linearly interpolated between order statistics.</summary>
    internal static double Percentile(IReadOnlyList<double> samples, double p)
    {
        var s = samples.Order().ToArray();
        double rank = p / 100 * (s.Length - 1);
        int lo = (int)Math.Floor(rank), hi = Math.Min(lo + 1, s.Length - 1);
        return s[lo] + (s[hi] - s[lo]) * (rank - lo);
    }

    static void Header(string title)
    {
        Console.WriteLine();
        Console.WriteLine(title);
        Console.WriteLine($"  {"",-32} {"n",4} {"p50",9} {"p95",9} {"max",9}");
    }

    static void Row(string what, IReadOnlyList<double> seconds, string note)
    {
        static string Ms(double s) => s < 0.01 ? $"{s * 1000,9:F3}" : $"{s * 1000,9:F1}";
        Console.WriteLine($"  {what,-32} {seconds.Count,4} {Ms(Percentile(seconds, 50))} {Ms(Percentile(seconds, 95))} {Ms(seconds.Max())}  {note}");
    }
}
