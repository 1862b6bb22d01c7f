using Kedit.Editing.LinearAlgebra;
using Kedit.Models;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kedit.Editing.Inputs;

/// <summary>The editing method whose required hyperparameters apply.</summary>
public enum EditMethod
{
    /// <summary>ROME: one layer, rank-one update (spec §10); needs <c>mom2_adjustment</c>.</summary>
    Rome,
    /// <summary>MEMIT: batch update across layers (§11); needs <c>mom2_update_weight</c>.</summary>
    Memit,
    /// <summary>D4S: MEMIT with dumped history (§12.2); same fields as MEMIT.</summary>
    D4S,
    /// <summary>AlphaEdit (optional extension, §14): MEMIT fields plus <c>nullspace_threshold</c> and <c>L2</c>.</summary>
    AlphaEdit,
}

/// <summary>Token whose key/value is edited (spec §4.2, §6.3): the values of upstream <c>fact_token</c>.</summary>
public enum FactToken
{
    /// <summary><c>subject_last</c>: last token of the subject (every published config).</summary>
    SubjectLast,
    /// <summary><c>subject_first</c>.</summary>
    SubjectFirst,
    /// <summary><c>subject_first_after_last</c>.</summary>
    SubjectFirstAfterLast,
    /// <summary><c>last</c>: last prompt token.</summary>
    Last,
}

/// <summary>Optimizer settings of compute_z (torch Adam, spec §7.4). Only plain Adam without weight decay is accepted.</summary>
public sealed record AdamSettings
{
    /// <summary>Learning rate if stated; must equal <c>v_lr</c> when both are given.</summary>
    public double? Lr { get; init; }
    /// <summary>First-moment decay β1 (torch default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>Second-moment decay β2 (torch default 0.999).</summary>
    public double Beta2 { get; init; } = 0.999;
    /// <summary>Denominator epsilon (torch default 1e-8).</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>The torch defaults used by every reference.</summary>
    public static AdamSettings Default { get; } = new();
}

/// <summary>PRUNE settings (spec §13): restraint function and when it is applied.</summary>
public sealed record PruneSettings
{
    /// <summary>Restraint function.</summary>
    public PruneMode Mode { get; init; } = PruneMode.Log;

    /// <summary>Non-reference flagged mode (§13.4): compute the next edit on the restrained weights.</summary>
    public bool InLoop { get; init; }

    /// <summary>Logarithm base α of the log modes; null for <see cref="PruneMode.Linear"/>.</summary>
    public double? Alpha => Mode switch
    {
        PruneMode.Log => Math.E,
        PruneMode.Log2 => 2.0,
        PruneMode.Log1_5 => 1.5,
        PruneMode.Log1_2 => 1.2,
        _ => null,
    };

    internal static readonly Dictionary<string, PruneMode> Names = new(StringComparer.Ordinal)
    {
        ["log"] = PruneMode.Log, ["log2"] = PruneMode.Log2, ["log1_5"] = PruneMode.Log1_5,
        ["log1_2"] = PruneMode.Log1_2, ["linear"] = PruneMode.Linear,
    };
}

/// <summary>
/// Hyperparameters of one editing method, read from the JSON files of kmeng01/memit unchanged
/// (<c>hparams/MEMIT/*.json</c>, <c>hparams/ROME/*.json</c>), from a section of the golden fixtures'
/// <c>hparams.json</c>, or from AlphaEdit's files. One field set for all methods; each method has its
/// own required fields. Unknown fields, missing required fields, wrong types and out-of-range values
/// are <see cref="KeditException"/>s naming the field and the file. The JSON text is kept
/// (<see cref="ToJson"/>) for the run journal.
/// </summary>
public sealed class HParams
{
    static readonly string[] CommonRequired =
        ["fact_token", "v_num_grad_steps", "v_lr", "v_loss_layer", "v_weight_decay", "clamp_norm_factor", "kl_factor"];

