using Kedit.Editing.LinearAlgebra;
using System.Text.Json;
using System.Text.Json.Nodes;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Editing.Inputs;

public class HParamsTests
{
    // kmeng01/memit hparams/MEMIT/gpt2-xl.json, values as quoted in the spec §8.1 (upstream layout and spelling).
    const string MemitGpt2Xl = """
        {
            "layers": [
                13, 14, 15, 16, 17
            ],
            "clamp_norm_factor": 0.75,
            "layer_selection": "all",
            "fact_token": "subject_last",
            "v_num_grad_steps": 20,
            "v_lr": 5e-1,
            "v_loss_layer": 47,
            "v_weight_decay": 0.5,
            "kl_factor": 0.0625,
            "mom2_adjustment": true,
            "mom2_update_weight": 20000,
            "rewrite_module_tmp": "transformer.h.{}.mlp.c_proj",
            "layer_module_tmp": "transformer.h.{}",
            "mlp_module_tmp": "transformer.h.{}.mlp",
            "attn_module_tmp": "transformer.h.{}.attn",
            "ln_f_module": "transformer.ln_f",
            "lm_head_module": "transformer.wte",
            "mom2_dataset": "wikipedia",
            "mom2_n_samples": 100000,
            "mom2_dtype": "float32"
        }
        """;

    // kmeng01/memit hparams/ROME/gpt2-xl.json (spec §8.2).
    const string RomeGpt2Xl = """
        {
            "layers": [
                17
            ],
            "fact_token": "subject_last",
            "v_num_grad_steps": 20,
            "v_lr": 5e-1,
            "v_loss_layer": 47,
            "v_weight_decay": 0.5,
            "clamp_norm_factor": 4,
            "kl_factor": 0.0625,
            "mom2_adjustment": true,
            "context_template_length_params": [[5, 10], [10, 10]],
            "rewrite_module_tmp": "transformer.h.{}.mlp.c_proj",
            "layer_module_tmp": "transformer.h.{}",
            "mlp_module_tmp": "transformer.h.{}.mlp",
            "attn_module_tmp": "transformer.h.{}.attn",
            "ln_f_module": "transformer.ln_f",
            "lm_head_module": "transformer.wte",
            "mom2_dataset": "wikipedia",
            "mom2_n_samples": 100000,
            "mom2_dtype": "float32"
        }
        """;

    [Fact]
    public void UpstreamMemitGpt2XlParses()
    {
        var h = HParams.Parse(MemitGpt2Xl, EditMethod.Memit, "hparams/MEMIT/gpt2-xl.json").Validate(Gpt2(48));
        Assert.Equal(new[] { 13, 14, 15, 16, 17 }, h.Layers);
        Assert.Equal(17, h.ZLayer);
        Assert.Equal(0.75, h.ClampNormFactor);
        Assert.Equal("all", h.LayerSelection);
        Assert.Equal(FactToken.SubjectLast, h.FactToken);
        Assert.Equal(20, h.VNumGradSteps);
        Assert.Equal(0.5, h.VLr);
        Assert.Equal(47, h.VLossLayer);
        Assert.Equal(0.5, h.VWeightDecay);
        Assert.Equal(0.0625, h.KlFactor);
        Assert.True(h.Mom2Adjustment);
        Assert.Equal(20000.0, h.Mom2UpdateWeight);
        Assert.Equal("transformer.h.{}.mlp.c_proj", h.RewriteModuleTmp);
        Assert.Equal("transformer.h.{}", h.LayerModuleTmp);
        Assert.Equal("transformer.h.{}.mlp", h.MlpModuleTmp);
        Assert.Equal("transformer.h.{}.attn", h.AttnModuleTmp);
        Assert.Equal("transformer.ln_f", h.LnFModule);
        Assert.Equal("transformer.wte", h.LmHeadModule);
        Assert.Equal("wikipedia", h.Mom2Dataset);
        Assert.Equal(100000, h.Mom2NSamples);
        Assert.Equal("float32", h.Mom2Dtype);
        // Not in the upstream file: upstream's hard-coded early stop, torch Adam defaults, no PRUNE, generated templates.
        Assert.Equal(0.05, h.EarlyStopLoss);
        Assert.Equal(AdamSettings.Default, h.Adam);
        Assert.Null(h.Prune);
        Assert.Null(h.ContextTemplates);
        // The same file also serves D4S (spec §8.1).
        Assert.Equal(h.Layers, HParams.Parse(MemitGpt2Xl, EditMethod.D4S).Layers);
    }

