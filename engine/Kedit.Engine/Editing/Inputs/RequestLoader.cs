using System.Text;
using System.Text.Json;

namespace Kedit.Editing.Inputs;

/// <summary>Which zsRE field becomes <c>target_new</c> (spec §16.2, disagreement D1).</summary>
public enum ZsreTarget
{
    /// <summary><c>alt</c>: EasyEdit / D4S (the D4S reproduction preset).</summary>
    Alt,
    /// <summary><c>answers[0]</c>: MEMIT-orig <c>dsets/zsre.py</c> and the PRUNE fork.</summary>
    FirstAnswer,
}

/// <summary>Options for <see cref="RequestLoader"/>.</summary>
public sealed record RequestLoadOptions
{
    /// <summary>zsRE field used as the new target; the benchmark preset decides (default <see cref="ZsreTarget.Alt"/>).</summary>
    public ZsreTarget ZsreTarget { get; init; } = ZsreTarget.Alt;

    /// <summary>Accept (and ignore) record fields that no supported format defines. Off by default, so typos are caught.</summary>
    public bool AllowUnknownFields { get; init; }

    /// <summary>Records to skip from the start of the file (<c>--offset</c>), counted before validation.</summary>
    public int Offset { get; init; }

    /// <summary>Most records to read after <see cref="Offset"/> (<c>--limit</c>), or null for all.</summary>
    public int? Limit { get; init; }

    /// <summary>The defaults.</summary>
    public static RequestLoadOptions Default { get; } = new();
}

/// <summary>A record that <see cref="RequestLoader.LoadLenient"/> left out, and why.</summary>
/// <param name="Index">0-based record index in the file.</param>
/// <param name="Reason">The error message the strict loader would have raised.</param>
public sealed record SkippedRecord(int Index, string Reason);

/// <summary>Requests read by the lenient loader plus the records it skipped.</summary>
public sealed record RequestLoadResult(IReadOnlyList<EditRequest> Requests, IReadOnlyList<SkippedRecord> Skipped);

/// <summary>
/// Reads edit requests from JSON (a list of records, a single record, or JSON Lines), detecting the
/// record shape: CounterFact (ROME format), CounterFact (EasyEdit/MEND format), zsRE (MEND format) or the
/// plain canonical shape of spec §3. Every problem is a <see cref="KeditException"/> naming the
/// source, the record (index and case_id) and the field.
/// </summary>
public static class RequestLoader
{
    static readonly string[] PlainFields =
        ["case_id", "prompt", "subject", "target_new", "target_true", "paraphrase_prompts", "neighborhood_prompts", "attribute_prompts", "generation_prompts"];

    static readonly string[] RomeTopFields =
        ["case_id", "requested_rewrite", "paraphrase_prompts", "neighborhood_prompts", "attribute_prompts", "generation_prompts"];
    static readonly string[] RomeTopIgnored = ["pararel_idx"];
    static readonly string[] RomeRewriteFields = ["prompt", "subject", "target_new", "target_true", "relation_id"];
    static readonly string[] TargetObjectFields = ["str", "id"];

    static readonly string[] EasyEditFields =
        ["case_id", "prompt", "subject", "target_new", "ground_truth", "rephrase_prompt", "locality_prompt", "locality_ground_truth"];

    static readonly string[] ZsreFields = ["subject", "src", "alt", "answers", "rephrase", "loc", "loc_ans", "case_id"];
    // Model prediction and the MEND conditioning string: not used by editing or by the metrics of §15.
    static readonly string[] ZsreIgnored = ["pred", "cond"];

    static readonly string[] KnowEditFields =
        ["case_id", "subject", "prompt", "target_new", "ground_truth", "rephrase", "rephrase_prompt", "portability", "locality"];
    // MEND's conditioning string (KnowEdit's ZsRE records carry it): not used by editing or scoring.
    static readonly string[] KnowEditIgnored = ["cond"];