    /// <summary>
    /// Keys of EasyEdit's YAML and AlphaEdit's JSON that say where and how a Python run happens, not what the edit
    /// computes (model path, statistics folder, GPU index, model parallelism, batch size of their loop, projection
    /// cache, half precision of the loaded model). They are accepted, kept in the journal with the rest of the file
    /// and listed by <see cref="RuntimeKeys"/>; <c>alg_name</c> is checked against the method.
    /// </summary>
    public static readonly string[] RuntimeFields =
        ["alg_name", "model_name", "stats_dir", "device", "model_parallel", "batch_size", "P_loc", "fp16", "results_dir"];

    static readonly string[] KnownFields =
    [
        // kmeng01/memit MEMITHyperParams / ROMEHyperParams
        "layers", "layer_selection", "fact_token", "v_num_grad_steps", "v_lr", "v_loss_layer", "v_weight_decay",
        "clamp_norm_factor", "kl_factor", "mom2_adjustment", "mom2_update_weight", "context_template_length_params",
        "rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp", "attn_module_tmp", "ln_f_module", "lm_head_module",
        "mom2_dataset", "mom2_n_samples", "mom2_dtype",
        // ROME written with a single layer number
        "layer",
        // golden fixtures' extras
        "early_stop_loss", "cov_cast_to_model_dtype", "restore_between_edits", "sequence", "batch_per_step", "adam", "prune",
        // AlphaEdit
        "nullspace_threshold", "L2",
        // engine extension: fixed context templates (spec §5.3, mode Fixed)
        "context_templates",
        .. RuntimeFields,
    ];


    static readonly string[] AdamFields = ["lr", "betas", "eps", "weight_decay", "amsgrad"];
    static readonly string[] PruneFields = ["mode", "in_loop"];

    static readonly Dictionary<string, FactToken> FactTokenNames = new(StringComparer.Ordinal)
    {
        ["subject_last"] = FactToken.SubjectLast, ["subject_first"] = FactToken.SubjectFirst,
        ["subject_first_after_last"] = FactToken.SubjectFirstAfterLast, ["last"] = FactToken.Last,
    };

    /// <summary>The hparams spelling of a fact token ("subject_last", "last", …).</summary>
    public static string FactTokenName(FactToken token) => FactTokenNames.First(kv => kv.Value == token).Key;

