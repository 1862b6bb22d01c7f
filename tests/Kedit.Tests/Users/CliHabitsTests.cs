using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Kedit.Editing.Inputs;
using Kedit.Evaluation;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Users;

/// <summary>What users expect of a command line: --help everywhere, --version, their YAML giving the same edit as
/// JSON, both metric families in eval, and a model directory nothing writes into.</summary>
public class CliHabitsTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-habits-").FullName;
    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    static (int Code, string Out, string Err) Run(params string[] args) => Editing.EditCliTests.Kedit(args);
    static string Data(string f) => Editing.EditCliTests.Data(f);

    public static TheoryData<string> CommandNames() => new(Cli.Help.Commands.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(CommandNames))]
    public void EveryCommandAnswersHelpWithUsageAndExamples(string name)
    {
        foreach (var flag in new[] { "--help", "-h" })
        {
            var (code, o, e) = Run(name, flag);
            Assert.True(code == 0, $"kedit {name} {flag}: exit {code}: {e}");
            Assert.StartsWith($"usage: kedit {name}", o);
            Assert.Contains("examples:", o);
            Assert.Equal("", e);
        }
        // --help wins wherever it stands, even after options that would fail.
        var (code2, o2, _) = Run(name, "--model", "/nonexistent", "--help");
        Assert.Equal(0, code2);
        Assert.StartsWith($"usage: kedit {name}", o2);
    }

    [Fact]
    public void EveryCommandTheCliDispatchesHasHelp()
    {
        // A command missing from the help table is reported as unknown by the top level only if it is not dispatched;
        // so ask each name in the overview and each dispatched name for help.
        string overview = Run("--help").Out;
        foreach (var c in Cli.Help.Commands) Assert.Contains($"  {c.Name} ", overview);
        var (code, _, err) = Run("no-such-command");
        Assert.Equal(2, code);
        Assert.Contains("unknown command 'no-such-command'", err);
    }

    [Fact]
    public void VersionAndUsageLineAfterAMistake()
    {
        var (code, o, _) = Run("--version");
        Assert.Equal(0, code);
        Assert.Matches(@"^kedit \d+\.\d+\.\d+", o);
        var (code2, _, err) = Run("edit", "--model");
        Assert.Equal(2, code2);
        Assert.Contains("option --model needs a value", err);
        Assert.Contains("(usage: kedit edit --help)", err);
        Assert.Equal(1, err.TrimEnd().Split('\n').Length);
    }

    static string Model => TestPaths.Fixture("gpt2");

    /// <summary>The gpt2-edit MEMIT hparams written as EasyEdit writes YAML, with its runtime keys.</summary>
    const string MemitYaml = """
        alg_name: "MEMIT"
        model_name: "./hugging_cache/gpt2-fixture"
        device: 0
        layers: [1, 2]
        fact_token: "subject_last"
        v_num_grad_steps: 20
        v_lr: 5e-1
        v_loss_layer: 3
        v_weight_decay: 0.5
        clamp_norm_factor: 4
        kl_factor: 0.0625
        mom2_adjustment: true
        mom2_update_weight: 100
        mom2_dtype: "float64"
        early_stop_loss: 0.05
        cov_cast_to_model_dtype: true
        context_templates:
          - ["{}"]
          - - "Once upon a time.\n{}"
            - "I think so.\n{}"
            - "Yes!\n{}"
            - "The end.\n{}"
            - "We went home.\n{}"
        """;

    [Fact]
    public void YamlHparamsGiveTheSameEditAsTheJsonFile()
    {
        string stats = Path.Combine(_tmp, "stats.safetensors");
        Assert.Equal(0, Run("stats", "--model", Model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats).Code);
        string yaml = Path.Combine(_tmp, "memit.yaml");
        File.WriteAllText(yaml, MemitYaml);
        string outJson = Path.Combine(_tmp, "json"), outYaml = Path.Combine(_tmp, "yaml");
        var a = Run("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--stats", stats, "--out", outJson, "--limit", "2");
        Assert.True(a.Code == 0, a.Err);
        var b = Run("edit", "--model", Model, "--method", "memit", "--hparams", yaml, "--requests", Data("requests.json"), "--stats", stats, "--out", outYaml, "--limit", "2");
        Assert.True(b.Code == 0, b.Err);
        Assert.Contains("runtime keys recorded in the journal, not used by the edit: alg_name=MEMIT, model_name=./hugging_cache/gpt2-fixture, device=0", b.Err);
        using var dj = SafetensorsFile.Open(Path.Combine(outJson, "deltas.safetensors"));
        using var dy = SafetensorsFile.Open(Path.Combine(outYaml, "deltas.safetensors"));
        foreach (var t in dj.Tensors) Assert.True(dj.GetBytes(t.Name).SequenceEqual(dy.GetBytes(t.Name)), $"{t.Name} differs");
        Assert.Equal(2, JsonNode.Parse(File.ReadAllText(Path.Combine(outYaml, "journal.json")))!["requests"]!.AsArray().Count);
    }

    [Fact]
    public void EasyEditFamilyLocalityIsExactAgainstTheModelItselfAndPortabilityScoresTheFirstAlias()
    {
        // The shipped factworld model knows its capitals: " Paris" after this prompt is its arg-max (its demo shows it).
        using var m = Transformer.Load(Path.Combine(TestPaths.Repo, "models", "factworld"));
        string prompt = "The capital of France is", own = "Paris", wrong = "Belgrade";
        Assert.Equal(1.0, Metrics.TokenAccuracy(m, prompt, own));
        var r = new EditRequest(prompt + " {}", "x", own!, "Berlin", neighborhoodPrompts: [new PromptAnswer("The home of Tom", "Berlin")],
            format: RequestFormat.KnowEdit, portability: [new PortabilityPrompt("Reasoning", prompt!, [own!, wrong!])]);
        var s = Metrics.EasyEdit(m, [r], original: m);
        Assert.Equal(100.0, s.Locality);       // the same model predicts the same tokens
        Assert.Equal(100.0, s.Portability);    // first alias = the model's own prediction
        var swapped = new EditRequest(prompt + " {}", "x", own!, "Berlin", format: RequestFormat.KnowEdit,
            portability: [new PortabilityPrompt("Reasoning", prompt!, [wrong!, own!])]);
        Assert.True(Metrics.EasyEdit(m, [swapped], null).Portability < 100, "the first alias, not the best one, is scored");
        Assert.True(double.IsNaN(Metrics.EasyEdit(m, [r], null).Locality), "locality without the original model must be absent, not guessed");
    }

    static Dictionary<string, string> Snapshot(string dir) =>
        Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order().ToDictionary(
            p => Path.GetRelativePath(dir, p),
            p => File.Exists(p) ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p))) + File.GetLastWriteTimeUtc(p).Ticks : "dir");

    [Fact]
    public void NoCommandWritesIntoTheModelDirectory()
    {
        // A private copy, so that the check sees only what these commands do (root ignores read-only bits, so compare instead).
        string model = Path.Combine(_tmp, "model");
        Directory.CreateDirectory(model);
        foreach (var f in Directory.GetFiles(Model)) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        var before = Snapshot(model);
        string stats = Path.Combine(_tmp, "s.safetensors"), edited = Path.Combine(_tmp, "edited");
        var runs = new[]
        {
            new[] { "info", "--model", model },
            ["generate", "--model", model, "--prompt", "Paris is", "--max-new-tokens", "2"],
            ["trace", "--model", model, "--prompt", "Paris is", "--out", Path.Combine(_tmp, "t.safetensors")],
            ["stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats],
            ["edit", "--model", model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--limit", "1", "--corpus", Data("corpus.jsonl"), "--out", edited],
            ["eval", "--model", edited, "--original", model, "--requests", Data("requests.json"), "--limit", "1", "--out", Path.Combine(_tmp, "r.json")],
            ["export", "--model", model, "--out", Path.Combine(_tmp, "m.onnx")],
        };
        foreach (var args in runs)
        {
            var (code, _, err) = Run(args);
            Assert.True(code == 0, $"kedit {string.Join(' ', args)}: {err}");
        }
        Assert.Equal(before, Snapshot(model));
    }

    [Fact]
    public void OutputsAreCheckedBeforeAnyWork()
    {
        string foreign = Path.Combine(_tmp, "my-notes");
        Directory.CreateDirectory(foreign);
        File.WriteAllText(Path.Combine(foreign, "keep.txt"), "mine");
        string aFile = Path.Combine(_tmp, "a-file");
        File.WriteAllText(aFile, "x");
        var runs = new (string[] Args, string Expected)[]
        {
            (["demo", "--quick", "--out", foreign], "exists and is not a demo report folder"),
            (["edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--corpus", Data("corpus.jsonl"), "--out", foreign], "exists and is not a kedit edit output"),
            (["stats", "--model", Model, "--layers", "1", "--corpus", Data("corpus.jsonl"), "--out", foreign], "is a directory"),
            (["trace", "--model", Model, "--prompt", "a", "--out", Path.Combine(aFile, "t.safetensors")], "is a file, so the output cannot be created under it"),
            (["export", "--model", Model, "--out", foreign], "is a directory"),
            (["rollback", "--journal", Path.Combine(_tmp, "none"), "--out", foreign], "exists and is not a kedit edit output"),
        };
        foreach (var (args, expected) in runs)
        {
            var (code, o, err) = Run(args);
            Assert.True(code == 1, $"kedit {args[0]}: exit {code}: {err}");
            Assert.Contains(expected, err);
            Assert.DoesNotContain("statistics:", err);   // refused before any statistics, edit or demo progress
            Assert.Equal("", o);
        }
        Assert.Equal(["keep.txt"], Directory.GetFiles(foreign).Select(Path.GetFileName));
    }

    [Fact]
    public void AShortCorpusIsSaidNotSilentlyUsedAndEditsStateTheirCost()
    {
        for (int run = 0; run < 2; run++)   // computed, then from the cache: both say it
        {
            var (code, _, err) = Run("stats", "--model", Model, "--layers", "1", "--corpus", Data("corpus.jsonl"), "--samples", "100000", "--out", Path.Combine(_tmp, $"s{run}.safetensors"));
            Assert.True(code == 0, err);
            Assert.Contains("holds 24 documents, fewer than the 100,000 asked for", err);
        }
        var e = Run("edit", "--model", Model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"), "--corpus", Data("corpus.jsonl"), "--out", Path.Combine(_tmp, "e"));
        Assert.True(e.Code == 0, e.Err);
        // 3 requests × 20 steps × 6 context prompts (the hparams' fixed templates: 1 + 5).
        Assert.Contains("3 request(s) in 1 step(s); each target vector takes up to 20 optimisation steps over 6 context prompt(s) (360 forward+backward passes at most)", e.Err);
    }

    [Fact]
    public void NGramEntropyMatchesRomesDefinitionByHand()
    {
        // "a b a b": bigrams ab ×2, ba ×1 → H2 = −(⅔ log₂ ⅔ + ⅓ log₂ ⅓); trigrams aba, bab → H3 = 1; ROME weighs them ⅔ and ⁴⁄₃ and averages.
        double h2 = -(2.0 / 3 * Math.Log2(2.0 / 3) + 1.0 / 3 * Math.Log2(1.0 / 3)), h3 = 1;
        Assert.Equal((2.0 / 3 * h2 + 4.0 / 3 * h3) / 2, Metrics.NGramEntropy("a b a b"), 12);
        // Punctuation is its own token; a text that repeats one word has zero entropy.
        Assert.Equal(0, Metrics.NGramEntropy("go go go go go"), 12);
        Assert.Equal(Metrics.NGramEntropy("x y . z"), Metrics.NGramEntropy("x y. z"), 12);
    }

    /// <summary>ROME's reference-score files (attribute_snippets.json, idf.npy, tfidf_vocab.json), small, written here.</summary>
    string ReferenceFiles(string vocabJson, double[] idf, string snippetsJson)
    {
        string dir = Path.Combine(_tmp, "rome-data");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tfidf_vocab.json"), vocabJson);
        File.WriteAllText(Path.Combine(dir, "attribute_snippets.json"), snippetsJson);
        using (var f = File.Create(Path.Combine(dir, "idf.npy"))) NpyFiles.WriteNpy(f, "<f8", [idf.Length], idf.SelectMany(BitConverter.GetBytes).ToArray());
        return dir;
    }

    [Fact]
    public void ReferenceScoreIsTfIdfCosineAsScikitLearnComputesIt()
    {
        var rs = ReferenceScore.Load(ReferenceFiles("""{"paris": 0, "france": 1, "capital": 2}""", [2, 1, 3], "[]"));
        // "Paris is the capital of France": counts paris 1, capital 1, france 1 ("is", "the", "of" are not in the vocabulary)
        // → (2, 1, 3)/√14; "Paris Paris France" → (4, 1, 0)/√17; cosine 9/√238.
        Assert.Equal(9 / Math.Sqrt(238), rs.Similarity("Paris is the capital of France", "Paris Paris France"), 12);
        Assert.Equal(0, rs.Similarity("nothing known here", "Paris"));
        Assert.Equal(1, rs.Similarity("PARIS, france!", "france paris"), 12);   // lower-cased, punctuation dropped

        var bad = Assert.Throws<KeditException>(() => ReferenceScore.Load(ReferenceFiles("""{"paris": 7}""", [1], "[]")));
        Assert.Contains("tfidf_vocab.json: word 'paris' has index 7, outside the 1 IDF entries", bad.Message);
    }

    [Fact]
    public void EvalReportsTheReferenceScoreWithRomesFiles()
    {
        string snippets = """[{"relation_id": "P36", "target_id": "Q1", "samples": [{"name": "Belgrade", "text": "Belgrade is the capital of Serbia."}]}]""";
        string dir = ReferenceFiles("""{"belgrade": 0, "capital": 1, "serbia": 2, "france": 3, "paris": 4}""", [2, 1, 2, 1, 1], snippets);
        string req = Path.Combine(_tmp, "cf.json");
        File.WriteAllText(req, """
            [{"case_id": 0, "requested_rewrite": {"prompt": "The capital of {} is", "relation_id": "P36", "subject": "France",
              "target_new": {"str": "Belgrade", "id": "Q1"}, "target_true": {"str": "Paris", "id": "Q90"}},
              "paraphrase_prompts": [], "neighborhood_prompts": [], "attribute_prompts": [],
              "generation_prompts": ["The capital city of France is", "France is"]}]
            """);
        string factworld = Path.Combine(TestPaths.Repo, "models", "factworld"), report = Path.Combine(_tmp, "r.json");
        var (code, o, err) = Run("eval", "--model", factworld, "--requests", req, "--snippets", dir, "--out", report);
        Assert.True(code == 0, err);
        var cf = JsonNode.Parse(File.ReadAllText(report))!["scores"]!["counterfact"]!;
        double score = cf["reference_score"]!.GetValue<double>(), entropy = cf["generation_entropy"]!.GetValue<double>();
        Assert.InRange(score, 0, 1);
        Assert.True(entropy > 0, "two sampled texts of up to 100 tokens have bigrams");
        Assert.Contains("reference score", o);
    }
}
