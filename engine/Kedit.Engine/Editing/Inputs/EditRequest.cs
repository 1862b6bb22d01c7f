namespace Kedit.Editing.Inputs;

/// <summary>Which file shape a request was read from; evaluation uses it to pick the metric family (§15).</summary>
public enum RequestFormat
{
    /// <summary>Built in code, not read from a file.</summary>
    None,
    /// <summary>Flat canonical shape of spec §3: <c>prompt</c> with "{}", <c>subject</c>, <c>target_new</c>, <c>target_true</c>.</summary>
    Plain,
    /// <summary>CounterFact as ROME/MEMIT published it: <c>case_id</c>, <c>requested_rewrite{…}</c>, prompt lists (§16.1).</summary>
    CounterFactRome,
    /// <summary>CounterFact as EasyEdit/MEND distribute it: subject written out in <c>prompt</c>, <c>ground_truth</c>, <c>rephrase_prompt</c>, <c>locality_*</c> (§16.3).</summary>
    CounterFactEasyEdit,
    /// <summary>zsRE in MEND format: <c>src</c>, <c>alt</c>, <c>answers</c>, <c>rephrase</c>, <c>loc</c>, <c>loc_ans</c>, <c>subject</c> (§16.2).</summary>
    ZsreMend,
    /// <summary>KnowEdit (EasyEdit's benchmark): subject written out in <c>prompt</c>, <c>portability</c> and <c>locality</c> objects of categories.</summary>
    KnowEdit,
}

/// <summary>A KnowEdit portability probe: a prompt whose answer follows from the edit, with the accepted aliases.</summary>
/// <param name="Category">The record's category ("Subject_Aliasing", "Reasoning", "Logical_Generalization", …).</param>
/// <param name="Prompt">Full prompt.</param>
/// <param name="Answers">Accepted answers; the first is the one scored (as EasyEdit does).</param>
public sealed record PortabilityPrompt(string Category, string Prompt, IReadOnlyList<string> Answers);

/// <summary>An evaluation prompt (subject already written out) and the answer expected after it.</summary>
/// <param name="Prompt">Full sentence prefix, e.g. "The mother tongue of Léon Blum is".</param>
/// <param name="Answer">Expected continuation without the leading space, e.g. "French".</param>
public sealed record PromptAnswer(string Prompt, string Answer);

/// <summary>
/// One edit request in canonical form (spec §3): a prompt template with exactly one "{}" subject slot,
/// the subject, the new target and (for evaluation) the true target, plus the evaluation-only prompts
/// that come with benchmark records (§15, §16). Immutable; every instance is validated.
/// Targets are stored as given; the leading space required by tokenisation is added by
/// <see cref="NormalisedTarget(string)"/> (§3 item 1).
/// </summary>
public sealed class EditRequest
{
    /// <summary>The placeholder "true target" that zsRE requests carry (MEMIT-orig <c>dsets/zsre.py</c>, §3 item 3).</summary>
    public const string EndOfTextTarget = "<|endoftext|>";