    /// <summary>Required fields (besides <c>layers</c>) of <paramref name="method"/>.</summary>
    public static IReadOnlyList<string> RequiredFields(EditMethod method) => method switch
    {
        EditMethod.Rome => [.. CommonRequired, "mom2_adjustment"],
        EditMethod.Memit or EditMethod.D4S => [.. CommonRequired, "mom2_update_weight"],
        EditMethod.AlphaEdit => [.. CommonRequired, "mom2_update_weight", "nullspace_threshold", "L2"],
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>Every field name this parser knows.</summary>
    public static IReadOnlyList<string> AllFields => KnownFields;

    readonly string _json;

    HParams(string json, string source, EditMethod method) { _json = json; Source = source; Method = method; }

    /// <summary>Method whose required fields were checked.</summary>
    public EditMethod Method { get; }
    /// <summary>File (and fixture section) the values came from.</summary>
    public string Source { get; }

    /// <summary>Edited layers 𝓛, strictly ascending; ROME has exactly one.</summary>
    public IReadOnlyList<int> Layers { get; private set; } = [];
    /// <summary>The z-layer ℓ* = last edited layer.</summary>
    public int ZLayer => Layers[^1];
    /// <summary><c>layer_selection</c> ("all" or "random"); read by no reference code.</summary>
    public string? LayerSelection { get; private set; }
    /// <summary><c>fact_token</c>.</summary>
    public FactToken FactToken { get; private set; }
    /// <summary><c>v_num_grad_steps</c> S (≥ 1).</summary>
    public int VNumGradSteps { get; private set; }
    /// <summary><c>v_lr</c>: Adam learning rate (&gt; 0).</summary>
    public double VLr { get; private set; }
    /// <summary><c>v_loss_layer</c>: block whose output feeds the loss (upstream: the last block).</summary>
    public int VLossLayer { get; private set; }
    /// <summary><c>v_weight_decay</c> ω (≥ 0).</summary>
    public double VWeightDecay { get; private set; }
    /// <summary><c>clamp_norm_factor</c> c (&gt; 0).</summary>
    public double ClampNormFactor { get; private set; }
    /// <summary><c>kl_factor</c> β (≥ 0).</summary>
    public double KlFactor { get; private set; }
    /// <summary><c>mom2_adjustment</c>: ROME applies C⁻¹ to the key; MEMIT/D4S ignore it. False when absent.</summary>
    public bool Mom2Adjustment { get; private set; }
    /// <summary><c>mom2_update_weight</c> λ (&gt; 0), or null (ROME).</summary>
    public double? Mom2UpdateWeight { get; private set; }
    /// <summary><c>mom2_dataset</c>, or null.</summary>
    public string? Mom2Dataset { get; private set; }
    /// <summary><c>mom2_n_samples</c> (number of articles), or null.</summary>
    public int? Mom2NSamples { get; private set; }
    /// <summary><c>mom2_dtype</c>: "float32" or "float64", or null.</summary>
    public string? Mom2Dtype { get; private set; }
    /// <summary>ROME <c>context_template_length_params</c>: (total length, number of samples) pairs, or null.</summary>
    public IReadOnlyList<(int Length, int Count)>? ContextTemplateLengthParams { get; private set; }
    /// <summary>Upstream module-name template of the edited matrix, e.g. "transformer.h.{}.mlp.c_proj", or null.</summary>
    public string? RewriteModuleTmp { get; private set; }
    /// <summary>Upstream <c>layer_module_tmp</c>, or null.</summary>
    public string? LayerModuleTmp { get; private set; }
    /// <summary>Upstream <c>mlp_module_tmp</c>, or null.</summary>
    public string? MlpModuleTmp { get; private set; }
    /// <summary>Upstream <c>attn_module_tmp</c>, or null.</summary>
    public string? AttnModuleTmp { get; private set; }
    /// <summary>Upstream <c>ln_f_module</c>, or null.</summary>
    public string? LnFModule { get; private set; }
    /// <summary>Upstream <c>lm_head_module</c>, or null.</summary>
    public string? LmHeadModule { get; private set; }
    /// <summary>compute_z stops when the loss falls below this (upstream hard-codes 5e-2; fixture field <c>early_stop_loss</c>).</summary>
    public double EarlyStopLoss { get; private set; } = 0.05;
    /// <summary>Fixture <c>cov_cast_to_model_dtype</c>, or null.</summary>
    public bool? CovCastToModelDtype { get; private set; }
    /// <summary>D4S <c>restore_between_edits</c> (true = the reference restore-to-W0 mode), or null.</summary>
    public bool? RestoreBetweenEdits { get; private set; }
    /// <summary>Fixture <c>sequence</c>: request indices in edit order, or null.</summary>
    public IReadOnlyList<int>? Sequence { get; private set; }
    /// <summary>Fixture <c>batch_per_step</c> (requests per sequential step, ≥ 1), or null.</summary>
    public int? BatchPerStep { get; private set; }
    /// <summary>Optimizer settings (torch Adam defaults when <c>adam</c> is absent).</summary>
    public AdamSettings Adam { get; private set; } = AdamSettings.Default;
    /// <summary>PRUNE settings, or null when PRUNE is not configured.</summary>
    public PruneSettings? Prune { get; private set; }
    /// <summary>AlphaEdit <c>nullspace_threshold</c>, or null.</summary>
    public double? NullspaceThreshold { get; private set; }
    /// <summary>AlphaEdit <c>L2</c> (α), or null.</summary>
    public double? L2 { get; private set; }
    /// <summary>Fixed context templates (engine extension <c>context_templates</c>), or null to generate them.</summary>
    public ContextTemplates? ContextTemplates { get; private set; }

    /// <summary>
    /// Reads an hparams file for <paramref name="method"/>: kmeng01/memit's or AlphaEdit's JSON, or EasyEdit's YAML
    /// (a file named *.yaml / *.yml, or one whose text does not start with '{'), converted to the same JSON object.
    /// </summary>
    /// <exception cref="KeditException">Missing file, broken JSON or YAML, or an invalid / unknown / missing field.</exception>
    public static HParams Load(string path, EditMethod method)
    {
        string text = JsonFields.ReadFile(path, "hparams");
        if (!IsYaml(path, text)) return Parse(text, method, path);
        var node = Kedit.IO.Yaml.Parse(text, path);
        if (node is not JsonObject)
            throw new KeditException($"{path}: hparams must be a YAML mapping of fields (\"layers: [...]\", ...), got {(node == null ? "an empty document" : node.GetValueKind().ToString().ToLowerInvariant())}");
        return Parse(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), method, path);
    }

