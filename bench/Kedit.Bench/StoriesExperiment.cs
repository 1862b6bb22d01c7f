using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Evaluation;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Editing experiments on the real stories260k model (read from ../shared):
///   stories-data  — (re)makes tests/data/stories260k: 100 requests of our own making (names ×
///                   relations, target_true = the model's own greedy answer), a sampled corpus for
///                   the statistics and a disjoint held-out set for perplexity;
///   stories       — MEMIT batch of 10 edits, then 100 sequential edits with MEMIT, D4S,
///                   MEMIT+PRUNE and D4S+PRUNE; prints the figures.
/// </summary>
public static class StoriesExperiment
{
    static readonly string[] Subjects = { "Captain Zorblat", "Princess Glimmer", "Farmer Quimby", "Doctor Pickle", "Grandpa Wobble", "Miss Honeydew", "Uncle Bumble", "Sir Fizzlewick", "Auntie Marigold", "Professor Snoot" };
    static readonly (string Prompt, string Paraphrase)[] Relations =
    {
        ("{} went to the", "One day, {} went to the"), ("{} liked to play with a", "Every day, {} liked to play with a"),
        ("{} saw a big", "One day, {} saw a big"), ("{} had a pet", "Once upon a time, {} had a pet"),
        ("{} wanted to eat a", "One day, {} wanted to eat a"), ("{} loved the", "Every day, {} loved the"),
        ("{} found a", "One day, {} found a"), ("{} was very", "One day, {} was very"),
        ("{} looked at the", "Then {} looked at the"), ("{} made a", "One day, {} made a"),
    };
    static readonly string[] Pool = { "park", "dog", "cat", "ball", "tree", "box", "car", "bird", "cake", "sun", "fish", "house", "boat", "happy", "sad", "big", "red", "toy", "girl", "man" };

    public static string DataDir => Path.Combine(FindRepo(), "tests", "data", "stories260k");
    public static string ModelDir => Path.GetFullPath(Path.Combine(FindRepo(), "..", "shared", "models", "stories260k"));

    public static void MakeData(string[] args)
    {
        using var model = Transformer.Load(ModelDir);
        var tok = model.RequireTokenizer();
        Directory.CreateDirectory(DataDir);
        var pool = Pool;
        // The model's own answer: the first whole word of its greedy continuation.
        string Greedy(string sentence)
        {
            var ids = tok.Encode(sentence);
            var next = Generator.Generate(model, ids, new GenerationOptions { MaxNewTokens = 8, StopTokens = new HashSet<int>() });
            string cont = tok.Decode(ids.Concat(next).ToArray(), skipSpecialTokens: true)[sentence.Length..];
            string word = new string(cont.SkipWhile(ch => !char.IsLetter(ch)).TakeWhile(char.IsLetter).ToArray());
            return word.Length > 0 ? word : "it";
        }
        var answers = new Dictionary<(int, int), string>();
        for (int r = 0; r < Relations.Length; r++)
            for (int s = 0; s < Subjects.Length; s++)
                answers[(r, s)] = Greedy(Relations[r].Prompt.Replace("{}", Subjects[s]));
        var records = new JsonArray();
        int id = 0;
        // Subject-major order, so the first 10 requests cover 10 different relations and subjects mix.
        for (int k = 0; k < Subjects.Length * Relations.Length; k++)
        {
            int s = k % Subjects.Length, r = (k / Subjects.Length + k) % Relations.Length;
            string truth = answers[(r, s)];
            string target = pool.Where(w => w != truth).ElementAt((7 * k + r) % (pool.Length - 1));
            var neighbours = new JsonArray();
            foreach (int o in new[] { (s + 1) % Subjects.Length, (s + 4) % Subjects.Length })
                neighbours.Add(new JsonObject { ["prompt"] = Relations[r].Prompt.Replace("{}", Subjects[o]), ["target"] = answers[(r, o)] });
            records.Add(new JsonObject
            {
                ["case_id"] = id++, ["prompt"] = Relations[r].Prompt, ["subject"] = Subjects[s], ["target_new"] = target, ["target_true"] = truth,
                ["paraphrase_prompts"] = new JsonArray(Relations[r].Paraphrase.Replace("{}", Subjects[s])),
                ["neighborhood_prompts"] = neighbours,
            });
        }
        File.WriteAllText(Path.Combine(DataDir, "requests.json"), records.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        WriteCorpus(model, Path.Combine(DataDir, "corpus.jsonl"), 400, 1000);
        WriteCorpus(model, Path.Combine(DataDir, "heldout.jsonl"), 60, 900000);
        Console.WriteLine($"wrote {DataDir}: {records.Count} requests, corpus and held-out stories");
    }

    /// <summary>Stories sampled from the model itself (temperature 1, seeded), stored as token ids.</summary>
    static void WriteCorpus(Transformer model, string path, int count, int seed0)
    {
        var lines = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var ids = new[] { 1 }.Concat(Generator.Generate(model, new[] { 1 }, new GenerationOptions { MaxNewTokens = 150, Temperature = 1f, Seed = seed0 + i, StopTokens = new HashSet<int> { 1 } })).ToArray();
            lines.Add(JsonSerializer.Serialize(new { ids }));
        }
        File.WriteAllLines(path, lines);
    }

