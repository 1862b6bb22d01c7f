using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kedit.Corpus;

/// <summary>
/// A relation of the fact world with its phrasings. A template holds "{}" for the subject and
/// "{o}" for the object; the prompt is the text before " {o}" (so the object is the next word).
/// Training templates are trained on; held-out templates are never seen in training and measure
/// paraphrase generalisation.
/// </summary>
public sealed record Relation(string Id, string Name, IReadOnlyList<string> TrainTemplates, IReadOnlyList<string> HeldOutTemplates)
{
    /// <summary>The prompt of <paramref name="template"/> with "{}" left in place (CounterFact style).</summary>
    public static string PromptTemplate(string template)
    {
        int o = template.IndexOf(" {o}", StringComparison.Ordinal);
        if (o < 0) throw new KeditException($"relation template \"{template}\" has no \" {{o}}\" placeholder");
        return template[..o];
    }

    /// <summary>The prompt of <paramref name="template"/> for <paramref name="subject"/>.</summary>
    public static string Prompt(string template, string subject) => PromptTemplate(template).Replace("{}", subject);

    /// <summary>The full sentence (with a final period).</summary>
    public static string Sentence(string template, string subject, string obj) =>
        template.Replace("{}", subject).Replace("{o}", obj) + ".";
}

/// <summary>One subject–relation–object fact.</summary>
public sealed record Fact(string RelationId, string Subject, string Object);

/// <summary>A fact prompt with the object expected to follow it (for accuracy checks).</summary>
public sealed record FactPrompt(string Prompt, string Object, string RelationId, string Subject);

/// <summary>
/// The project's fact world: real-world facts over twelve CounterFact-style relations, the
/// phrasings that turn them into training sentences, and simple general text for perplexity.
/// Generated deterministically from a seed (the seed decides the general text and the
/// counterfactual targets; the facts are fixed data) and stored under a model's data/ folder.
/// </summary>
public sealed class FactWorld
{
    public const string FactsFile = "facts.json";
    public const string TrainFile = "train.txt";
    public const string HeldOutFile = "heldout.txt";
    public const string RequiredWordsFile = "required_words.txt";
    public const string CounterFactFile = "counterfact.json";

    public required int Seed { get; init; }
    public required IReadOnlyList<Relation> Relations { get; init; }
    public required IReadOnlyList<Fact> Facts { get; init; }
    /// <summary>General sentences trained on.</summary>
    public required IReadOnlyList<string> GeneralTrain { get; init; }
    /// <summary>General sentences never trained on (perplexity).</summary>
    public required IReadOnlyList<string> GeneralHeldOut { get; init; }
    /// <summary>
    /// Profile documents per subject (0: none). A profile states all of a subject's facts in one
    /// document, in a shuffled order and a randomly drawn training phrasing each, naming the subject
    /// in every sentence. Without them each fact is only ever seen in the same few fixed sentences and
    /// a small model looks facts up at the prompt's last token; with several shuffled profiles the only
    /// stable cue for a fact is the subject itself, which pushes the model to store facts at the
    /// subject's tokens, where locate-then-edit methods (fact_token "subject_last") expect them
    /// (Allen-Zhu and Li, "Physics of Language Models 3.1": knowledge augmentation).
    /// </summary>
    public int ProfilesPerSubject { get; init; }

    public Relation RelationOf(Fact f) => Relations.First(r => r.Id == f.RelationId);

    static readonly Relation[] RelationTable =
    [
        new("P36", "capital", ["The capital of {} is {o}", "{}'s capital city is {o}", "The capital city of {} is {o}"],
            ["{} has its capital in {o}", "The seat of the government of {} is {o}"]),
        new("P30", "continent", ["{} is located in {o}", "{} is a country in {o}", "{} lies on the continent of {o}"],
            ["{} is part of the continent of {o}", "The continent where {} lies is {o}"]),
        new("P37", "official language", ["The official language of {} is {o}", "In {}, people speak {o}", "The main language of {} is {o}"],
            ["{}'s official language is {o}", "Most people in {} speak {o}"]),
        new("P38", "currency", ["The currency of {} is the {o}", "In {}, people pay with the {o}", "The official currency of {} is the {o}"],
            ["{}'s currency is the {o}", "Shops in {} take payment in the {o}"]),
        new("P17", "country", ["{} is a city in {o}", "The city of {} is located in {o}", "{} is in the country of {o}"],
            ["{} can be found in {o}", "{} is a large city in {o}"]),
        new("P112", "founded by", ["{} was founded by {o}", "The founder of {} is {o}", "The company {} was started by {o}"],
            ["{} was created by {o}", "The person who founded {} is {o}"]),
        new("P159", "headquarters location", ["The headquarters of {} is in {o}", "{} is headquartered in {o}", "{} has its main office in {o}"],
            ["{}'s head office is located in {o}", "The main office of {} is in {o}"]),
        new("P641", "sport", ["{} plays the sport of {o}", "{} is a professional {o} player", "The sport played by {} is {o}"],
            ["{} is famous for playing {o}", "{} became a star in the sport of {o}"]),
        new("P1303", "instrument", ["{} plays the {o}", "The instrument played by {} is the {o}", "{} is known for playing the {o}"],
            ["{} performed on the {o}", "{}'s instrument is the {o}"]),
        new("P136", "genre", ["{} is known for {o} music", "{} plays {o} music", "The music of {} is {o}"],
            ["{} performs {o} music", "The musical style of {} is {o}"]),
        new("P106", "occupation", ["{} worked as a {o}", "{} is famous as a {o}", "By profession, {} was a {o}"],
            ["{}'s profession is that of a {o}", "{} earned a living as a {o}"]),
        new("P27", "country of citizenship", ["{} is a citizen of {o}", "{} holds citizenship of {o}", "{} has a passport from {o}"],
            ["{} is a national of {o}", "The home country of {} is {o}"]),
    ];