    static readonly string[] EasyEditMarkers = ["ground_truth", "rephrase_prompt", "locality_prompt", "locality_ground_truth"];

    /// <summary>Loads requests from a file (UTF-8 JSON list, single object, or JSON Lines).</summary>
    /// <exception cref="KeditException">Missing file, broken JSON, unknown shape or an invalid record.</exception>
    public static IReadOnlyList<EditRequest> Load(string path, RequestLoadOptions? options = null)
    {
        string text = JsonFields.ReadFile(path, "edit requests");
        return Parse(text, path, options);
    }

    /// <summary>Parses requests from JSON text; <paramref name="sourceName"/> is used in error messages.</summary>
    /// <exception cref="KeditException">Broken JSON, unknown shape or an invalid record.</exception>
    public static IReadOnlyList<EditRequest> Parse(string json, string sourceName, RequestLoadOptions? options = null) =>
        ParseCore(json, sourceName, options, lenient: false).Requests;

    /// <summary>
    /// Like <see cref="Load"/>, but a record whose content is invalid (empty target, ambiguous subject, wrong
    /// type, ...) is skipped and reported instead of failing the file; real benchmark files contain a few
    /// (e.g. zsRE records with an empty <c>alt</c>). Broken JSON, a missing file, mixed formats or a file in
    /// which no record is valid still fail.
    /// </summary>
    public static RequestLoadResult LoadLenient(string path, RequestLoadOptions? options = null)
    {
        string text = JsonFields.ReadFile(path, "edit requests");
        return ParseLenient(text, path, options);
    }

    /// <summary>Lenient counterpart of <see cref="Parse"/>; see <see cref="LoadLenient"/>.</summary>
    public static RequestLoadResult ParseLenient(string json, string sourceName, RequestLoadOptions? options = null) =>
        ParseCore(json, sourceName, options, lenient: true);

    static RequestLoadResult ParseCore(string json, string sourceName, RequestLoadOptions? options, bool lenient)
    {
        ArgumentNullException.ThrowIfNull(json);
        options ??= RequestLoadOptions.Default;
        var values = ReadTopLevelValues(json, sourceName);
        try
        {
            var records = new List<(JsonElement Record, string Label)>();
            if (values.Count == 0)
                throw new KeditException($"{sourceName}: no JSON content (expected a list of edit requests)");
            if (values.Count == 1 && values[0].Doc.RootElement.ValueKind == JsonValueKind.Array)
            {
                int i = 0;
                foreach (var e in values[0].Doc.RootElement.EnumerateArray())
                {
                    records.Add((e, $"record [{i}]"));
                    i++;
                }
            }
            else if (values.Count == 1)
            {
                records.Add((values[0].Doc.RootElement, "record [0]"));
            }
            else
            {
                for (int i = 0; i < values.Count; i++)
                {
                    if (values[i].Doc.RootElement.ValueKind == JsonValueKind.Array)
                        throw new KeditException($"{sourceName}: line {values[i].Line}: JSON Lines input must hold one object per line, got an array");
                    records.Add((values[i].Doc.RootElement, $"record [{i}] (line {values[i].Line})"));
                }
            }
            if (records.Count == 0)
                throw new KeditException($"{sourceName}: the list of edit requests is empty");
            if (options.Offset < 0) throw new KeditException($"--offset {options.Offset}: must be 0 or more");
            if (options.Limit is < 1) throw new KeditException($"--limit {options.Limit}: must be at least 1");
            if (options.Offset >= records.Count)
                throw new KeditException($"{sourceName}: --offset {options.Offset} is past the file's {records.Count} record(s) (0..{records.Count - 1})");
            int first = options.Offset;
            records = records.GetRange(first, Math.Min(options.Limit ?? int.MaxValue, records.Count - first));

            var requests = new List<EditRequest>(records.Count);
            var skipped = new List<SkippedRecord>();
            RequestFormat? fileFormat = null;
            string? firstLabel = null;
            for (int index = 0; index < records.Count; index++)
            {
                var (record, label) = records[index];
                var f = new JsonFields(sourceName, Label(record, label));
                if (record.ValueKind != JsonValueKind.Object)
                    throw f.Fail($"must be a JSON object, got {JsonFields.Kind(record)}");
                var format = Detect(record, f);
                if (fileFormat is null) { fileFormat = format; firstLabel = f.Record; }
                else if (format != fileFormat)
                    throw f.Fail($"has the {Describe(format)} shape but {firstLabel} has the {Describe(fileFormat.Value)} shape; one file must use one format");
                try
                {
                    requests.Add(format switch
                    {
                        RequestFormat.Plain => ReadPlain(record, f, options),
                        RequestFormat.CounterFactRome => ReadCounterFactRome(record, f, options),
                        RequestFormat.CounterFactEasyEdit => ReadEasyEdit(record, f, options),
                        RequestFormat.ZsreMend => ReadZsre(record, f, options),
                        RequestFormat.KnowEdit => ReadKnowEdit(record, f, options),
                        _ => throw new InvalidOperationException(format.ToString()),
                    });
                }
                catch (KeditException e) when (lenient)
                {
                    skipped.Add(new SkippedRecord(first + index, e.Message));
                }
            }
            if (requests.Count == 0)
                throw new KeditException($"{sourceName}: none of the {records.Count} records is a valid edit request; the first problem: {skipped[0].Reason}");
            return new RequestLoadResult(requests.AsReadOnly(), skipped.AsReadOnly());
        }
        finally
        {
            foreach (var v in values) v.Doc.Dispose();
        }
    }