    /// <summary>Creates a validated request.</summary>
    /// <param name="prompt">Template with exactly one "{}" where the subject goes, e.g. "The mother tongue of {} is".</param>
    /// <param name="subject">Subject string inserted literally into the slot; leading spaces are kept.</param>
    /// <param name="targetNew">New object, usually without a leading space ("English").</param>
    /// <param name="targetTrue">True object, used only by evaluation; null when unknown.</param>
    /// <param name="caseId">Benchmark case id (a cache key only, §3 item 4).</param>
    /// <exception cref="KeditException">The prompt does not hold exactly one "{}", or subject/target is empty.</exception>
    public EditRequest(
        string prompt,
        string subject,
        string targetNew,
        string? targetTrue = null,
        int? caseId = null,
        IEnumerable<string>? paraphrasePrompts = null,
        IEnumerable<PromptAnswer>? neighborhoodPrompts = null,
        IEnumerable<string>? attributePrompts = null,
        IEnumerable<string>? generationPrompts = null,
        string? localityPrompt = null,
        string? localityAnswer = null,
        IEnumerable<string>? goldAnswers = null,
        string? relationId = null,
        string? targetNewId = null,
        string? targetTrueId = null,
        RequestFormat format = RequestFormat.None,
        IEnumerable<PortabilityPrompt>? portability = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(subject);
        ArgumentNullException.ThrowIfNull(targetNew);
        string who = caseId is int id ? $"edit request (case_id {id})" : "edit request";
        int slots = ContextTemplates.CountSlots(prompt);
        if (slots != 1)
            throw new KeditException($"{who}: prompt {JsonFields.Quote(prompt)} must contain exactly one \"{{}}\" subject slot, found {slots}");
        if (string.IsNullOrWhiteSpace(subject))
            throw new KeditException($"{who}: subject is empty");
        if (string.IsNullOrWhiteSpace(targetNew))
            throw new KeditException($"{who}: target_new is empty");
        if (targetTrue is not null && string.IsNullOrWhiteSpace(targetTrue))
            throw new KeditException($"{who}: target_true is empty (leave it out instead)");
        if ((localityPrompt is null) != (localityAnswer is null))
            throw new KeditException($"{who}: locality prompt and answer must be given together");

        CaseId = caseId;
        Prompt = prompt;
        Subject = subject;
        TargetNew = targetNew;
        TargetTrue = targetTrue;
        ParaphrasePrompts = Freeze(paraphrasePrompts);
        NeighborhoodPrompts = Freeze(neighborhoodPrompts);
        AttributePrompts = Freeze(attributePrompts);
        GenerationPrompts = Freeze(generationPrompts);
        LocalityPrompt = localityPrompt;
        LocalityAnswer = localityAnswer;
        GoldAnswers = Freeze(goldAnswers);
        RelationId = relationId;
        TargetNewId = targetNewId;
        TargetTrueId = targetTrueId;
        Format = format;
        Portability = Freeze(portability);
    }

    /// <summary>KnowEdit portability probes (empty for other formats).</summary>
    public IReadOnlyList<PortabilityPrompt> Portability { get; }

    /// <summary>Benchmark case id, or null when the source has none.</summary>
    public int? CaseId { get; }

    /// <summary>Prompt template with exactly one "{}" (the subject slot).</summary>
    public string Prompt { get; }

    /// <summary>Subject, inserted literally into the slot.</summary>
    public string Subject { get; }

    /// <summary>New target as given (typically without leading space).</summary>
    public string TargetNew { get; }

    /// <summary>True target (evaluation only; never influences the update), or null.</summary>
    public string? TargetTrue { get; }

    /// <summary>Full sentences with the subject written out; expected answer = <see cref="TargetNew"/>.</summary>
    public IReadOnlyList<string> ParaphrasePrompts { get; }

    /// <summary>Prompts about other subjects whose answer must not change (CounterFact neighbourhood / EasyEdit locality).</summary>
    public IReadOnlyList<PromptAnswer> NeighborhoodPrompts { get; }

    /// <summary>CounterFact prompts about other subjects whose true answer is <see cref="TargetNew"/>.</summary>
    public IReadOnlyList<string> AttributePrompts { get; }

    /// <summary>CounterFact prompts for free generation about the subject (fluency / consistency).</summary>
    public IReadOnlyList<string> GenerationPrompts { get; }

    /// <summary>zsRE <c>loc</c>: an unrelated Natural Questions prompt ("nq question: …"), or null.</summary>
    public string? LocalityPrompt { get; }

    /// <summary>zsRE <c>loc_ans</c>: the gold answer of <see cref="LocalityPrompt"/>, or null.</summary>
    public string? LocalityAnswer { get; }

    /// <summary>zsRE <c>answers</c>: the gold answers of the original question (empty for other formats).</summary>
    public IReadOnlyList<string> GoldAnswers { get; }

    /// <summary>CounterFact <c>relation_id</c> (Wikidata property), or null.</summary>
    public string? RelationId { get; }

    /// <summary>CounterFact <c>target_new.id</c> (Wikidata item; selects reference snippets, §15.1), or null.</summary>
    public string? TargetNewId { get; }