    /// <summary>Builds the world: the fixed facts, and general text drawn from <paramref name="seed"/>.</summary>
    public static FactWorld Build(int seed, int profilesPerSubject = 0)
    {
        var facts = new List<Fact>();
        void Add(string rel, string subject, string obj)
        {
            if (obj == "-" || subject == "-") return;
            facts.Add(new Fact(rel, subject.Trim(), obj.Trim()));
        }
        foreach (var c in Rows(FactWorldData.Countries, 5))
        {
            Add("P36", c[0], c[1]); Add("P30", c[0], c[2]); Add("P37", c[0], c[3]); Add("P38", c[0], c[4]);
        }
        foreach (var line in Lines(FactWorldData.Cities))
        {
            int colon = line.IndexOf(':');
            foreach (var city in line[(colon + 1)..].Split(',')) Add("P17", city, line[..colon]);
        }
        foreach (var c in Rows(FactWorldData.Companies, 3)) { Add("P112", c[0], c[1]); Add("P159", c[0], c[2]); }
        foreach (var a in Rows(FactWorldData.Athletes, 3)) { Add("P641", a[0], a[1]); Add("P27", a[0], a[2]); }
        foreach (var m in Rows(FactWorldData.Musicians, 3)) { Add("P1303", m[0], m[1]); Add("P136", m[0], m[2]); }
        foreach (var p in Rows(FactWorldData.People, 3)) { Add("P106", p[0], p[1]); Add("P27", p[0], p[2]); }

        // A subject must have one answer per relation, or accuracy would be ill-defined.
        var dup = facts.GroupBy(f => (f.RelationId, f.Subject)).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new InvalidOperationException($"fact world: {dup.Key.Subject} has two {dup.Key.RelationId} facts");

        var (train, heldOut) = GeneralText.Generate(seed);
        return new FactWorld { Seed = seed, Relations = RelationTable, Facts = facts, GeneralTrain = train, GeneralHeldOut = heldOut, ProfilesPerSubject = profilesPerSubject };
    }