    /// <summary>
    /// The loader the commands use: lenient (a record with invalid content is skipped, and each skipped record is
    /// reported on <paramref name="log"/> by its index in the file), sliced by <c>--offset</c>/<c>--limit</c>.
    /// </summary>
    public static IReadOnlyList<EditRequest> LoadForCommand(string path, int offset, int? limit, TextWriter log)
    {
        var r = LoadLenient(path, RequestLoadOptions.Default with { Offset = offset, Limit = limit });
        if (r.Skipped.Count > 0)
        {
            log.WriteLine($"kedit: note: skipped {r.Skipped.Count} of {r.Skipped.Count + r.Requests.Count} record(s) of {path} that are not valid edit requests:");
            foreach (var s in r.Skipped.Take(10)) log.WriteLine($"  record {s.Index}: {s.Reason}");
            if (r.Skipped.Count > 10) log.WriteLine($"  … and {r.Skipped.Count - 10} more");
        }
        return r.Requests;
    }

    /// <summary>Human name of a format, as used in messages.</summary>
    public static string Describe(RequestFormat format) => format switch
    {
        RequestFormat.Plain => "plain (prompt with \"{}\", subject, target_new, target_true)",
        RequestFormat.CounterFactRome => "CounterFact ROME (requested_rewrite)",
        RequestFormat.CounterFactEasyEdit => "CounterFact EasyEdit (prompt, ground_truth, rephrase_prompt, locality_*)",
        RequestFormat.ZsreMend => "zsRE MEND (src, alt, answers, rephrase, loc, loc_ans)",
        RequestFormat.KnowEdit => "KnowEdit (prompt, target_new, portability, locality)",
        _ => format.ToString(),
    };