    /// <summary>CounterFact <c>target_true.id</c>, or null.</summary>
    public string? TargetTrueId { get; }

    /// <summary>The file shape this request was read from.</summary>
    public RequestFormat Format { get; }

    /// <summary>The prompt with the subject filled in, e.g. "The mother tongue of Danielle Darrieux is".</summary>
    public string Sentence => ContextTemplates.Fill(Prompt, Subject);

    /// <summary>Text before the subject slot (the spec's <c>prefix</c>, §4.2).</summary>
    public string PromptPrefix => Prompt[..Prompt.IndexOf(ContextTemplates.Slot, StringComparison.Ordinal)];

    /// <summary>Text after the subject slot (the spec's <c>suffix</c>, §4.2).</summary>
    public string PromptSuffix => Prompt[(Prompt.IndexOf(ContextTemplates.Slot, StringComparison.Ordinal) + ContextTemplates.Slot.Length)..];

    /// <summary><see cref="TargetNew"/> with the leading space the reference adds before tokenising.</summary>
    public string NormalisedTargetNew => NormalisedTarget(TargetNew);

    /// <summary><see cref="TargetTrue"/> with a leading space, or null.</summary>
    public string? NormalisedTargetTrue => TargetTrue is null ? null : NormalisedTarget(TargetTrue);

    /// <summary>
    /// Spec §3 item 1: prepends one space unless the target already starts with a space, so the model is
    /// asked to predict the token that carries the space (" English").
    /// </summary>
    public static string NormalisedTarget(string target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return target.StartsWith(' ') ? target : " " + target;
    }

    /// <summary>
    /// Inserts the subject into a filled context template τ⟨P⟩ (one "{}" left), i.e. τ⟨P⟩⟨s⟩.
    /// </summary>
    public string FillSubject(string templateWithSlot) => ContextTemplates.Fill(templateWithSlot, Subject);

    /// <summary>τ⟨P⟩⟨s⟩: the context template filled with this prompt, then the subject.</summary>
    public string InContext(string contextTemplate) => FillSubject(ContextTemplates.Fill(contextTemplate, Prompt));

    /// <summary>
    /// Turns a sentence that contains the subject literally (EasyEdit/MEND style) into a template with one
    /// "{}". Engine rule (§3 item 2): the subject must occur exactly once — counting overlapping
    /// occurrences — otherwise the slot would be ambiguous.
    /// </summary>
    /// <exception cref="KeditException">The subject is empty, absent, or occurs more than once.</exception>
    public static string TemplateFromSentence(string sentence, string subject, string where = "edit request")
    {
        ArgumentNullException.ThrowIfNull(sentence);
        ArgumentNullException.ThrowIfNull(subject);
        if (subject.Length == 0)
            throw new KeditException($"{where}: subject is empty");
        int first = sentence.IndexOf(subject, StringComparison.Ordinal);
        if (first < 0)
            throw new KeditException($"{where}: subject {JsonFields.Quote(subject)} does not occur in the prompt {JsonFields.Quote(sentence)}");
        int second = sentence.IndexOf(subject, first + 1, StringComparison.Ordinal);
        if (second >= 0)
            throw new KeditException($"{where}: subject {JsonFields.Quote(subject)} occurs more than once in the prompt {JsonFields.Quote(sentence)} (at characters {first} and {second}); the subject slot would be ambiguous");
        return string.Concat(sentence.AsSpan(0, first), ContextTemplates.Slot, sentence.AsSpan(first + subject.Length));
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{(CaseId is int id ? $"[{id}] " : "")}{Sentence} -> {NormalisedTargetNew}{(TargetTrue is null ? "" : $" (was {NormalisedTargetTrue})")}";

    static IReadOnlyList<T> Freeze<T>(IEnumerable<T>? items) where T : class
    {
        if (items is null) return Array.Empty<T>();
        var array = items.ToArray();
        if (array.Any(x => x is null)) throw new ArgumentException("evaluation prompt lists must not contain null");
        return Array.AsReadOnly(array);
    }
}