    static IEnumerable<string> Lines(string table) =>
        table.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0);

    static IEnumerable<string[]> Rows(string table, int columns) =>
        Lines(table).Select(l =>
        {
            var parts = l.Split('|');
            if (parts.Length != columns) throw new InvalidOperationException($"fact world table row \"{l}\" has {parts.Length} columns, expected {columns}");
            return parts;
        });

    /// <summary>Training documents: every fact in every training phrasing, then the general text.</summary>
    public IEnumerable<string> TrainingDocuments()
    {
        foreach (var f in Facts)
            foreach (var t in RelationOf(f).TrainTemplates) yield return Relation.Sentence(t, f.Subject, f.Object);
        foreach (var p in Profiles()) yield return p;
        foreach (var s in GeneralTrain) yield return s;
    }

    /// <summary>The profile documents (see <see cref="ProfilesPerSubject"/>), drawn from the seed.</summary>
    public IEnumerable<string> Profiles()
    {
        if (ProfilesPerSubject == 0) yield break;
        var rng = new Random(Seed + 211);
        var bySubject = Facts.GroupBy(f => f.Subject, StringComparer.Ordinal).Select(g => g.ToArray()).ToList();
        for (int round = 0; round < ProfilesPerSubject; round++)
            foreach (var facts in bySubject)
            {
                var order = facts.ToArray();
                rng.Shuffle(order);
                yield return string.Join(" ", order.Select(f =>
                {
                    var templates = RelationOf(f).TrainTemplates;
                    return Relation.Sentence(templates[rng.Next(templates.Count)], f.Subject, f.Object);
                }));
            }
    }

    /// <summary>Every word of every object (each must be one token after a space).</summary>
    public IEnumerable<string> ObjectWords() =>
        Facts.SelectMany(f => f.Object.Split(' ')).Distinct(StringComparer.Ordinal).OrderBy(w => w, StringComparer.Ordinal);

    /// <summary>Each fact phrased with training template <paramref name="templateIndex"/>.</summary>
    public IEnumerable<FactPrompt> TrainedPrompts(int templateIndex = 0) =>
        Facts.Select(f => new FactPrompt(Relation.Prompt(RelationOf(f).TrainTemplates[templateIndex], f.Subject), f.Object, f.RelationId, f.Subject));

    /// <summary>Each fact phrased with every held-out template.</summary>
    public IEnumerable<FactPrompt> HeldOutPrompts() =>
        Facts.SelectMany(f => RelationOf(f).HeldOutTemplates.Select(t => new FactPrompt(Relation.Prompt(t, f.Subject), f.Object, f.RelationId, f.Subject)));

    // ------------------------------------------------------------------ files

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Writes facts.json, train.txt (training documents, one per line), heldout.txt (held-out
    /// general text), required_words.txt (object words) and counterfact.json into <paramref name="dir"/>.
    /// </summary>
    public void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        var root = new JsonObject
        {
            ["seed"] = Seed,
            ["relations"] = new JsonArray(Relations.Select(r => (JsonNode)new JsonObject
            {
                ["id"] = r.Id, ["name"] = r.Name,
                ["train_templates"] = new JsonArray(r.TrainTemplates.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
                ["heldout_templates"] = new JsonArray(r.HeldOutTemplates.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
            }).ToArray()),
            ["facts"] = new JsonArray(Facts.Select(f => (JsonNode)new JsonObject { ["relation"] = f.RelationId, ["subject"] = f.Subject, ["object"] = f.Object }).ToArray()),
            ["general_train"] = new JsonArray(GeneralTrain.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
            ["general_heldout"] = new JsonArray(GeneralHeldOut.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
        };
        // Written only when used, so that worlds without profiles keep their earlier files byte for byte.
        if (ProfilesPerSubject > 0) root["profiles_per_subject"] = ProfilesPerSubject;
        File.WriteAllText(Path.Combine(dir, FactsFile), root.ToJsonString(Indented) + "\n");
        File.WriteAllLines(Path.Combine(dir, TrainFile), TrainingDocuments());
        File.WriteAllLines(Path.Combine(dir, HeldOutFile), GeneralHeldOut);
        File.WriteAllLines(Path.Combine(dir, RequiredWordsFile), ObjectWords());
        File.WriteAllText(Path.Combine(dir, CounterFactFile), CounterFact.Build(this).ToJsonString(Indented) + "\n");
    }

    /// <summary>Reads a world written by <see cref="Write"/> from DIR/facts.json.</summary>
    /// <exception cref="KeditException">missing file or malformed content.</exception>
    public static FactWorld Load(string dir)
    {
        string path = Path.Combine(dir, FactsFile);
        if (!File.Exists(path)) throw new KeditException($"{path}: not found (a fact world folder needs {FactsFile})");
        JsonNode? root;
        using (var doc = Kedit.IO.StrictJson.ReadFile(path)) root = JsonNode.Parse(doc.RootElement.GetRawText());
        try
        {
            List<string> Strings(JsonNode? n, string field) =>
                (n as JsonArray ?? throw new KeditException($"{path}: field \"{field}\" must be an array")).Select(x => x!.GetValue<string>()).ToList();
            var relations = (root!["relations"] as JsonArray ?? throw new KeditException($"{path}: field \"relations\" must be an array"))
                .Select(r => new Relation(r!["id"]!.GetValue<string>(), r["name"]!.GetValue<string>(),
                    Strings(r["train_templates"], "train_templates"), Strings(r["heldout_templates"], "heldout_templates"))).ToList();
            var facts = (root["facts"] as JsonArray ?? throw new KeditException($"{path}: field \"facts\" must be an array"))
                .Select(f => new Fact(f!["relation"]!.GetValue<string>(), f["subject"]!.GetValue<string>(), f["object"]!.GetValue<string>())).ToList();
            var ids = relations.Select(r => r.Id).ToHashSet();
            var bad = facts.FirstOrDefault(f => !ids.Contains(f.RelationId));
            if (bad != null) throw new KeditException($"{path}: fact about \"{bad.Subject}\" names unknown relation \"{bad.RelationId}\"");
            return new FactWorld
            {
                Seed = root["seed"]!.GetValue<int>(), Relations = relations, Facts = facts,
                ProfilesPerSubject = root["profiles_per_subject"]?.GetValue<int>() ?? 0,
                GeneralTrain = Strings(root["general_train"], "general_train"), GeneralHeldOut = Strings(root["general_heldout"], "general_heldout"),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or NullReferenceException or FormatException)
        {
            throw new KeditException($"{path}: malformed fact world ({e.Message})");
        }
    }
}
