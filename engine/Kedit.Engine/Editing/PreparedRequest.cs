using Kedit.Editing.Inputs;
using Kedit.Tokenization;

namespace Kedit.Editing;

/// <summary>A token sequence and the position the edit reads keys from / inserts δ at.</summary>
public sealed record LookupRow(int[] Ids, int Index)
{
    public LookupRow Validate(string what)
    {
        if (Ids.Length == 0) throw new KeditException($"{what}: empty token sequence");
        if (Index < 0 || Index >= Ids.Length) throw new KeditException($"{what}: lookup index {Index} outside the {Ids.Length} tokens");
        return this;
    }
}

/// <summary>
/// One edit request reduced to token ids (spec §4–§7.1): the context rows grouped as the key
/// averaging needs them, the KL ("essence") rows, the bare sentence and the target tokens.
/// Rewriting rows are each context row followed by target[:-1].
/// </summary>
public sealed class PreparedRequest
{
    public PreparedRequest(IReadOnlyList<IReadOnlyList<LookupRow>> contextGroups, IReadOnlyList<LookupRow> klRows, LookupRow bare, int[] target, EditRequest? source = null)
    {
        if (target.Length == 0) throw new KeditException($"{source?.ToString() ?? "request"}: the target encodes to no tokens");
        if (contextGroups.Count == 0 || contextGroups.Any(g => g.Count == 0)) throw new KeditException("a request needs at least one context row in every group");
        ContextGroups = contextGroups; KlRows = klRows; Bare = bare; Target = target; Source = source;
    }

    public IReadOnlyList<IReadOnlyList<LookupRow>> ContextGroups { get; }
    public IReadOnlyList<LookupRow> KlRows { get; }
    public LookupRow Bare { get; }
    public int[] Target { get; }
    public EditRequest? Source { get; }

    public IEnumerable<LookupRow> Contexts => ContextGroups.SelectMany(g => g);

    /// <summary>Context row ++ target[:-1]; position Index of the context row stays the lookup.</summary>
    public LookupRow RewriteRow(LookupRow context) => new(context.Ids.Concat(Target[..^1]).ToArray(), context.Index);

    /// <summary>The same request with other context templates (ROME uses a flat list, MEMIT groups).</summary>
    public string Describe() => Source?.ToString() ?? $"request with target [{string.Join(",", Target)}]";
}

/// <summary>The text front end (spec §4 engine rules): templates and request text → token rows.</summary>
public static class RequestPreparer
{
    /// <summary>The KL ("essence") template of the reference: the subject followed by " is a".</summary>
    public const string KlTemplate = "{} is a";

    public static PreparedRequest Prepare(Tokenizer tok, EditRequest r, ContextTemplates templates, FactToken factToken)
    {
        string where = r.ToString();
        var groups = templates.Groups
            .Select(g => (IReadOnlyList<LookupRow>)g.Select(t => Row(tok, ContextTemplates.Fill(t, r.Prompt), r.Subject, factToken, where)).ToList())
            .ToList();
        var kl = new List<LookupRow> { Row(tok, KlTemplate, r.Subject, factToken == FactToken.Last ? FactToken.SubjectLast : factToken, where) };
        var bare = Row(tok, r.Prompt, r.Subject, factToken, where);
        return new PreparedRequest(groups, kl, bare, TargetTokens(tok, r.Sentence, r.NormalisedTargetNew, where), r);
    }

    /// <summary>
    /// Ids of template⟨subject⟩ and the lookup index: subject_last = len(enc(pre + s)) − 1, checked
    /// for prefix stability (the whole sentence's tokens must start with those of pre + s).
    /// </summary>
    public static LookupRow Row(Tokenizer tok, string template, string subject, FactToken factToken, string where)
    {
        int slot = template.IndexOf(ContextTemplates.Slot, StringComparison.Ordinal);
        if (slot < 0) throw new KeditException($"{where}: template \"{template}\" has no {{}} slot");
        string pre = template[..slot], post = template[(slot + 2)..];
        var ids = tok.Encode(pre + subject + post);
        int index;
        switch (factToken)
        {
            case FactToken.Last:
                index = ids.Length - 1;
                break;
            case FactToken.SubjectFirst:
                index = tok.Encode(pre).Length;
                break;
            default:
                var head = tok.Encode(pre + subject);
                if (head.Length > ids.Length || !ids.AsSpan(0, head.Length).SequenceEqual(head))
                    throw new KeditException($"{where}: the tokens of \"{pre + subject}\" are not a prefix of the tokens of \"{pre + subject + post}\" (tokenisation is not stable at the subject's end; rephrase the prompt)");
                index = head.Length - 1;
                break;
        }
        return new LookupRow(ids, index).Validate(where);
    }

    /// <summary>Continuation tokens: enc(sentence + target)[len(enc(sentence)):] (spec §4.3 engine rule).</summary>
    public static int[] TargetTokens(Tokenizer tok, string sentence, string target, string where)
    {
        var prompt = tok.Encode(sentence);
        var joint = tok.Encode(sentence + target);
        if (joint.Length <= prompt.Length || !joint.AsSpan(0, prompt.Length).SequenceEqual(prompt))
            throw new KeditException($"{where}: the target \"{target}\" does not tokenise as a continuation of \"{sentence}\"");
        return joint[prompt.Length..];
    }
}