    static bool IsYaml(string path, string text)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".yaml" or ".yml") return true;
        if (ext == ".json") return false;
        foreach (char c in text) if (!char.IsWhiteSpace(c) && c != '\uFEFF') return c is not ('{' or '[');
        return false;
    }

    /// <summary>The runtime keys (<see cref="RuntimeFields"/>) the file gave, with their values as written.</summary>
    public IReadOnlyDictionary<string, string> RuntimeKeys { get; private set; } = new Dictionary<string, string>();

    /// <summary>Parses hparams JSON text (one object); <paramref name="source"/> names it in errors.</summary>
    public static HParams Parse(string json, EditMethod method, string source = "hparams")
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = JsonFields.ParseDocument(json, source);
        return FromElement(doc.RootElement, method, source);
    }

    /// <summary>Reads hparams from a JSON object element (e.g. one element of a larger document).</summary>
    public static HParams FromElement(JsonElement element, EditMethod method, string source = "hparams")
    {
        var f = new JsonFields(source);
        if (element.ValueKind != JsonValueKind.Object)
            throw f.Fail($"hparams must be a JSON object, got {JsonFields.Kind(element)}");
        var h = new HParams(element.GetRawText(), source, method);
        h.Read(element, f);
        return h;
    }

    /// <summary>
    /// Reads one method's section of a golden-fixture <c>hparams.json</c> (sections <c>memit</c>, <c>rome</c>,
    /// <c>d4s</c>, <c>d4s_accum</c>, <c>seqmemit</c>); the method follows from the section name. The file's
    /// top-level <c>adam</c> and <c>prune</c> objects apply to every section and are merged in.
    /// </summary>
    public static HParams FromFixtureSection(string path, string section) =>
        FromFixtureSection(path, section, MethodOfSection(section)
            ?? throw new KeditException($"{path}: cannot tell the method of section '{section}'; pass it explicitly (known sections: memit, seqmemit, rome, d4s, d4s_accum)"));

    /// <summary>As <see cref="FromFixtureSection(string, string)"/> with an explicit method.</summary>
    public static HParams FromFixtureSection(string path, string section, EditMethod method)
    {
        string text = JsonFields.ReadFile(path, "hparams");
        using var doc = JsonFields.ParseDocument(text, path);
        var root = doc.RootElement;
        var f = new JsonFields(path);
        if (root.ValueKind != JsonValueKind.Object)
            throw f.Fail($"a fixture hparams file must be a JSON object of sections, got {JsonFields.Kind(root)}");
        if (!root.TryGetProperty(section, out var sec))
        {
            var sections = root.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Object && p.Name is not ("adam" or "prune")).Select(p => p.Name).ToList();
            string? guess = JsonFields.Closest(section, sections);
            throw f.Fail($"has no section '{section}'{(guess is null ? "" : $"; did you mean '{guess}'?")} (sections: {string.Join(", ", sections)})");
        }
        f.Object(sec, section);
        var merged = JsonNode.Parse(sec.GetRawText())!.AsObject();
        foreach (string shared in new[] { "adam", "prune" })
            if (!merged.ContainsKey(shared) && root.TryGetProperty(shared, out var v))
                merged[shared] = JsonNode.Parse(v.GetRawText());
        // The fixture generator's descriptions of its PRUNE run (which weights, which rank rule: the engine's own), not settings.
        if (merged["prune"] is JsonObject prune) { prune.Remove("applied_to"); prune.Remove("rank_tol"); }
        string json = merged.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        return Parse(json, method, $"{path} [{section}]");
    }

    static EditMethod? MethodOfSection(string section) => section.ToLowerInvariant() switch
    {
        "rome" => EditMethod.Rome,
        "memit" or "seqmemit" => EditMethod.Memit,
        "d4s" or "d4s_accum" => EditMethod.D4S,
        "alphaedit" => EditMethod.AlphaEdit,
        _ => null,
    };

    /// <summary>The JSON object these values were read from, unchanged; <see cref="Parse"/> reads it back to equal values.</summary>
    public string ToJson() => _json;

    /// <summary>
    /// Checks the hparams against the model they will edit: the layer indices against its blocks, and the
    /// upstream module templates against its module names — kedit edits the MLP down projection, reads keys at
    /// its input and values at the MLP output of the block, so <c>rewrite_module_tmp</c>, <c>mlp_module_tmp</c>
    /// and <c>layer_module_tmp</c> naming anything else (or another architecture's module) are refused by name.
    /// </summary>
    /// <exception cref="KeditException">A layer or <c>v_loss_layer</c> is outside the model, or a template names another module.</exception>
    public HParams Validate(ModelConfig model)
    {
        var f = new JsonFields(Source);
        int numLayers = model.Layers;
        string block = model.Architecture == Architecture.Llama ? "model.layers.{}" : "transformer.h.{}";
        string rewrite = model.DownProjName(0).Replace(".0.", ".{}.")[..^".weight".Length];
        foreach (var (field, value, expected) in new[] { ("rewrite_module_tmp", RewriteModuleTmp, rewrite), ("mlp_module_tmp", MlpModuleTmp, block + ".mlp"), ("layer_module_tmp", LayerModuleTmp, block) })
            if (value != null && value != expected)
                throw f.Fail(field, $"names \"{value}\"; on this {model.ModelType} model kedit supports only \"{expected}\"");
        foreach (int l in Layers)
            if (l >= numLayers)
                throw f.Fail("layers", $"holds layer {l}, out of range for a model with {numLayers} layer(s) (0..{numLayers - 1})");
        if (VLossLayer >= numLayers)
            throw f.Fail("v_loss_layer", $"is {VLossLayer}, out of range for a model with {numLayers} layer(s) (0..{numLayers - 1}); upstream uses the last layer, {numLayers - 1}");
        return this;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Method} layers [{string.Join(",", Layers)}], steps {VNumGradSteps}, v_lr {VLr}, λ {Mom2UpdateWeight?.ToString() ?? "-"} ({Source})";

    // ---- parsing --------------------------------------------------------------------------------

    void Read(JsonElement o, JsonFields f)
    {
        string methodName = Method.ToString().ToLowerInvariant();
        f.CheckKeys(o, null, KnownFields, shapeName: $"{methodName} hparams");
        foreach (string name in RequiredFields(Method))
            f.Required(o, name, hint: $"required for {methodName}");

        ReadLayers(o, f, methodName);
        ReadRuntimeKeys(o, f, methodName);

        string fact = f.RequiredString(o, "fact_token");
        if (!FactTokenNames.TryGetValue(fact, out var factToken))
            throw f.Fail("fact_token", $"is \"{fact}\"; expected one of {string.Join(", ", FactTokenNames.Keys)}");
        FactToken = factToken;

        LayerSelection = f.OptionalString(o, "layer_selection");
        if (LayerSelection is not null and not ("all" or "random"))
            throw f.Fail("layer_selection", $"is \"{LayerSelection}\"; expected \"all\" or \"random\"");

        VNumGradSteps = f.RequiredInt(o, "v_num_grad_steps");
        if (VNumGradSteps is < 1 or > MaxGradSteps) throw f.Fail("v_num_grad_steps", $"must be at least 1 and at most {MaxGradSteps}, got {VNumGradSteps}");
        VLr = Positive(f, o, "v_lr");
        VLossLayer = f.RequiredInt(o, "v_loss_layer");
        if (VLossLayer < 0) throw f.Fail("v_loss_layer", $"must be a layer index (≥ 0), got {VLossLayer}");
        VWeightDecay = NonNegative(f, o, "v_weight_decay");
        ClampNormFactor = Positive(f, o, "clamp_norm_factor");
        KlFactor = NonNegative(f, o, "kl_factor");
        Mom2Adjustment = f.OptionalBool(o, "mom2_adjustment") ?? false;
        Mom2UpdateWeight = f.Has(o, "mom2_update_weight") ? Positive(f, o, "mom2_update_weight") : null;

        Mom2Dataset = f.OptionalString(o, "mom2_dataset");
        if (Mom2Dataset is not null && Mom2Dataset.Trim().Length == 0) throw f.Fail("mom2_dataset", "is empty");
        Mom2NSamples = f.OptionalInt(o, "mom2_n_samples");
        if (Mom2NSamples is < 1) throw f.Fail("mom2_n_samples", $"must be at least 1, got {Mom2NSamples}");
        Mom2Dtype = f.OptionalString(o, "mom2_dtype");
        if (Mom2Dtype is not null and not ("float32" or "float64"))
            throw f.Fail("mom2_dtype", $"is \"{Mom2Dtype}\"; the engine accumulates second moments in \"float32\" or \"float64\"");

        if (f.Has(o, "context_template_length_params"))
        {
            var outer = f.Array(o.GetProperty("context_template_length_params"), "context_template_length_params");
            var pairs = new List<(int, int)>();
            int i = 0;
            foreach (var pair in outer.EnumerateArray())
            {
                string path = $"context_template_length_params[{i++}]";
                var xs = f.IntList(pair, path);
                if (xs.Count != 2 || xs[0] < 1 || xs[1] < 1 || xs[1] > MaxTemplatesPerLength)
                    throw f.Fail(path, $"must be a pair [length, count] of positive integers, count at most {MaxTemplatesPerLength}, got {pair.GetRawText()}");
                pairs.Add((xs[0], xs[1]));
            }
            ContextTemplateLengthParams = pairs.AsReadOnly();
        }

        RewriteModuleTmp = ModuleTemplate(f, o, "rewrite_module_tmp");
        LayerModuleTmp = ModuleTemplate(f, o, "layer_module_tmp");
        MlpModuleTmp = ModuleTemplate(f, o, "mlp_module_tmp");
        AttnModuleTmp = ModuleTemplate(f, o, "attn_module_tmp");
        LnFModule = f.OptionalString(o, "ln_f_module");
        LmHeadModule = f.OptionalString(o, "lm_head_module");

        if (f.Has(o, "early_stop_loss")) EarlyStopLoss = NonNegative(f, o, "early_stop_loss");
        CovCastToModelDtype = f.OptionalBool(o, "cov_cast_to_model_dtype");
        RestoreBetweenEdits = f.OptionalBool(o, "restore_between_edits");
        if (f.Has(o, "sequence"))
        {
            var seq = f.IntList(o.GetProperty("sequence"), "sequence");
            int bad = seq.FindIndex(x => x < 0);
            if (bad >= 0) throw f.Fail($"sequence[{bad}]", $"must be a request index (≥ 0), got {seq[bad]}");
            Sequence = seq.AsReadOnly();
        }
        BatchPerStep = f.OptionalInt(o, "batch_per_step");
        if (BatchPerStep is < 1) throw f.Fail("batch_per_step", $"must be at least 1, got {BatchPerStep}");

        if (f.Has(o, "adam")) Adam = ReadAdam(f, f.Object(o.GetProperty("adam"), "adam"));
        if (f.Has(o, "prune")) Prune = ReadPrune(f, f.Object(o.GetProperty("prune"), "prune"));

        NullspaceThreshold = f.Has(o, "nullspace_threshold") ? Positive(f, o, "nullspace_threshold") : null;
        L2 = f.Has(o, "L2") ? NonNegative(f, o, "L2") : null;

        if (f.Has(o, "context_templates"))
        {
            ContextTemplates = ContextTemplates.FromJson(o.GetProperty("context_templates"), $"{Source}: field 'context_templates'");
            if (Method == EditMethod.Rome && ContextTemplates.Groups.Count > 1)
                throw f.Fail("context_templates", $"has {ContextTemplates.Groups.Count} groups, but ROME averages all templates with equal weight (spec §5.2); give one flat list");
        }
    }

    void ReadRuntimeKeys(JsonElement o, JsonFields f, string methodName)
    {
        var keys = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string k in RuntimeFields)
            if (o.TryGetProperty(k, out var v))
                keys[k] = v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText();
        if (keys.TryGetValue("alg_name", out var alg))
        {
            // D4S and PRUNE run on MEMIT's hparams files, which name MEMIT (PRUNE's own runs call it MEMIT_prune).
            string a = alg.Trim().ToUpperInvariant();
            bool fits = Method switch
            {
                EditMethod.Rome => a == "ROME",
                EditMethod.Memit or EditMethod.D4S => a is "MEMIT" or "MEMIT_PRUNE" or "PRUNE" or "D4S",
                EditMethod.AlphaEdit => a == "ALPHAEDIT",
                _ => false,
            };
            if (!fits) throw f.Fail("alg_name", $"is \"{alg}\", but the edit runs {methodName}; give the hparams file of that method or change --method");
        }
        RuntimeKeys = keys;
    }

    void ReadLayers(JsonElement o, JsonFields f, string methodName)
    {
        bool hasLayers = f.Has(o, "layers"), hasLayer = f.Has(o, "layer");
        if (hasLayer && Method != EditMethod.Rome)
            throw f.Fail("layer", $"is a ROME-style single layer; {methodName} takes a list: \"layers\": [...]");
        if (hasLayer && hasLayers)
            throw f.Fail("layer", "and 'layers' are both given; keep one");
        if (!hasLayers && !hasLayer)
            throw f.Fail("layers", $"is missing (required for {methodName})");
        List<int> layers = hasLayer ? [f.Int(o.GetProperty("layer"), "layer")] : f.IntList(o.GetProperty("layers"), "layers");
        string field = hasLayer ? "layer" : "layers";
        if (layers.Count == 0) throw f.Fail(field, "is empty; at least one layer is edited");
        int negative = layers.FindIndex(l => l < 0);
        if (negative >= 0) throw f.Fail(field, $"holds {layers[negative]}; layer indices are ≥ 0");
        for (int i = 1; i < layers.Count; i++)
            if (layers[i] <= layers[i - 1])
                throw f.Fail(field, $"must be strictly ascending without repeats (the last one is the z-layer), got [{string.Join(", ", layers)}]");
        if (Method == EditMethod.Rome && layers.Count != 1)
            throw f.Fail(field, $"must hold exactly one layer for ROME (upstream: \"layers\": [l]), got [{string.Join(", ", layers)}]");
        Layers = layers.AsReadOnly();
    }

    /// <summary>
    /// Ceilings of the numeric hyperparameters: far above any published setting (kmeng01/memit and
    /// AlphaEdit use v_lr 0.1–5, clamp_norm_factor 0.75–4, mom2_update_weight 1.5–2·10⁴), low enough
    /// that every value an edit computes, and its journal records, stays finite in float64. A value
    /// over its ceiling is refused before the model is touched, not after the edit has run.
    /// </summary>
    static readonly Dictionary<string, double> Ceilings = new()
    {
        ["v_lr"] = 1e3, ["clamp_norm_factor"] = 1e3, ["v_weight_decay"] = 1e6, ["kl_factor"] = 1e6,
        ["mom2_update_weight"] = 1e9, ["early_stop_loss"] = 1e3, ["nullspace_threshold"] = 1e6, ["L2"] = 1e9,
    };

    /// <summary>Most compute_z steps per request (the published files use 20–25; 10⁶ is hours per edit on a small model).</summary>
    const int MaxGradSteps = 1_000_000;
    /// <summary>Most generated context templates per length (MEMIT's default makes 10).</summary>
    const int MaxTemplatesPerLength = 1000;

    static double Positive(JsonFields f, JsonElement o, string name)
    {
        double v = f.RequiredDouble(o, name);
        if (!(v > 0)) throw f.Fail(name, $"must be positive, got {o.GetProperty(name).GetRawText()}");
        // A denormal weight makes λ·C round to zero: singular, far from where the error would show.
        if (v < 1e-100) throw f.Fail(name, $"is {o.GetProperty(name).GetRawText()}; kedit accepts at least 1e-100");
        return AtMostCeiling(f, o, name, v);
    }

    static double NonNegative(JsonFields f, JsonElement o, string name)
    {
        double v = f.RequiredDouble(o, name);
        if (v < 0) throw f.Fail(name, $"must be ≥ 0, got {o.GetProperty(name).GetRawText()}");
        return AtMostCeiling(f, o, name, v);
    }

    static double AtMostCeiling(JsonFields f, JsonElement o, string name, double v) =>
        Ceilings.TryGetValue(name, out double max) && v > max
            ? throw f.Fail(name, $"is {o.GetProperty(name).GetRawText()}; kedit accepts at most {max:G} (published settings are orders of magnitude smaller)")
            : v;

    static string? ModuleTemplate(JsonFields f, JsonElement o, string name)
    {
        string? t = f.OptionalString(o, name);
        if (t is not null && ContextTemplates.CountSlots(t) != 1)
            throw f.Fail(name, $"\"{t}\" must contain exactly one \"{{}}\" for the layer number");
        return t;
    }

    AdamSettings ReadAdam(JsonFields f, JsonElement a)
    {
        f.CheckKeys(a, "adam", AdamFields, shapeName: "adam settings");
        var s = new AdamSettings();
        if (f.Has(a, "lr"))
        {
            double lr = f.Double(a.GetProperty("lr"), "adam.lr");
            if (lr != VLr) throw f.Fail("adam.lr", $"is {lr} but v_lr is {VLr}; compute_z uses v_lr as Adam's learning rate, so they must agree");
            s = s with { Lr = lr };
        }
        if (f.Has(a, "betas"))
        {
            var betas = f.Array(a.GetProperty("betas"), "adam.betas");
            var b = betas.EnumerateArray().Select((x, i) => f.Double(x, $"adam.betas[{i}]")).ToList();
            if (b.Count != 2 || b.Any(x => x < 0 || x >= 1))
                throw f.Fail("adam.betas", $"must be two numbers in [0, 1), got {betas.GetRawText()}");
            s = s with { Beta1 = b[0], Beta2 = b[1] };
        }
        if (f.Has(a, "eps"))
        {
            double eps = f.Double(a.GetProperty("eps"), "adam.eps");
            if (!(eps > 0)) throw f.Fail("adam.eps", $"must be positive, got {eps}");
            s = s with { Eps = eps };
        }
        if (f.Has(a, "weight_decay") && f.Double(a.GetProperty("weight_decay"), "adam.weight_decay") != 0)
            throw f.Fail("adam.weight_decay", "must be 0: compute_z uses plain Adam, regularisation is v_weight_decay (spec §7.3)");
        if (f.Has(a, "amsgrad") && f.Bool(a.GetProperty("amsgrad"), "adam.amsgrad"))
            throw f.Fail("adam.amsgrad", "must be false: compute_z uses plain Adam (spec §7.4)");
        return s;
    }

    static PruneSettings ReadPrune(JsonFields f, JsonElement p)
    {
        f.CheckKeys(p, "prune", PruneFields, shapeName: "prune settings");
        string mode = f.RequiredString(p, "mode", "prune");
        if (!PruneSettings.Names.TryGetValue(mode, out var m))
            throw f.Fail("prune.mode", $"is \"{mode}\"; expected one of {string.Join(", ", PruneSettings.Names.Keys)}");
        return new PruneSettings { Mode = m, InLoop = f.OptionalBool(p, "in_loop", "prune") ?? false };
    }
}