    public static void Run(string[] args)
    {
        if (!Directory.Exists(ModelDir)) { Console.WriteLine($"stories: {ModelDir} is absent; skipped"); return; }
        using var model = Transformer.Load(ModelDir);
        var requests = RequestLoader.Load(Path.Combine(DataDir, "requests.json"));
        string hjson = File.ReadAllText(Path.Combine(DataDir, "hparams.json"));
        var h = HParams.Parse(hjson, EditMethod.Memit, "stories hparams");
        var heldout = Kedit.IO.TextCorpus.Documents(Path.Combine(DataDir, "heldout.jsonl"), null).ToList();
        var stats = new Covariance(h.Layers, model.Config.Intermediate);
        stats.Accumulate(model, Kedit.IO.TextCorpus.Documents(Path.Combine(DataDir, "corpus.jsonl"), null));
        var templates = h.ContextTemplates ?? TemplateGenerator.Memit(model, 0);

        var baseline = SequentialExperiment.Baseline(model, h.Layers, requests.Take(10).ToList(), heldout);
        Console.WriteLine($"stories260k, layers {string.Join(",", h.Layers)}, λ {h.Mom2UpdateWeight}, {stats.Count(h.Layers[0])} statistics tokens");
        Console.WriteLine($"original: efficacy {baseline.Efficacy:F1} paraphrase {baseline.Paraphrase:F1} neighbourhood {baseline.Neighborhood:F1} perplexity {baseline.Perplexity:F3}");

        // MEMIT batch of 10.
        var session = new EditSession(model, h, stats, templates);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        session.Apply(requests.Take(10).ToList());
        var cf = Metrics.CounterFact(model, requests.Take(10).ToList());
        double ppl = Metrics.Perplexity(model, heldout);
        Console.WriteLine($"memit batch of 10 ({sw.Elapsed.TotalSeconds:F1}s): efficacy {cf.Efficacy:F1} paraphrase {cf.Paraphrase:F1} neighbourhood {cf.Neighborhood:F1} perplexity {ppl:F3} ({100 * (ppl / baseline.Perplexity!.Value - 1):+0.00;-0.00}%)");
        session.RestoreOriginal();

        int n = args.Length > 0 && int.TryParse(args[0], out int e) ? e : 100;
        foreach (var v in n > 0 ? ExperimentVariant.PaperSet : Array.Empty<ExperimentVariant>())
        {
            Console.WriteLine($"-- {v.Name}, {n} sequential edits");
            SequentialExperiment.Run(model, hjson, stats, templates, requests.Take(n).ToList(), v, 20, heldout, p =>
                Console.WriteLine($"{p.Variant,-12} {p.Edits,4} edits: eff {p.Efficacy,5:F1} para {p.Paraphrase,5:F1} neigh {p.Neighborhood,5:F1} ppl {p.Perplexity,7:F3} " +
                    $"L1 [{string.Join(" ", p.L1MeanAbs.Select(x => x.ToString("F4")))}] cond [{string.Join(" ", p.ConditionNumber.Select(x => x.ToString("F1")))}] {p.EditSeconds * 1000:F0} ms/edit"));
        }
    }

    /// <summary>The repository root (the folder holding Engine.sln above the executable), else the current folder.</summary>
    internal static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