    /// <summary>Detects the shape of one record from its keys.</summary>
    static RequestFormat Detect(JsonElement record, JsonFields f)
    {
        if (record.TryGetProperty("requested_rewrite", out _)) return RequestFormat.CounterFactRome;
        if (record.TryGetProperty("src", out _)) return RequestFormat.ZsreMend;
        if (record.TryGetProperty("portability", out var port) && port.ValueKind == JsonValueKind.Object
            || record.TryGetProperty("locality", out var loc) && loc.ValueKind == JsonValueKind.Object)
            return RequestFormat.KnowEdit;
        if (record.TryGetProperty("concept", out _) && record.TryGetProperty("labels", out _))
            throw f.Fail("is a KnowEdit WikiBio record (text, labels, concept): a hallucination-correction passage, not a subject–object fact; kedit's locate-then-edit methods take fact records (KnowEdit's ZsRE, wiki_counterfact, wiki_recent)");
        if (record.TryGetProperty("prompt", out _))
            return EasyEditMarkers.Any(k => record.TryGetProperty(k, out _)) ? RequestFormat.CounterFactEasyEdit : RequestFormat.Plain;
        var keys = record.EnumerateObject().Select(p => p.Name).ToList();
        throw f.Fail("has an unknown shape: expected 'requested_rewrite' (CounterFact, ROME format), 'src' (zsRE, MEND format) "
            + "or 'prompt' (plain or CounterFact EasyEdit format); its keys are "
            + (keys.Count == 0 ? "none" : string.Join(", ", keys.Select(k => $"'{k}'"))));
    }