    [Fact]
    public void UpstreamRomeGpt2XlParses()
    {
        var h = HParams.Parse(RomeGpt2Xl, EditMethod.Rome, "hparams/ROME/gpt2-xl.json").Validate(Gpt2(48));
        Assert.Equal(new[] { 17 }, h.Layers);
        Assert.Equal(4.0, h.ClampNormFactor);
        Assert.True(h.Mom2Adjustment);
        Assert.Null(h.Mom2UpdateWeight);
        Assert.Equal(new[] { (5, 10), (10, 10) }, h.ContextTemplateLengthParams);
    }

    [Fact]
    public void RomeAcceptsASingleLayerNumber()
    {
        var h = HParams.Parse(RomeGpt2Xl.Replace("\"layers\": [\n        17\n    ]", "\"layer\": 17"), EditMethod.Rome);
        Assert.Equal(new[] { 17 }, h.Layers);
    }

    [Fact]
    public void RomeFileIsNotEnoughForMemit()
    {
        var e = Assert.Throws<KeditException>(() => HParams.Parse(RomeGpt2Xl, EditMethod.Memit, "hparams/ROME/gpt2-xl.json"));
        Assert.Contains("hparams/ROME/gpt2-xl.json", e.Message);
        Assert.Contains("'mom2_update_weight' is missing", e.Message);
        Assert.Contains("memit", e.Message);
    }

    [Fact]
    public void MemitFileIsNotRome()
    {
        var e = Assert.Throws<KeditException>(() => HParams.Parse(MemitGpt2Xl, EditMethod.Rome, "m.json"));
        Assert.Contains("'layers'", e.Message);
        Assert.Contains("exactly one layer", e.Message);
    }

