using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Users;

/// <summary>
/// The anchors' users' own files, as published: EasyEdit's YAML hparams and AlphaEdit's JSON (their key sets written
/// out here), KnowEdit records, ROME/MEMIT's statistics .npz, and slicing a benchmark file with --limit/--offset.
/// </summary>
public class UserFilesTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-users-").FullName;
    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    string Write(string name, string text) { string p = Path.Combine(_tmp, name); File.WriteAllText(p, text); return p; }

    static ModelConfig Gpt2Xl() => ModelConfig.Parse(JsonDocument.Parse(
        """{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 1600, "n_layer": 48, "n_head": 25}""").RootElement, "config.json");

    // EasyEdit hparams/MEMIT/gpt2-xl.yaml: its key set and values, in its layout.
    const string EasyEditMemitGpt2Xl = """
        alg_name: "MEMIT"
        model_name: "./hugging_cache/gpt2-xl"
        stats_dir: "./data/stats"
        device: 0
        layers: [13, 14, 15, 16, 17]
        clamp_norm_factor: 0.75
        layer_selection: "all"
        fact_token: "subject_last"
        v_num_grad_steps: 20
        v_lr: 5e-1
        v_loss_layer: 47
        v_weight_decay: 0.5
        kl_factor: 0.0625
        mom2_adjustment: true
        mom2_update_weight: 20000
        rewrite_module_tmp: "transformer.h.{}.mlp.c_proj"
        layer_module_tmp: "transformer.h.{}"
        mlp_module_tmp: "transformer.h.{}.mlp"
        attn_module_tmp: "transformer.h.{}.attn"
        ln_f_module: "transformer.ln_f"
        lm_head_module: "transformer.wte"
        mom2_dataset: "wikipedia"
        mom2_n_samples: 100000
        mom2_dtype: "float32"
        model_parallel: false
        """;

    [Fact]
    public void EasyEditMemitYamlReadsAsTheSameHParamsAsKmengJson()
    {
        var h = HParams.Load(Write("gpt2-xl.yaml", EasyEditMemitGpt2Xl), EditMethod.Memit).Validate(Gpt2Xl());
        Assert.Equal(new[] { 13, 14, 15, 16, 17 }, h.Layers);
        Assert.Equal(0.75, h.ClampNormFactor);
        Assert.Equal(FactToken.SubjectLast, h.FactToken);
        Assert.Equal(20, h.VNumGradSteps);
        Assert.Equal(0.5, h.VLr);
        Assert.Equal(47, h.VLossLayer);
        Assert.Equal(20000.0, h.Mom2UpdateWeight);
        Assert.Equal("transformer.h.{}.mlp.c_proj", h.RewriteModuleTmp);
        Assert.Equal(100000, h.Mom2NSamples);
        Assert.Equal("float32", h.Mom2Dtype);
        Assert.Equal(new Dictionary<string, string>
        {
            ["alg_name"] = "MEMIT", ["model_name"] = "./hugging_cache/gpt2-xl", ["stats_dir"] = "./data/stats", ["device"] = "0", ["model_parallel"] = "false",
        }, h.RuntimeKeys);
        // The journal keeps the file's keys, runtime ones included.
        var json = JsonDocument.Parse(h.ToJson()).RootElement;
        Assert.Equal("./hugging_cache/gpt2-xl", json.GetProperty("model_name").GetString());
        // D4S and PRUNE run on MEMIT's files.
        Assert.Equal(h.Layers, HParams.Load(Path.Combine(_tmp, "gpt2-xl.yaml"), EditMethod.D4S).Layers);
    }

    [Fact]
    public void EasyEditRomeAndAlphaEditYamlRead()
    {
        string rome = EasyEditMemitGpt2Xl.Replace("alg_name: \"MEMIT\"", "alg_name: \"ROME\"").Replace("layers: [13, 14, 15, 16, 17]", "layers: [17]")
            .Replace("mom2_update_weight: 20000\n", "context_template_length_params: [[5, 10], [10, 10]]\n");
        var r = HParams.Load(Write("rome.yaml", rome), EditMethod.Rome).Validate(Gpt2Xl());
        Assert.Equal(new[] { (5, 10), (10, 10) }, r.ContextTemplateLengthParams);

        // EasyEdit's AlphaEdit file: a comment block, the projection cache P_loc, lm_head named "lm_head".
        string alpha = EasyEditMemitGpt2Xl.Replace("alg_name: \"MEMIT\"", "alg_name: \"AlphaEdit\"\n# where P is cached; not part of the edit\nP_loc: \"./null_space_project.pt\"")
            .Replace("lm_head_module: \"transformer.wte\"", "lm_head_module: \"lm_head\"") + "\nnullspace_threshold: 2e-2\nL2: 10\n";
        var a = HParams.Load(Write("alpha.yaml", alpha), EditMethod.AlphaEdit).Validate(Gpt2Xl());
        Assert.Equal(0.02, a.NullspaceThreshold);
        Assert.Equal(10.0, a.L2);
        Assert.Equal("./null_space_project.pt", a.RuntimeKeys["P_loc"]);
    }

    [Fact]
    public void AlphaEditsOwnJsonWithModelNameReads()
    {
        string json = """
            {
                "model_name": "gpt2-xl",
                "layers": [13, 14, 15, 16, 17], "clamp_norm_factor": 0.75, "layer_selection": "all", "fact_token": "subject_last",
                "v_num_grad_steps": 20, "v_lr": 5e-1, "v_loss_layer": 47, "v_weight_decay": 0.5, "kl_factor": 0.0625,
                "mom2_adjustment": true, "mom2_update_weight": 20000, "rewrite_module_tmp": "transformer.h.{}.mlp.c_proj",
                "layer_module_tmp": "transformer.h.{}", "mlp_module_tmp": "transformer.h.{}.mlp", "attn_module_tmp": "transformer.h.{}.attn",
                "ln_f_module": "transformer.ln_f", "lm_head_module": "lm_head", "mom2_dataset": "wikipedia", "mom2_n_samples": 100000,
                "mom2_dtype": "float32", "nullspace_threshold":2e-2, "L2":10
            }
            """;
        var h = HParams.Load(Write("gpt2-xl.json", json), EditMethod.AlphaEdit).Validate(Gpt2Xl());
        Assert.Equal("gpt2-xl", h.RuntimeKeys["model_name"]);
    }

    [Theory]
    [InlineData("ROME", EditMethod.Memit)]
    [InlineData("MEMIT", EditMethod.Rome)]
    [InlineData("FT", EditMethod.Memit)]
    public void AlgNameOfAnotherMethodIsRefusedByName(string alg, EditMethod method)
    {
        string text = EasyEditMemitGpt2Xl.Replace("alg_name: \"MEMIT\"", $"alg_name: \"{alg}\"").Replace("layers: [13, 14, 15, 16, 17]", "layers: [17]");
        var e = Assert.Throws<KeditException>(() => HParams.Load(Write("h.yaml", text), method));
        Assert.Contains("field 'alg_name'", e.Message);
        Assert.Contains(Path.Combine(_tmp, "h.yaml"), e.Message);
    }

    [Fact]
    public void KeysThatWouldChangeTheMathAreStillRefusedByName()
    {
        var e = Assert.Throws<KeditException>(() => HParams.Load(Write("h.yaml", EasyEditMemitGpt2Xl + "\nobjective_optimization: only_label\n"), EditMethod.Memit));
        Assert.Contains("objective_optimization", e.Message);
    }

    [Fact]
    public void YamlTypeErrorsNameTheField()
    {
        var e = Assert.Throws<KeditException>(() => HParams.Load(Write("h.yaml", EasyEditMemitGpt2Xl.Replace("v_lr: 5e-1", "v_lr: .inf")), EditMethod.Memit));
        Assert.Contains("v_lr", e.Message);
        var e2 = Assert.Throws<KeditException>(() => HParams.Load(Write("h2.yaml", "- 1\n- 2\n"), EditMethod.Memit));
        Assert.Contains("must be a YAML mapping", e2.Message);
    }

    // ---- KnowEdit ---------------------------------------------------------------------------------

    const string KnowEditCounterfact = """
        [{
            "subject": "Frederic Piesch",
            "prompt": "The name of the position held by Frederic Piesch is",
            "target_new": "Archbishop of Le\u00f3n, Mexico",
            "ground_truth": "mayor of Vienna",
            "portability": { "Subject_Aliasing": [ { "prompt": "The name of the position held by Frederic of Pieschen is", "ground_truth": "Archbishop of Le\u00f3n, Mexico" } ] },
            "locality": {
                "Relation_Specificity": [ { "prompt": "The gender of Frederic Piesch is", "ground_truth": "male" } ],
                "Forgetfulness": [ { "prompt": "The name of the position held by Frederic Piesch, which is not Archbishop of Le\u00f3n, Mexico, is", "ground_truth": "mayor of Vienna" } ]
            }
        },
        {
            "subject": "Leo Arons",
            "prompt": "The place of death of Leo Arons is",
            "target_new": "Berlin",
            "portability": {
                "Logical_Generalization": [ { "prompt": "Is Leo Arons still alive?", "ground_truth": [ ["no"], ["incorrect"] ] } ],
                "Reasoning": [ { "prompt": "The name of the continent which the place of death of Leo Arons is part of is", "ground_truth": [ ["Europe", "European continent"] ] } ]
            },
            "locality": { "Relation_Specificity": [ { "prompt": "The name of the father of Leo Arons is", "ground_truth": [ ["Albert Arons"] ] } ] }
        },
        {
            "subject": "Epaspidoceras",
            "target_new": "Noctuidae",
            "prompt": "Which family does Epaspidoceras belong to?",
            "ground_truth": [ "Aspidoceratidae" ],
            "rephrase_prompt": "What family are Epaspidoceras?",
            "cond": "Geometridae >> Noctuidae || Which family does Epaspidoceras belong to?",
            "locality": { "Relation_Specificity": [ { "prompt": "The taxon rank of Epaspidoceras is", "ground_truth": [ "genus" ] } ] },
            "portability": { "Reasoning": [ { "prompt": "What is the common name for the family Epaspidoceras belongs to?", "ground_truth": "Owlet moths" } ] }
        }]
        """;

    [Fact]
    public void KnowEditRecordsOfItsThreeFactDatasetsRead()
    {
        var rs = RequestLoader.Load(Write("knowedit.json", KnowEditCounterfact));
        Assert.Equal(3, rs.Count);
        Assert.All(rs, r => Assert.Equal(RequestFormat.KnowEdit, r.Format));

        var cf = rs[0];
        Assert.Equal("The name of the position held by {} is", cf.Prompt);
        Assert.Equal("mayor of Vienna", cf.TargetTrue);
        Assert.Equal(new PortabilityPrompt("Subject_Aliasing", "The name of the position held by Frederic of Pieschen is", ["Archbishop of León, Mexico"]), cf.Portability.Single(), new PortabilityComparer());
        Assert.Equal(new[] { "male", "mayor of Vienna" }, cf.NeighborhoodPrompts.Select(p => p.Answer));

        var recent = rs[1];
        Assert.Null(recent.TargetTrue);                      // wiki_recent inserts knowledge: no ground truth
        Assert.Equal(2, recent.Portability.Count);
        Assert.Equal(new[] { "no", "incorrect" }, recent.Portability[0].Answers);
        Assert.Equal(new[] { "Europe", "European continent" }, recent.Portability[1].Answers);
        Assert.Equal("Albert Arons", recent.NeighborhoodPrompts.Single().Answer);

        var zsre = rs[2];
        Assert.Equal("Aspidoceratidae", zsre.TargetTrue);
        Assert.Equal(new[] { "What family are Epaspidoceras?" }, zsre.ParaphrasePrompts);
        Assert.Equal("Owlet moths", zsre.Portability.Single().Answers.Single());
    }

    sealed class PortabilityComparer : IEqualityComparer<PortabilityPrompt>
    {
        public bool Equals(PortabilityPrompt? a, PortabilityPrompt? b) => a!.Category == b!.Category && a.Prompt == b.Prompt && a.Answers.SequenceEqual(b.Answers);
        public int GetHashCode(PortabilityPrompt p) => p.Prompt.GetHashCode();
    }

    [Fact]
    public void KnowEditWikiBioAndBrokenProbesAreRefusedByField()
    {
        var e = Assert.Throws<KeditException>(() => RequestLoader.Load(Write("wikibio.json", """[{"text": "t", "labels": "l", "concept": "c", "locality": {}}]""")));
        Assert.Contains("KnowEdit", e.Message);
        string bad = KnowEditCounterfact.Replace("\"ground_truth\": \"male\"", "\"ground_truth\": 3");
        var e2 = Assert.Throws<KeditException>(() => RequestLoader.Load(Write("bad.json", bad)));
        Assert.Contains("locality.Relation_Specificity[0].ground_truth", e2.Message);
        Assert.Contains("record [0]", e2.Message);
    }

    // ---- --limit / --offset and the lenient loader -----------------------------------------------

    static string Records(int n, int badAt = -1) => "[" + string.Join(",", Enumerable.Range(0, n).Select(i =>
        $$"""{"case_id": {{i}}, "prompt": "{} lives in", "subject": "Person{{i}}", "target_new": "{{(i == badAt ? "" : "City" + i)}}", "target_true": "Town"}""")) + "]";

    [Fact]
    public void LimitAndOffsetSliceByRecordIndexBeforeValidation()
    {
        string path = Write("many.json", Records(10, badAt: 8));
        var log = new StringWriter();
        var rs = RequestLoader.LoadForCommand(path, offset: 3, limit: 4, log);
        Assert.Equal(new int?[] { 3, 4, 5, 6 }, rs.Select(r => r.CaseId));
        Assert.Equal("", log.ToString());   // record 8 is outside the slice, so it is never read
        var e = Assert.Throws<KeditException>(() => RequestLoader.LoadForCommand(path, 10, null, log));
        Assert.Contains("--offset 10 is past the file's 10 record(s)", e.Message);
    }

    [Fact]
    public void OneBadRecordIsSkippedAndReportedByItsIndexInTheFile()
    {
        string path = Write("many.json", Records(10, badAt: 8));
        var log = new StringWriter();
        var rs = RequestLoader.LoadForCommand(path, offset: 5, limit: null, log);
        Assert.Equal(new int?[] { 5, 6, 7, 9 }, rs.Select(r => r.CaseId));
        Assert.Contains("skipped 1 of 5 record(s)", log.ToString());
        Assert.Contains("record 8: ", log.ToString());
        Assert.Contains("field 'target_new' is empty", log.ToString());
    }

    // ---- upstream statistics (.npz) --------------------------------------------------------------

    static void WriteNpz(string path, params (string Name, string Descr, long[] Shape, byte[] Data, bool Fortran)[] arrays) => NpyFiles.WriteNpz(path, arrays);

    static byte[] F32(float[] v) { var b = new byte[v.Length * 4]; Buffer.BlockCopy(v, 0, b, 0, b.Length); return b; }

    [Fact]
    public void RomeStatisticsNpzImportsAsTheSameSumsAndCount()
    {
        const int d = 5;
        var rng = new Random(3);
        var sum = new float[d * d];
        for (int t = 0; t < 40; t++)   // Σ k kᵀ over 40 keys, as upstream's SecondMoment accumulates
        {
            var k = Enumerable.Range(0, d).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) sum[i * d + j] += k[i] * k[j];
        }
        string npz = Path.Combine(_tmp, "transformer.h.3.mlp.c_proj_float32_mom2_100000.npz");
        WriteNpz(npz, ("mom2.mom2", "<f4", [d, d], F32(sum), false), ("mom2.count", "<i8", [], BitConverter.GetBytes(40L), false));
        Assert.Equal(3, UpstreamStatistics.LayerFromFileName(npz));

        string outPath = Path.Combine(_tmp, "imported.safetensors");
        var (code, _, err) = Editing.EditCliTests.Kedit("stats", "--import", npz, "--out", outPath);
        Assert.True(code == 0, err);
        var cov = Covariance.Load(outPath, [3], d);
        Assert.Equal(40, cov.Count(3));
        for (int i = 0; i < d * d; i++) Assert.Equal(sum[i], cov.Sum(3).Data[i]);
        // mom2.{l} is the mean, as kedit stats writes it.
        using var f = SafetensorsFile.Open(outPath);
        Assert.Equal(sum[7] / 40.0, f.ReadFloat32("mom2.3")[7], 6);

        // Fortran order is read transposed back; a symmetric sum reads the same either way, so use a skewed one.
        var skew = Enumerable.Range(0, d * d).Select(i => (float)i).ToArray();
        var fort = new float[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) fort[j * d + i] = skew[i * d + j];
        string npzF = Path.Combine(_tmp, "fortran.npz");
        WriteNpz(npzF, ("mom2.mom2", "<f4", [d, d], F32(fort), true), ("mom2.count", "<i8", [], BitConverter.GetBytes(1L), false));
        var c2 = UpstreamStatistics.Import(npzF, 0, d, Path.Combine(_tmp, "f.safetensors"));
        Assert.Equal(skew.Select(v => (double)v), c2.Sum(0).Data);
    }

    [Fact]
    public void BadStatisticsFilesAreRefusedInOneLineBeforeAllocating()
    {
        string torch = Path.Combine(_tmp, "P.pt");
        using (var zip = new ZipArchive(File.Create(torch), ZipArchiveMode.Create)) zip.CreateEntry("archive/data.pkl").Open().Dispose();
        Assert.Contains("PyTorch pickle", Assert.Throws<KeditException>(() => UpstreamStatistics.Import(torch, 0, null, Path.Combine(_tmp, "x"))).Message);

        string lying = Path.Combine(_tmp, "lying.npz");   // header claims a 100000² matrix over 16 bytes of data
        WriteNpz(lying, ("mom2.mom2", "<f4", [100000, 100000], new byte[16], false), ("mom2.count", "<i8", [], BitConverter.GetBytes(1L), false));
        var e = Assert.Throws<KeditException>(() => UpstreamStatistics.Import(lying, 0, null, Path.Combine(_tmp, "x")));
        Assert.Contains("mom2.mom2", e.Message);

        string wide = Path.Combine(_tmp, "wide.npz");
        WriteNpz(wide, ("mom2.mom2", "<f4", [2, 2], new byte[16], false), ("mom2.count", "<i8", [], BitConverter.GetBytes(1L), false));
        Assert.Contains("the model's MLP is 3 wide", Assert.Throws<KeditException>(() => UpstreamStatistics.Import(wide, 0, 3, Path.Combine(_tmp, "x"))).Message);

        string noCount = Path.Combine(_tmp, "nocount.npz");
        WriteNpz(noCount, ("mom2.mom2", "<f4", [2, 2], new byte[16], false));
        Assert.Contains("has no array 'mom2.count'", Assert.Throws<KeditException>(() => UpstreamStatistics.Import(noCount, 0, null, Path.Combine(_tmp, "x"))).Message);
        Assert.False(File.Exists(Path.Combine(_tmp, "x")));
    }

    // ---- hub ids ---------------------------------------------------------------------------------

    [Fact]
    public void HubIdResolvesInTheLocalHuggingFaceCacheOffline()
    {
        string hub = Path.Combine(_tmp, "hub");
        string repo = Path.Combine(hub, "models--acme--tiny-gpt2");
        string snap = Path.Combine(repo, "snapshots", "abc123");
        Directory.CreateDirectory(snap);
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", "old999"));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), "abc123\n");
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json" })
            File.Copy(TestPaths.Fixture("gpt2", f), Path.Combine(snap, f));
        string? saved = Environment.GetEnvironmentVariable("HF_HUB_CACHE");
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", hub);
        try
        {
            Assert.Equal(snap, ModelLocator.Resolve("acme/tiny-gpt2"));
            var (code, o, err) = Editing.EditCliTests.Kedit("info", "--model", "acme/tiny-gpt2", "--json");
            Assert.True(code == 0, err);
            Assert.Contains("\"model_type\": \"gpt2\"", o);
            var missing = Assert.Throws<KeditException>(() => ModelLocator.Resolve("acme/absent-model"));
            Assert.Contains("huggingface-cli download acme/absent-model", missing.Message);
            Assert.Contains(hub, missing.Message);
        }
        finally { Environment.SetEnvironmentVariable("HF_HUB_CACHE", saved); }
    }
}