    static string Label(JsonElement record, string label)
    {
        if (record.ValueKind == JsonValueKind.Object && record.TryGetProperty("case_id", out var id)
            && id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out int caseId))
            return label.EndsWith(')') ? $"{label[..^1]}, case_id {caseId})" : $"{label} (case_id {caseId})";
        return label;
    }

    // ---- formats ------------------------------------------------------------------------------

    static EditRequest ReadPlain(JsonElement r, JsonFields f, RequestLoadOptions o)
    {
        f.CheckKeys(r, null, PlainFields, shapeName: "the plain request format", allowUnknown: o.AllowUnknownFields);
        int? caseId = f.OptionalInt(r, "case_id");
        string subject = Subject(f, f.RequiredString(r, "subject"), "subject");
        string prompt = PromptTemplate(f, f.RequiredString(r, "prompt"), subject, "prompt");
        var (targetNew, newId) = Target(f, f.Required(r, "target_new"), "target_new");
        string? targetTrue = null, trueId = null;
        if (f.Has(r, "target_true"))
            (targetTrue, trueId) = Target(f, r.GetProperty("target_true"), "target_true");
        return new EditRequest(prompt, subject, targetNew, targetTrue, caseId,
            paraphrasePrompts: f.OptionalStringList(r, "paraphrase_prompts"),
            neighborhoodPrompts: Neighborhood(f, r, targetTrue, "target_true"),
            attributePrompts: f.OptionalStringList(r, "attribute_prompts"),
            generationPrompts: f.OptionalStringList(r, "generation_prompts"),
            targetNewId: newId, targetTrueId: trueId,
            format: RequestFormat.Plain);
    }

    static EditRequest ReadCounterFactRome(JsonElement r, JsonFields f, RequestLoadOptions o)
    {
        f.CheckKeys(r, null, RomeTopFields, RomeTopIgnored, "CounterFact (ROME format)", o.AllowUnknownFields);
        int caseId = f.RequiredInt(r, "case_id");
        var rw = f.Object(f.Required(r, "requested_rewrite"), "requested_rewrite");
        f.CheckKeys(rw, "requested_rewrite", RomeRewriteFields, shapeName: "CounterFact (ROME format)", allowUnknown: o.AllowUnknownFields);
        string subject = Subject(f, f.RequiredString(rw, "subject", "requested_rewrite"), "requested_rewrite.subject");
        string prompt = PromptTemplate(f, f.RequiredString(rw, "prompt", "requested_rewrite"), subject, "requested_rewrite.prompt");
        var (targetNew, newId) = Target(f, f.Required(rw, "target_new", "requested_rewrite"), "requested_rewrite.target_new");
        var (targetTrue, trueId) = Target(f, f.Required(rw, "target_true", "requested_rewrite"), "requested_rewrite.target_true");
        return new EditRequest(prompt, subject, targetNew, targetTrue, caseId,
            paraphrasePrompts: f.OptionalStringList(r, "paraphrase_prompts"),
            neighborhoodPrompts: Neighborhood(f, r, targetTrue, "requested_rewrite.target_true"),
            attributePrompts: f.OptionalStringList(r, "attribute_prompts"),
            generationPrompts: f.OptionalStringList(r, "generation_prompts"),
            relationId: f.OptionalString(rw, "relation_id", "requested_rewrite"),
            targetNewId: newId, targetTrueId: trueId,
            format: RequestFormat.CounterFactRome);
    }

    static EditRequest ReadEasyEdit(JsonElement r, JsonFields f, RequestLoadOptions o)
    {
        f.CheckKeys(r, null, EasyEditFields, shapeName: "CounterFact (EasyEdit format)", allowUnknown: o.AllowUnknownFields);
        int? caseId = f.OptionalInt(r, "case_id");
        string subject = Subject(f, f.RequiredString(r, "subject"), "subject");
        string prompt = PromptTemplate(f, f.RequiredString(r, "prompt"), subject, "prompt");
        var (targetNew, _) = Target(f, f.Required(r, "target_new"), "target_new");
        string groundTruth = NonEmpty(f, f.RequiredString(r, "ground_truth"), "ground_truth");
        // EasyEdit accepts one string or a list for the rephrase and locality fields.
        var paraphrases = StringOrList(f, r, "rephrase_prompt");
        var localityPrompts = StringOrList(f, r, "locality_prompt");
        var localityAnswers = StringOrList(f, r, "locality_ground_truth");
        if (localityPrompts.Count != localityAnswers.Count)
            throw f.Fail("locality_ground_truth", $"has {localityAnswers.Count} answer(s) but locality_prompt has {localityPrompts.Count} prompt(s); they must pair up");
        var neighborhood = new List<PromptAnswer>();
        for (int i = 0; i < localityPrompts.Count; i++)
            neighborhood.Add(new PromptAnswer(
                NonEmpty(f, localityPrompts[i], "locality_prompt"),
                NonEmpty(f, localityAnswers[i], "locality_ground_truth")));
        return new EditRequest(prompt, subject, targetNew, groundTruth, caseId,
            paraphrasePrompts: paraphrases,
            neighborhoodPrompts: neighborhood,
            format: RequestFormat.CounterFactEasyEdit);
    }

    /// <summary>
    /// KnowEdit: the subject written out in <c>prompt</c>; <c>ground_truth</c> a string, a list, or absent (wiki_recent
    /// inserts new knowledge); <c>rephrase</c>/<c>rephrase_prompt</c>; <c>portability</c> and <c>locality</c> objects mapping a
    /// category to a list of {prompt, ground_truth}, where ground_truth is a string, a list of aliases, or a list of
    /// alias lists (the first alias is scored). Locality probes become neighbourhood prompts.
    /// </summary>
    static EditRequest ReadKnowEdit(JsonElement r, JsonFields f, RequestLoadOptions o)
    {
        f.CheckKeys(r, null, KnowEditFields, KnowEditIgnored, "KnowEdit", o.AllowUnknownFields);
        int? caseId = f.OptionalInt(r, "case_id");
        string subject = Subject(f, f.RequiredString(r, "subject"), "subject");
        string prompt = PromptTemplate(f, f.RequiredString(r, "prompt"), subject, "prompt");
        var (targetNew, _) = Target(f, f.Required(r, "target_new"), "target_new");
        string? groundTruth = f.Has(r, "ground_truth") ? Aliases(f, r.GetProperty("ground_truth"), "ground_truth").FirstOrDefault() : null;
        var paraphrases = StringOrList(f, r, "rephrase_prompt").Concat(StringOrList(f, r, "rephrase")).Select((p, i) => NonEmpty(f, p, $"rephrase[{i}]")).ToList();
        var locality = Probes(f, r, "locality").Select(p => new PromptAnswer(p.Prompt, p.Answers[0])).ToList();
        var portability = Probes(f, r, "portability");
        return new EditRequest(prompt, subject, targetNew, groundTruth, caseId,
            paraphrasePrompts: paraphrases, neighborhoodPrompts: locality, format: RequestFormat.KnowEdit, portability: portability);
    }

    static List<PortabilityPrompt> Probes(JsonFields f, JsonElement r, string field)
    {
        var list = new List<PortabilityPrompt>();
        if (!f.Has(r, field)) return list;
        var obj = f.Object(r.GetProperty(field), field);
        foreach (var category in obj.EnumerateObject())
        {
            string path = $"{field}.{category.Name}";
            if (category.Value.ValueKind != JsonValueKind.Array) throw f.Fail(path, $"must be a list of {{prompt, ground_truth}} objects, got {JsonFields.Kind(category.Value)}");
            int i = 0;
            foreach (var probe in category.Value.EnumerateArray())
            {
                string at = $"{path}[{i++}]";
                if (probe.ValueKind != JsonValueKind.Object) throw f.Fail(at, $"must be a {{prompt, ground_truth}} object, got {JsonFields.Kind(probe)}");
                string p = probe.TryGetProperty("prompt", out var pv) && pv.ValueKind == JsonValueKind.String ? NonEmpty(f, pv.GetString()!, at + ".prompt")
                    : throw f.Fail(at + ".prompt", "is missing or not a string");
                if (!probe.TryGetProperty("ground_truth", out var gt)) throw f.Fail(at + ".ground_truth", "is missing");
                var answers = Aliases(f, gt, at + ".ground_truth");
                if (answers.Count == 0) throw f.Fail(at + ".ground_truth", "holds no answer");
                list.Add(new PortabilityPrompt(category.Name, p, answers));
            }
        }
        return list;
    }

    /// <summary>A KnowEdit ground_truth: "a", ["a", "b"] or [["a", "alias"], …] — the accepted answers, flattened in order.</summary>
    static List<string> Aliases(JsonFields f, JsonElement v, string field)
    {
        var list = new List<string>();
        void Add(JsonElement e, string at)
        {
            if (e.ValueKind == JsonValueKind.String) list.Add(NonEmpty(f, e.GetString()!, at));
            else if (e.ValueKind == JsonValueKind.Array && at == field) { int i = 0; foreach (var x in e.EnumerateArray()) Add(x, $"{field}[{i++}]"); }
            else if (e.ValueKind == JsonValueKind.Array) { int i = 0; foreach (var x in e.EnumerateArray()) if (x.ValueKind == JsonValueKind.String) list.Add(NonEmpty(f, x.GetString()!, $"{at}[{i++}]")); else throw f.Fail($"{at}[{i}]", $"must be a string, got {JsonFields.Kind(x)}"); }
            else throw f.Fail(at, $"must be a string, a list of strings or a list of alias lists, got {JsonFields.Kind(e)}");
        }
        Add(v, field);
        return list;
    }

    static EditRequest ReadZsre(JsonElement r, JsonFields f, RequestLoadOptions o)
    {
        f.CheckKeys(r, null, ZsreFields, ZsreIgnored, "zsRE (MEND format)", o.AllowUnknownFields);
        int? caseId = f.OptionalInt(r, "case_id");
        string subject = Subject(f, f.RequiredString(r, "subject"), "subject");
        string prompt = PromptTemplate(f, f.RequiredString(r, "src"), subject, "src");
        // answers[0] is the target in the MEMIT-orig preset; with alt it is only the gold answer.
        var answers = o.ZsreTarget == ZsreTarget.FirstAnswer || f.Has(r, "answers")
            ? f.StringList(f.Required(r, "answers"), "answers")
            : new List<string>();
        for (int i = 0; i < answers.Count; i++) NonEmpty(f, answers[i], $"answers[{i}]");
        string targetNew;
        if (o.ZsreTarget == ZsreTarget.Alt)
            targetNew = NonEmpty(f, f.RequiredString(r, "alt"), "alt");
        else
        {
            if (answers.Count == 0) throw f.Fail("answers", "is empty; answers[0] is the new target in this preset");
            targetNew = answers[0];
            if (f.Has(r, "alt")) f.String(r.GetProperty("alt"), "alt");
        }
        string? rephrase = f.OptionalString(r, "rephrase");
        string? loc = f.OptionalString(r, "loc");
        string? locAns = f.OptionalString(r, "loc_ans");
        if ((loc is null) != (locAns is null))
            throw f.Fail(loc is null ? "loc" : "loc_ans", $"is missing while '{(loc is null ? "loc_ans" : "loc")}' is given; they must come together");
        if (loc is not null) { NonEmpty(f, loc, "loc"); NonEmpty(f, locAns!, "loc_ans"); }
        return new EditRequest(prompt, subject, targetNew, EditRequest.EndOfTextTarget, caseId,
            paraphrasePrompts: rephrase is null ? null : [NonEmpty(f, rephrase, "rephrase")],
            localityPrompt: loc, localityAnswer: locAns,
            goldAnswers: answers,
            format: RequestFormat.ZsreMend);
    }

    // ---- field helpers ------------------------------------------------------------------------

    static string NonEmpty(JsonFields f, string value, string field)
    {
        if (string.IsNullOrWhiteSpace(value)) throw f.Fail(field, "is empty");
        return value;
    }

    static string Subject(JsonFields f, string subject, string field) => NonEmpty(f, subject, field);

    /// <summary>
    /// A prompt holding "{}" must hold exactly one; otherwise the subject must occur in it exactly once and
    /// is replaced by the slot (EasyEdit style, with the engine's single-occurrence rule, §3 item 2).
    /// </summary>
    static string PromptTemplate(JsonFields f, string prompt, string subject, string field)
    {
        NonEmpty(f, prompt, field);
        int slots = ContextTemplates.CountSlots(prompt);
        if (slots == 1) return prompt;
        if (slots > 1)
            throw f.Fail(field, $"{JsonFields.Quote(prompt)} contains \"{{}}\" {slots} times; exactly one subject slot is allowed");
        int first = prompt.IndexOf(subject, StringComparison.Ordinal);
        if (first < 0)
            throw f.Fail(field, $"{JsonFields.Quote(prompt)} has no \"{{}}\" slot and does not contain the subject {JsonFields.Quote(subject)}");
        if (prompt.IndexOf(subject, first + 1, StringComparison.Ordinal) >= 0)
            throw f.Fail(field, $"{JsonFields.Quote(prompt)} contains the subject {JsonFields.Quote(subject)} more than once; the subject slot would be ambiguous (write the prompt with one \"{{}}\" instead)");
        return string.Concat(prompt.AsSpan(0, first), ContextTemplates.Slot, prompt.AsSpan(first + subject.Length));
    }

    /// <summary>A target given as a string or as <c>{"str": …, "id": …}</c>.</summary>
    static (string Text, string? Id) Target(JsonFields f, JsonElement v, string field)
    {
        switch (v.ValueKind)
        {
            case JsonValueKind.String:
                return (NonEmpty(f, v.GetString()!, field), null);
            case JsonValueKind.Object:
                f.CheckKeys(v, field, TargetObjectFields, shapeName: "a target object");
                string text = NonEmpty(f, f.RequiredString(v, "str", field), field + ".str");
                return (text, f.OptionalString(v, "id", field));
            default:
                throw f.Fail(field, $"must be a string or an object {{\"str\": ...}}, got {JsonFields.Kind(v)}");
        }
    }

    static List<string> StringOrList(JsonFields f, JsonElement r, string field)
    {
        if (!f.Has(r, field)) return new List<string>();
        var v = r.GetProperty(field);
        if (v.ValueKind == JsonValueKind.String) return [v.GetString()!];
        if (v.ValueKind == JsonValueKind.Array) return f.StringList(v, field);
        throw f.Fail(field, $"must be a string or an array of strings, got {JsonFields.Kind(v)}");
    }

    /// <summary>
    /// <c>neighborhood_prompts</c>: strings (answer = the true target, as in CounterFact) or
    /// <c>{"prompt": …, "target": …}</c> objects (MEMIT's zsRE loader shape).
    /// </summary>
    static List<PromptAnswer> Neighborhood(JsonFields f, JsonElement r, string? targetTrue, string targetTrueField)
    {
        var list = new List<PromptAnswer>();
        if (!f.Has(r, "neighborhood_prompts")) return list;
        var arr = f.Array(r.GetProperty("neighborhood_prompts"), "neighborhood_prompts");
        int i = 0;
        foreach (var item in arr.EnumerateArray())
        {
            string path = $"neighborhood_prompts[{i++}]";
            if (item.ValueKind == JsonValueKind.String)
            {
                if (targetTrue is null)
                    throw f.Fail(path, $"is a plain string, whose expected answer is '{targetTrueField}', but that field is missing; give {{\"prompt\": ..., \"target\": ...}} objects or add it");
                list.Add(new PromptAnswer(NonEmpty(f, item.GetString()!, path), targetTrue));
            }
            else if (item.ValueKind == JsonValueKind.Object)
            {
                f.CheckKeys(item, path, ["prompt", "target"], shapeName: "a neighborhood prompt");
                list.Add(new PromptAnswer(
                    NonEmpty(f, f.RequiredString(item, "prompt", path), path + ".prompt"),
                    NonEmpty(f, f.RequiredString(item, "target", path), path + ".target")));
            }
            else
                throw f.Fail(path, $"must be a string or an object {{\"prompt\": ..., \"target\": ...}}, got {JsonFields.Kind(item)}");
        }
        return list;
    }

    // ---- JSON framing -------------------------------------------------------------------------

    /// <summary>
    /// Reads every top-level JSON value: one for a list or a single object, several for JSON Lines.
    /// Syntax errors carry the 1-based line and byte position.
    /// </summary>
    static List<(JsonDocument Doc, int Line)> ReadTopLevelValues(string json, string source)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(json);
        int start = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
        var span = new ReadOnlySpan<byte>(bytes, start, bytes.Length - start);
        var reader = new Utf8JsonReader(span, new JsonReaderOptions
        {
            AllowMultipleValues = true,
            AllowTrailingCommas = false,
            CommentHandling = JsonCommentHandling.Disallow,
            MaxDepth = 64,
        });
        var values = new List<(JsonDocument, int)>();
        int line = 1, counted = 0; // newlines counted incrementally so JSON Lines input stays linear
        try
        {
            while (reader.Read())
            {
                int at = (int)reader.TokenStartIndex;
                line += CountNewlines(span[counted..at]);
                counted = at;
                var doc = JsonDocument.ParseValue(ref reader);
                values.Add((doc, line));
                // Each value passes the same gate as a whole file (duplicate keys, lone surrogates, number range).
                Kedit.IO.StrictJson.Validate(span[at..(int)reader.BytesConsumed], line == 1 ? source : $"{source}:{line}", multipleValues: false);
            }
        }
        catch (Exception e) when (e is JsonException or KeditException)
        {
            foreach (var v in values) v.Item1.Dispose();
            if (e is KeditException) throw;
            throw Kedit.IO.StrictJson.Broken(source, (JsonException)e);
        }
        return values;
    }

    static int CountNewlines(ReadOnlySpan<byte> s)
    {
        int n = 0;
        foreach (byte b in s) if (b == (byte)'\n') n++;
        return n;
    }
}
