using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kedit.Editing.Inputs;

/// <summary>
/// Context templates (spec §5): groups of prefix templates, each holding exactly one "{}" slot that
/// receives the request prompt. MEMIT/D4S average keys within a group, then across groups (§6.1), so the
/// group structure is kept; ROME uses one flat group with equal weights (§5.2). Generating templates
/// from a model is done elsewhere; this type holds, validates and fills them.
/// </summary>
public sealed class ContextTemplates
{
    /// <summary>The slot marker. Substitution is literal; no other brace is ever interpreted (§4.5).</summary>
    public const string Slot = "{}";

    readonly string[][] _groups;

    /// <summary>Builds and validates a group structure: at least one group, no empty group, one "{}" per template.</summary>
    /// <exception cref="KeditException">A group is empty or a template does not hold exactly one "{}".</exception>
    public ContextTemplates(IEnumerable<IEnumerable<string>> groups, string source = "context templates")
    {
        ArgumentNullException.ThrowIfNull(groups);
        _groups = groups.Select(g => (g ?? throw new KeditException($"{source}: a group is null")).ToArray()).ToArray();
        if (_groups.Length == 0)
            throw new KeditException($"{source}: no template groups; give at least [[\"{{}}\"]]");
        for (int g = 0; g < _groups.Length; g++)
        {
            if (_groups[g].Length == 0)
                throw new KeditException($"{source}: group {g} is empty");
            for (int t = 0; t < _groups[g].Length; t++)
            {
                string? template = _groups[g][t];
                if (template is null)
                    throw new KeditException($"{source}: template [{g}][{t}] is null");
                int slots = CountSlots(template);
                if (slots != 1)
                    throw new KeditException(
                        $"{source}: template [{g}][{t}] {Quote(template)} must contain exactly one \"{{}}\" (the prompt slot), found {slots}");
            }
        }
        Groups = Array.AsReadOnly(_groups.Select(g => (IReadOnlyList<string>)Array.AsReadOnly(g)).ToArray());
    }

    /// <summary>One group holding all <paramref name="templates"/> (the ROME shape).</summary>
    public static ContextTemplates Flat(IEnumerable<string> templates, string source = "context templates") =>
        new(new[] { templates }, source);

    /// <summary>Only the trivial template: <c>[["{}"]]</c>, i.e. the bare prompt.</summary>
    public static ContextTemplates Bare { get; } = new(new[] { new[] { Slot } });

    /// <summary>
    /// Non-reference test default suggested by spec §5.3 for runs without generation:
    /// <c>[["{}"], [five fixed sentences + ". {}"]]</c>.
    /// </summary>
    public static ContextTemplates TestDefaultMemit { get; } = new(new[]
    {
        new[] { Slot },
        new[]
        {
            "The story continues. {}", "Therefore, it follows. {}", "Because of this. {}",
            "I think so. {}", "You can see it. {}",
        },
    });

    /// <summary>The same six templates as one flat group (ROME weighting).</summary>
    public static ContextTemplates TestDefaultRome { get; } = Flat(TestDefaultMemit.All);

    /// <summary>Groups of templates, in order; group 0 is usually <c>["{}"]</c>.</summary>
    public IReadOnlyList<IReadOnlyList<string>> Groups { get; }

    /// <summary>Total number of templates over all groups.</summary>
    public int Count => _groups.Sum(g => g.Length);

    /// <summary>All templates, group by group.</summary>
    public IEnumerable<string> All => _groups.SelectMany(g => g);

    /// <summary>True when the first group is exactly the bare template <c>["{}"]</c> (as every reference has it).</summary>
    public bool StartsWithBare => _groups[0].Length == 1 && _groups[0][0] == Slot;

    /// <summary>Number of non-overlapping "{}" occurrences in <paramref name="text"/> (ordinal).</summary>
    public static int CountSlots(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int count = 0;
        for (int i = text.IndexOf(Slot, StringComparison.Ordinal); i >= 0; i = text.IndexOf(Slot, i + Slot.Length, StringComparison.Ordinal))
            count++;
        return count;
    }

    /// <summary>
    /// Replaces the single "{}" of <paramref name="template"/> by <paramref name="value"/> literally:
    /// braces in the value (or elsewhere in the template) are copied unchanged, never interpreted.
    /// Used both for τ⟨P⟩ (template, prompt) and for P⟨s⟩ (prompt, subject).
    /// </summary>
    /// <exception cref="KeditException">The template does not contain exactly one "{}".</exception>
    public static string Fill(string template, string value)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(value);
        int at = template.IndexOf(Slot, StringComparison.Ordinal);
        if (at < 0 || template.IndexOf(Slot, at + Slot.Length, StringComparison.Ordinal) >= 0)
            throw new KeditException(
                $"template {Quote(template)} must contain exactly one \"{{}}\", found {CountSlots(template)}");
        return string.Concat(template.AsSpan(0, at), value, template.AsSpan(at + Slot.Length));
    }

    /// <summary>
    /// Reads <c>[["{}"], ["a {}", ...]]</c> (groups) or <c>["{}", "a {}", ...]</c> (one flat group).
    /// Mixing strings and arrays at the top level is rejected.
    /// </summary>
    public static ContextTemplates FromJson(JsonElement element, string source = "context_templates")
    {
        var f = new JsonFields(source);
        if (element.ValueKind != JsonValueKind.Array)
            throw f.Fail($"context templates must be an array of strings or an array of arrays of strings, got {JsonFields.Kind(element)}");
        if (element.GetArrayLength() == 0)
            throw f.Fail("context templates are empty; give at least [\"{}\"]");
        var kinds = element.EnumerateArray().Select(e => e.ValueKind).Distinct().ToList();
        if (kinds.Count == 1 && kinds[0] == JsonValueKind.String)
            return Flat(f.StringList(element, "context_templates"), source);
        if (kinds.Count == 1 && kinds[0] == JsonValueKind.Array)
        {
            var groups = new List<List<string>>();
            int g = 0;
            foreach (var group in element.EnumerateArray())
                groups.Add(f.StringList(group, $"context_templates[{g++}]"));
            return new ContextTemplates(groups, source);
        }
        throw f.Fail("context templates must be all strings (one flat group) or all arrays of strings (groups), not a mix of "
            + string.Join(" and ", kinds.Select(k => k.ToString().ToLowerInvariant())));
    }

    /// <summary>Parses the JSON text form accepted by <see cref="FromJson(JsonElement, string)"/>.</summary>
    public static ContextTemplates Parse(string json, string source = "context templates")
    {
        using var doc = JsonFields.ParseDocument(json, source);
        return FromJson(doc.RootElement, source);
    }

    /// <summary>The groups form, e.g. <c>[["{}"],["Yes!\n{}"]]</c>; <see cref="Parse"/> reads it back unchanged.</summary>
    public string ToJson() => ToJsonNode().ToJsonString();

    internal JsonArray ToJsonNode() =>
        new(_groups.Select(g => (JsonNode)new JsonArray(g.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray())).ToArray());

    /// <inheritdoc/>
    public override string ToString() => $"{_groups.Length} group(s), {Count} template(s)";

    static string Quote(string s) => JsonFields.Quote(s);
}