    public static TheoryData<string, string> FixtureSections()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in new[] { "gpt2", "llama", "gptj" })
            foreach (var section in new[] { "memit", "rome", "d4s", "d4s_accum", "seqmemit" })
                data.Add(model, section);
        return data;
    }

    [Theory]
    [MemberData(nameof(FixtureSections))]
    public void EveryFixtureSectionParses(string model, string section)
    {
        string path = TestPaths.Fixture(model, "hparams.json");
        var h = HParams.FromFixtureSection(path, section);

        using var file = JsonDocument.Parse(File.ReadAllText(path));
        var raw = file.RootElement.GetProperty(section);
        h.Validate(ModelConfig.Load(TestPaths.Fixture(model)));

        Assert.Equal(section == "rome" ? EditMethod.Rome : section.StartsWith("d4s") ? EditMethod.D4S : EditMethod.Memit, h.Method);
        Assert.Equal(raw.GetProperty("layers").EnumerateArray().Select(x => x.GetInt32()), h.Layers);
        Assert.Equal(raw.GetProperty("v_num_grad_steps").GetInt32(), h.VNumGradSteps);
        Assert.Equal(raw.GetProperty("v_lr").GetDouble(), h.VLr);
        Assert.Equal(raw.GetProperty("v_loss_layer").GetInt32(), h.VLossLayer);
        Assert.Equal(raw.GetProperty("v_weight_decay").GetDouble(), h.VWeightDecay);
        Assert.Equal(raw.GetProperty("clamp_norm_factor").GetDouble(), h.ClampNormFactor);
        Assert.Equal(raw.GetProperty("kl_factor").GetDouble(), h.KlFactor);
        Assert.Equal(raw.GetProperty("mom2_update_weight").GetDouble(), h.Mom2UpdateWeight);
        Assert.Equal(raw.GetProperty("early_stop_loss").GetDouble(), h.EarlyStopLoss);
        Assert.Equal("float64", h.Mom2Dtype);
        Assert.Equal(FactToken.SubjectLast, h.FactToken);

        // The file-level adam / prune objects are merged into each section.
        var adam = file.RootElement.GetProperty("adam");
        Assert.Equal(adam.GetProperty("lr").GetDouble(), h.Adam.Lr);
        Assert.Equal(adam.GetProperty("betas")[0].GetDouble(), h.Adam.Beta1);
        Assert.Equal(adam.GetProperty("betas")[1].GetDouble(), h.Adam.Beta2);
        Assert.Equal(adam.GetProperty("eps").GetDouble(), h.Adam.Eps);
        Assert.Equal(PruneMode.Log, h.Prune!.Mode);
        Assert.Equal(Math.E, h.Prune.Alpha);
        // upstream compute_z takes at most steps - 1 Adam steps; the fixture records that bound
        Assert.Equal(file.RootElement.GetProperty("adam_steps_max").GetInt32(), h.VNumGradSteps - 1);

        if (raw.TryGetProperty("restore_between_edits", out var restore)) Assert.Equal(restore.GetBoolean(), h.RestoreBetweenEdits);
        if (raw.TryGetProperty("sequence", out var seq)) Assert.Equal(seq.EnumerateArray().Select(x => x.GetInt32()), h.Sequence);
        if (raw.TryGetProperty("batch_per_step", out var bps)) Assert.Equal(bps.GetInt32(), h.BatchPerStep);

        AssertRoundTrips(h);
    }

    [Fact]
    public void FixtureSectionCanBeReadAsAJsonElementToo()
    {
        using var file = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("gpt2", "hparams.json")));
        var h = HParams.FromElement(file.RootElement.GetProperty("d4s_accum"), EditMethod.D4S, "gpt2 d4s_accum");
        Assert.False(h.RestoreBetweenEdits);
        Assert.Null(h.Prune); // not merged when reading a bare element
    }

    [Fact]
    public void UnknownFixtureSectionSuggestsOne()
    {
        var e = Assert.Throws<KeditException>(() => HParams.FromFixtureSection(TestPaths.Fixture("gpt2", "hparams.json"), "memitt", EditMethod.Memit));
        Assert.Contains("did you mean 'memit'", e.Message);
        var m = Assert.Throws<KeditException>(() => HParams.FromFixtureSection(TestPaths.Fixture("gpt2", "hparams.json"), "custom"));
        Assert.Contains("pass it explicitly", m.Message);
    }

    [Fact]
    public void ToJsonRoundTripsUpstreamText()
    {
        var h = HParams.Parse(MemitGpt2Xl, EditMethod.Memit);
        Assert.Equal(MemitGpt2Xl.Trim(), h.ToJson().Trim());
        AssertRoundTrips(h);
        AssertRoundTrips(HParams.Parse(RomeGpt2Xl, EditMethod.Rome));
    }

    static void AssertRoundTrips(HParams h)
    {
        var again = HParams.Parse(h.ToJson(), h.Method, h.Source);
        Assert.Equal(h.ToJson(), again.ToJson());
        foreach (var p in typeof(HParams).GetProperties())
        {
            object? a = p.GetValue(h), b = p.GetValue(again);
            if (a is System.Collections.IEnumerable ea && a is not string)
                Assert.Equal(ea.Cast<object>(), ((System.Collections.IEnumerable)b!).Cast<object>());
            else if (a is ContextTemplates ca)
                Assert.Equal(ca.ToJson(), ((ContextTemplates)b!).ToJson());
            else
                Assert.Equal(a, b);
        }
    }

    // ---- context templates extension -------------------------------------------------------------

    static string With(string json, string field, string valueJson)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        o[field] = valueJson is null ? null : JsonNode.Parse(valueJson);
        return o.ToJsonString();
    }

    static string Without(string json, string field)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        Assert.True(o.Remove(field));
        return o.ToJsonString();
    }

    [Fact]
    public void ContextTemplatesAsGroupsOrFlatList()
    {
        var memit = HParams.Parse(With(MemitGpt2Xl, "context_templates", """[["{}"], ["It was late.\n{}", "Yes!\n{}"]]"""), EditMethod.Memit);
        Assert.Equal(2, memit.ContextTemplates!.Groups.Count);
        Assert.Equal(new[] { "It was late.\n{}", "Yes!\n{}" }, memit.ContextTemplates.Groups[1]);
        AssertRoundTrips(memit);

        var rome = HParams.Parse(With(RomeGpt2Xl, "context_templates", """["{}", "It was late.\n{}"]"""), EditMethod.Rome);
        Assert.Equal(new[] { "{}", "It was late.\n{}" }, Assert.Single(rome.ContextTemplates!.Groups));

        var e = Assert.Throws<KeditException>(() => HParams.Parse(With(RomeGpt2Xl, "context_templates", """[["{}"], ["A. {}"]]"""), EditMethod.Rome, "r.json"));
        Assert.Contains("'context_templates'", e.Message);
        Assert.Contains("flat list", e.Message);

        var bad = Assert.Throws<KeditException>(() => HParams.Parse(With(MemitGpt2Xl, "context_templates", """[["{}"], ["no slot"]]"""), EditMethod.Memit, "m.json"));
        Assert.Contains("m.json", bad.Message);
        Assert.Contains("[1][0]", bad.Message);
    }

    // ---- rejections --------------------------------------------------------------------------------

    static void Rejects(string json, EditMethod method, params string[] fragments)
    {
        var e = Assert.Throws<KeditException>(() => HParams.Parse(json, method, "my-hparams.json"));
        Assert.Contains("my-hparams.json", e.Message);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
    }

    [Theory]
    [InlineData("v_lrr", "v_lr")]
    [InlineData("klfactor", "kl_factor")]
    [InlineData("mom2_update_weigth", "mom2_update_weight")]
    [InlineData("context_template", "context_templates")]
    public void UnknownFieldIsNamedWithASuggestion(string typo, string known) =>
        Rejects(With(MemitGpt2Xl, typo, "1"), EditMethod.Memit, $"'{typo}'", "not a known field", $"did you mean '{known}'");

    [Fact]
    public void UnknownFieldWithoutNearMatchListsKnownFields() =>
        Rejects(With(MemitGpt2Xl, "zzzz_totally_different", "1"), EditMethod.Memit, "'zzzz_totally_different'", "known: ");

    [Theory]
    [InlineData("v_lr")]
    [InlineData("v_num_grad_steps")]
    [InlineData("fact_token")]
    [InlineData("kl_factor")]
    [InlineData("layers")]
    [InlineData("mom2_update_weight")]
    public void MissingRequiredFieldIsNamed(string field) =>
        Rejects(Without(MemitGpt2Xl, field), EditMethod.Memit, $"'{field}' is missing");

    [Fact]
    public void AlphaEditNeedsItsOwnFields()
    {
        Rejects(MemitGpt2Xl, EditMethod.AlphaEdit, "'nullspace_threshold' is missing", "alphaedit");
        var h = HParams.Parse(With(With(MemitGpt2Xl, "nullspace_threshold", "2e-2"), "L2", "10"), EditMethod.AlphaEdit);
        Assert.Equal(0.02, h.NullspaceThreshold);
        Assert.Equal(10.0, h.L2);
    }

    [Theory]
    [InlineData("v_num_grad_steps", "-1", "at least 1")]
    [InlineData("v_num_grad_steps", "0", "at least 1")]
    [InlineData("v_lr", "0", "positive")]
    [InlineData("v_lr", "-0.5", "positive")]
    [InlineData("clamp_norm_factor", "0", "positive")]
    [InlineData("mom2_update_weight", "0", "positive")]
    [InlineData("v_weight_decay", "-1", "≥ 0")]
    [InlineData("kl_factor", "-0.1", "≥ 0")]
    [InlineData("v_loss_layer", "-1", "≥ 0")]
    [InlineData("mom2_n_samples", "0", "at least 1")]
    [InlineData("layers", "[]", "empty")]
    [InlineData("layers", "[-1, 2]", "≥ 0")]
    [InlineData("layers", "[3, 2]", "ascending")]
    [InlineData("layers", "[2, 2]", "ascending")]
    [InlineData("fact_token", "\"subject\"", "subject_last")]
    [InlineData("layer_selection", "\"some\"", "\"all\"")]
    [InlineData("mom2_dtype", "\"float16\"", "float32")]
    [InlineData("rewrite_module_tmp", "\"transformer.h.mlp\"", "exactly one")]
    [InlineData("context_template_length_params", "[[5, 10], [10]]", "context_template_length_params[1]")]
    public void OutOfRangeValues(string field, string value, string problem) =>
        Rejects(With(MemitGpt2Xl, field, value), EditMethod.Memit, $"'{field}", problem);

    [Theory]
    [InlineData("v_num_grad_steps", "\"20\"", "must be an integer, got a string")]
    [InlineData("v_num_grad_steps", "20.5", "must be an integer")]
    [InlineData("v_lr", "\"0.5\"", "must be a number, got a string")]
    [InlineData("mom2_adjustment", "\"true\"", "must be true or false")]
    [InlineData("layers", "17", "must be an array")]
    [InlineData("layers", "[13, \"14\"]", "'layers[1]' must be an integer")]
    [InlineData("adam", "[]", "must be an object")]
    public void WrongTypes(string field, string value, string problem) =>
        Rejects(With(MemitGpt2Xl, field, value), EditMethod.Memit, $"'{field}", problem);

    [Fact]
    public void ValidateChecksLayersAgainstTheModel()
    {
        var h = HParams.Parse(MemitGpt2Xl, EditMethod.Memit, "m.json");
        var e = Assert.Throws<KeditException>(() => h.Validate(Gpt2(12)));
        Assert.Contains("m.json", e.Message);
        Assert.Contains("'layers' holds layer 13", e.Message);
        var loss = Assert.Throws<KeditException>(() => h.Validate(Gpt2(20)));
        Assert.Contains("'v_loss_layer'", loss.Message);
        Assert.Same(h, h.Validate(Gpt2(48)));
    }

    /// <summary>A GPT-2 config of the given depth (the templates of the gpt2-xl files name its modules).</summary>
    static ModelConfig Gpt2(int layers) => ModelConfig.Parse(JsonDocument.Parse(
        $$"""{"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 1600, "n_layer": {{layers}}, "n_head": 25}""").RootElement, "config.json");

    [Theory]
    [InlineData("rewrite_module_tmp", "transformer.h.{}.mlp.c_fc", "transformer.h.{}.mlp.c_proj")]
    [InlineData("rewrite_module_tmp", "transformer.h.{}.mlp.fc_out", "transformer.h.{}.mlp.c_proj")]
    [InlineData("mlp_module_tmp", "transformer.h.{}.attn", "transformer.h.{}.mlp")]
    [InlineData("layer_module_tmp", "model.layers.{}", "transformer.h.{}")]
    public void ModuleTemplatesNamingAnotherModuleAreRefusedByName(string field, string value, string supported)
    {
        var h = HParams.Parse(With(MemitGpt2Xl, field, $"\"{value}\""), EditMethod.Memit, "m.json");
        var e = Assert.Throws<KeditException>(() => h.Validate(Gpt2(48)));
        Assert.Contains($"m.json: field '{field}' names \"{value}\"", e.Message);
        Assert.Contains($"supports only \"{supported}\"", e.Message);
    }

    [Fact]
    public void AdamAndPruneSettingsAreChecked()
    {
        Rejects(With(MemitGpt2Xl, "adam", """{"lr": 0.1}"""), EditMethod.Memit, "'adam.lr'", "v_lr");
        Rejects(With(MemitGpt2Xl, "adam", """{"amsgrad": true}"""), EditMethod.Memit, "'adam.amsgrad'");
        Rejects(With(MemitGpt2Xl, "adam", """{"weight_decay": 0.01}"""), EditMethod.Memit, "'adam.weight_decay'");
        Rejects(With(MemitGpt2Xl, "adam", """{"betas": [0.9]}"""), EditMethod.Memit, "'adam.betas'");
        Rejects(With(MemitGpt2Xl, "adam", """{"beta": [0.9, 0.99]}"""), EditMethod.Memit, "'adam.beta'", "did you mean 'adam.betas'");
        Rejects(With(MemitGpt2Xl, "prune", """{"mode": "log3"}"""), EditMethod.Memit, "'prune.mode'", "log1_2");
        Rejects(With(MemitGpt2Xl, "prune", """{}"""), EditMethod.Memit, "'prune.mode' is missing");
        // The fixtures' descriptive notes of their PRUNE run are not settings: a user file naming them would change nothing.
        Rejects(With(MemitGpt2Xl, "prune", """{"mode": "log", "rank_tol": "1e-3"}"""), EditMethod.Memit, "'prune.rank_tol'");
        var p = HParams.Parse(With(MemitGpt2Xl, "prune", """{"mode": "log1_2", "in_loop": true}"""), EditMethod.Memit).Prune!;
        Assert.Equal(1.2, p.Alpha);
        Assert.True(p.InLoop);
        Assert.Null(HParams.Parse(With(MemitGpt2Xl, "prune", """{"mode": "linear"}"""), EditMethod.Memit).Prune!.Alpha);
    }

    [Fact]
    public void LayerAndLayersTogetherOrLayerForMemitAreRejected()
    {
        Rejects(With(RomeGpt2Xl, "layer", "17"), EditMethod.Rome, "'layer'", "both");
        Rejects(With(MemitGpt2Xl, "layer", "17"), EditMethod.Memit, "'layer'", "\"layers\"");
    }

    [Fact]
    public void FileErrors()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"kedit-missing-{Guid.NewGuid():N}.json");
        Assert.Contains(missing, Assert.Throws<KeditException>(() => HParams.Load(missing, EditMethod.Memit)).Message);
        var broken = Assert.Throws<KeditException>(() => HParams.Parse("{\n \"layers\": [1,\n}", EditMethod.Memit, "b.json"));
        Assert.Contains("b.json", broken.Message);
        Assert.Contains("line 3", broken.Message);
        Assert.Contains("must be a JSON object", Assert.Throws<KeditException>(() => HParams.Parse("[1]", EditMethod.Memit)).Message);

        string path = Path.Combine(Path.GetTempPath(), $"kedit-hp-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, RomeGpt2Xl);
        try { Assert.Equal(path, HParams.Load(path, EditMethod.Rome).Source); }
        finally { File.Delete(path); }
    }
}
