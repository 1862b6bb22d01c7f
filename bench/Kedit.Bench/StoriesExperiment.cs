using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Evaluation;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Editing experiments on the real stories260k model (read from ../shared):
///   stories-data  — (re)makes tests/data/stories260k from its hparams.json: a sampled corpus for the
///                   statistics, a disjoint held-out set for perplexity, and 100 requests of our own
///                   making (the ten subjects whose keys stand out most × ten relations; target_true =
///                   the model's own answer, target_new = the word it ranks next);
///   stories       — MEMIT batches of 10 edits, then the demo's control: 80 sequential edits with MEMIT, D4S,
///                   MEMIT+PRUNE and D4S+PRUNE, with the demo's table, regime per layer and claims (the last 20
///                   requests' facts are never edited: the collateral probe).
/// </summary>
public static class StoriesExperiment
{
    // Subjects are a title and an invented name; MakeData keeps the ten names whose keys stand out most.
    static readonly string[] Titles = { "Captain", "Princess", "Farmer", "Doctor", "Grandpa", "Miss", "Uncle", "Sir", "Auntie", "Professor", "Queen", "King", "Lady", "Mister" };
    static readonly string[] Names = { "Zorblat", "Glimmer", "Quimby", "Pickle", "Wobble", "Honeydew", "Bumble", "Fizzlewick", "Marigold", "Snoot", "Quxlo", "Zink", "Plonk", "Vexa", "Jubjub", "Mokka", "Tazzle", "Blimp", "Orbo", "Yekk" };
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
        Directory.CreateDirectory(DataDir);
        string corpus = Path.Combine(DataDir, "corpus.jsonl");
        WriteCorpus(model, corpus, 400, 1000);
        WriteCorpus(model, Path.Combine(DataDir, "heldout.jsonl"), 60, 900000);
        var h = HParams.Parse(File.ReadAllText(Path.Combine(DataDir, "hparams.json")), EditMethod.Memit, "stories hparams");
        var subjects = DistinctSubjects(model, h, corpus, 10);

        var facts = new Dictionary<(int, int), (string Truth, string Target)>();
        for (int r = 0; r < Relations.Length; r++)
            for (int s = 0; s < subjects.Length; s++)
                facts[(r, s)] = Fact(model, Relations[r].Prompt.Replace("{}", subjects[s]));
        var records = new JsonArray();
        int id = 0;
        // Subject-major order, so the first 10 requests cover 10 different relations and subjects mix.
        for (int k = 0; k < subjects.Length * Relations.Length; k++)
        {
            int s = k % subjects.Length, r = (k / subjects.Length + k) % Relations.Length;
            var (truth, target) = facts[(r, s)];
            var neighbours = new JsonArray();
            foreach (int o in new[] { (s + 1) % subjects.Length, (s + 4) % subjects.Length })
                neighbours.Add(new JsonObject { ["prompt"] = Relations[r].Prompt.Replace("{}", subjects[o]), ["target"] = facts[(r, o)].Truth });
            records.Add(new JsonObject
            {
                ["case_id"] = id++, ["prompt"] = Relations[r].Prompt, ["subject"] = subjects[s], ["target_new"] = target, ["target_true"] = truth,
                ["paraphrase_prompts"] = new JsonArray(Relations[r].Paraphrase.Replace("{}", subjects[s])),
                ["neighborhood_prompts"] = neighbours,
            });
        }
        File.WriteAllText(Path.Combine(DataDir, "requests.json"), records.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"wrote {DataDir}: {records.Count} requests about {string.Join(", ", subjects)}; corpus and held-out stories");
    }

    /// <summary>
    /// The <paramref name="count"/> names (each with its best title) whose MEMIT keys at the edited layers
    /// stand out most from the corpus keys: the largest harmonic mean over layers of kᵀC⁻¹k (C the keys'
    /// second moment; corpus keys average the key width). Writing a value change δ at key k costs the
    /// rest of the text |δ|²/kᵀC⁻¹k in the C-weighted norm, and in a model this small most subjects sit
    /// barely above the average, so the choice matters.
    /// </summary>
    static string[] DistinctSubjects(Transformer model, HParams h, string corpus, int count)
    {
        var tok = model.RequireTokenizer();
        var stats = new Covariance(h.Layers, model.Config.Intermediate);
        stats.Accumulate(model, Kedit.IO.TextCorpus.Documents(corpus, tok));
        var templates = TemplateGenerator.Memit(model, 0);
        var candidates = Names.SelectMany(n => Titles.Select(t => $"{t} {n}")).ToList();
        var prepared = candidates.Select(c => RequestPreparer.Prepare(tok, new EditRequest(Relations[0].Prompt, c, "dog", null), templates, h.FactToken)).ToList();
        var inverseSum = new double[candidates.Count];
        foreach (int layer in h.Layers)
        {
            var C = stats.Mom2(layer).Clone();
            double ridge = 1e-6 * Enumerable.Range(0, C.Rows).Average(i => C[i, i]);
            for (int i = 0; i < C.Rows; i++) C[i, i] += ridge;
            var factor = CholeskyFactor.Factor(C, $"layer {layer} statistics");
            var K = Keys.Memit(model, prepared, layer);
            var S = K.Clone();
            factor.SolveInPlace(S);
            for (int j = 0; j < K.Cols; j++)
            {
                double q = 0;
                for (int i = 0; i < K.Rows; i++) q += K[i, j] * S[i, j];
                inverseSum[j] += 1 / q;
            }
        }
        return candidates.Select((c, j) => (Name: c.Split(' ')[1], Subject: c, Score: h.Layers.Count / inverseSum[j]))
            .GroupBy(x => x.Name).Select(g => g.MaxBy(x => x.Score))
            .OrderByDescending(x => x.Score).Take(count).Select(x => x.Subject).ToArray();
    }

    /// <summary>
    /// (truth, target) after a prompt: the truth is the model's own answer (the first word of its greedy
    /// continuation) and the target the pool word it ranks next below it: a plausible counterfactual, as
    /// CounterFact draws its new objects from the relation's own answers. When every pool word outranks the
    /// greedy word (a fragment such as "ll"), the model's favourite pool word is the truth instead.
    /// </summary>
    static (string Truth, string Target) Fact(Transformer model, string prompt)
    {
        var tok = model.RequireTokenizer();
        var ids = tok.Encode(prompt);
        var next = Generator.Generate(model, ids, new GenerationOptions { MaxNewTokens = 8, StopTokens = new HashSet<int>() });
        string cont = tok.Decode(ids.Concat(next).ToArray(), skipSpecialTokens: true)[prompt.Length..];
        string greedy = new string(cont.SkipWhile(ch => !char.IsLetter(ch)).TakeWhile(char.IsLetter).ToArray());
        if (greedy.Length == 0) greedy = "it";
        var words = Pool.Where(w => w != greedy).Prepend(greedy).ToList();
        var ranked = words.Zip(Metrics.Score(model, words.Select(w => (prompt, w)).ToList()))
            .OrderBy(x => x.Second.Nll).Select(x => x.First).ToList();
        int at = ranked.IndexOf(greedy);
        return at < ranked.Count - 1 ? (greedy, ranked[at + 1]) : (ranked[0], ranked[1]);
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
        var heldout = Kedit.IO.TextCorpus.Documents(Path.Combine(DataDir, "heldout.jsonl"), model.RequireTokenizer()).ToList();
        var stats = new Covariance(h.Layers, model.Config.Intermediate);
        stats.Accumulate(model, Kedit.IO.TextCorpus.Documents(Path.Combine(DataDir, "corpus.jsonl"), model.RequireTokenizer()));
        var templates = h.ContextTemplates ?? TemplateGenerator.Memit(model, 0);

        var baseline = SequentialExperiment.Baseline(model, h.Layers, requests.Take(10).ToList(), heldout, null);
        Console.WriteLine($"stories260k, layers {string.Join(",", h.Layers)}, λ {h.Mom2UpdateWeight}, {stats.Count(h.Layers[0])} statistics tokens");
        Console.WriteLine($"original: efficacy {baseline.Efficacy:F1} paraphrase {baseline.Paraphrase:F1} neighbourhood {baseline.Neighborhood:F1} perplexity {baseline.Perplexity:F3}");

        // MEMIT batches of 10: the first is the test's; every disjoint batch of the 100 requests, each applied
        // alone to the original model, shows how typical it is. Perplexity also on real TinyStories text
        // (../shared/data, never seen by the statistics) when it is there.
        var real = RealStories(model);
        double realBefore = real == null ? double.NaN : Metrics.Perplexity(model, real);
        int reach = 0, within = 0, both = 0, batches = requests.Count / 10;
        for (int b = 0; b < batches; b++)
        {
            var batch = requests.Skip(10 * b).Take(10).ToList();
            var session = new EditSession(model, h, stats, templates);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            session.Apply(batch);
            double seconds = sw.Elapsed.TotalSeconds;
            var cf = Metrics.CounterFact(model, batch);
            double rise = Metrics.Perplexity(model, heldout) / baseline.Perplexity!.Value - 1;
            string realRise = real == null ? "" : $", real text {100 * (Metrics.Perplexity(model, real) / realBefore - 1):+0.00;-0.00}%";
            session.RestoreOriginal();
            reach += cf.Efficacy >= 90 ? 1 : 0; within += rise <= 0.05 ? 1 : 0; both += cf.Efficacy >= 90 && rise <= 0.05 ? 1 : 0;
            Console.WriteLine($"memit batch of 10, requests {10 * b}-{10 * b + 9} ({seconds:F1}s): efficacy {cf.Efficacy:F1} paraphrase {cf.Paraphrase:F1} " +
                $"neighbourhood {cf.Neighborhood:F1} perplexity {100 * rise:+0.00;-0.00}%{realRise}");
        }
        Console.WriteLine($"{batches} batches: efficacy ≥ 90 in {reach}, perplexity within +5 % in {within}, both in {both}");

        // The control for the demo: the same four variants and the same table on a real pretrained model. The
        // last 20 requests' facts (the model's own answers) are never edited: the collateral probe.
        var untouched = requests.Skip(requests.Count - 20).ToList();
        int n = Math.Min(args.Length > 0 && int.TryParse(args[0], out int e) ? e : 80, requests.Count - untouched.Count);
        if (n <= 0) return;
        var edits = requests.Take(n).ToList();
        var start = SequentialExperiment.Baseline(model, h.Layers, edits, heldout, untouched);
        var results = new Dictionary<string, List<ExperimentPoint>>();
        foreach (var v in ExperimentVariant.PaperSetFor(h))
            results[v.Name] = SequentialExperiment.Run(model, hjson, stats, templates, edits, v, 20, heldout, untouched, p =>
                Console.WriteLine($"{p.Variant,-12} {p.Edits,4} edits: eff {p.Efficacy,5:F1} para {p.Paraphrase,5:F1} neigh {p.Neighborhood,5:F1} facts {p.UntouchedFacts,5:F1} ppl {p.Perplexity,7:F3} " +
                    $"L1 [{string.Join(" ", p.L1MeanAbs.Select(x => x.ToString("F4")))}] cond [{string.Join(" ", p.ConditionNumber.Select(x => x.ToString("F1")))}] {p.EditSeconds * 1000:F0} ms/edit"));
        DemoRunner.WriteComparison(Console.Out, start, results);
    }

    /// <summary>The real TinyStories validation text in ../shared (one paragraph per document), else null.</summary>
    static List<int[]>? RealStories(Transformer model)
    {
        string path = Path.GetFullPath(Path.Combine(FindRepo(), "..", "shared", "data", "tinystories_valid", "tinystories_val.txt"));
        return File.Exists(path) ? Kedit.IO.TextCorpus.Documents(path, model.RequireTokenizer()).ToList() : null;
    }

    /// <summary>The repository root (the folder holding Engine.sln above the executable), else the current folder.</summary>
    internal static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        return dir?.FullName ?? Directory.GetCurrentDirectory();
    }
}
