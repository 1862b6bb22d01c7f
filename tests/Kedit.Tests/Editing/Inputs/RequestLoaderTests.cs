using System.Text.Json;
using Kedit.Editing.Inputs;
using Xunit;

namespace Kedit.Tests.Editing.Inputs;

public class RequestLoaderTests
{
    // ---- real data ------------------------------------------------------------------------------

    [SkippableTheory]
    [InlineData("counterfact-edit.json", 6000, 0, "The mother tongue of {} is", "Danielle Darrieux", "English", "French")]
    [InlineData("counterfact-train.json", 6000, 3, "{}, which is located in", "Autonomous University of Madrid", "Sweden", "Spain")]
    [InlineData("counterfact-val.json", 1151, 10, "{}, by", "BBC One", "Sega", "BBC")]
    public void RealCounterFactFilesLoadCompletely(string file, int count, int firstCase, string firstPrompt, string firstSubject, string firstNew, string firstTrue)
    {
        string path = TestPaths.RequireShared("data", "counterfact", file);
        var requests = RequestLoader.Load(path);

        Assert.Equal(count, requests.Count);
        var r0 = requests[0];
        Assert.Equal(firstCase, r0.CaseId);
        Assert.Equal(firstPrompt, r0.Prompt);
        Assert.Equal(firstSubject, r0.Subject);
        Assert.Equal(firstNew, r0.TargetNew);
        Assert.Equal(" " + firstNew, r0.NormalisedTargetNew);
        Assert.Equal(firstTrue, r0.TargetTrue);

        // Every record against the raw file, read independently: the canonical form must reproduce it.
        using var raw = JsonDocument.Parse(File.ReadAllText(path));
        int i = 0;
        foreach (var rec in raw.RootElement.EnumerateArray())
        {
            var r = requests[i++];
            Assert.Equal(RequestFormat.CounterFactEasyEdit, r.Format);
            Assert.Equal(rec.GetProperty("case_id").GetInt32(), r.CaseId);
            Assert.Equal(rec.GetProperty("prompt").GetString(), r.Sentence);
            Assert.Equal(1, ContextTemplates.CountSlots(r.Prompt));
            Assert.Equal(rec.GetProperty("subject").GetString(), r.Subject);
            Assert.Equal(rec.GetProperty("target_new").GetString(), r.TargetNew);
            Assert.Equal(rec.GetProperty("ground_truth").GetString(), r.TargetTrue);
            Assert.Equal(new[] { rec.GetProperty("rephrase_prompt").GetString()! }, r.ParaphrasePrompts);
            var n = Assert.Single(r.NeighborhoodPrompts);
            Assert.Equal(rec.GetProperty("locality_prompt").GetString(), n.Prompt);
            Assert.Equal(rec.GetProperty("locality_ground_truth").GetString(), n.Answer);
        }
        Assert.Equal(count, requests.Select(r => r.CaseId).Distinct().Count());
    }

    [SkippableFact]
    public void RealZsreFileLoadsWithEitherTargetPreset()
    {
        string path = TestPaths.RequireShared("data", "zsre", "zsre_mend_train-1k.json");
        // Records 314 and 428 have "alt": "" (an edit to nothing): strict loading refuses the file, naming the
        // first; the lenient loader skips both; the answers[0] preset never reads alt and keeps all 600.
        var strict = Assert.Throws<KeditException>(() => RequestLoader.Load(path));
        Assert.Contains("record [314]", strict.Message);
        Assert.Contains("'alt' is empty", strict.Message);
        var lenient = RequestLoader.LoadLenient(path);
        Assert.Equal(new[] { 314, 428 }, lenient.Skipped.Select(s => s.Index));
        Assert.All(lenient.Skipped, s => Assert.Contains("'alt' is empty", s.Reason));
        var alt = lenient.Requests;
        Assert.Equal(598, alt.Count);
        var first = RequestLoader.Load(path, new RequestLoadOptions { ZsreTarget = ZsreTarget.FirstAnswer });
        Assert.Equal(600, first.Count);

        var r0 = alt[0];
        Assert.Equal(RequestFormat.ZsreMend, r0.Format);
        Assert.Equal("UniFirst", r0.Subject);
        Assert.Equal("What is the product made by {}?", r0.Prompt);
        Assert.Equal("unmanned aircraft", r0.TargetNew);
        Assert.Equal("uniform", first[0].TargetNew);
        Assert.Equal(EditRequest.EndOfTextTarget, r0.TargetTrue);
        Assert.Equal(new[] { "What will be the product of UniFirst?" }, r0.ParaphrasePrompts);
        Assert.Equal("nq question: john goodman's character in the big lebowski", r0.LocalityPrompt);
        Assert.Equal("Walter Sobchak", r0.LocalityAnswer);
        Assert.Null(r0.CaseId);

        using var raw = JsonDocument.Parse(File.ReadAllText(path));
        int i = 0, kept = 0;
        foreach (var rec in raw.RootElement.EnumerateArray())
        {
            Assert.Equal(rec.GetProperty("src").GetString(), first[i].Sentence);
            Assert.Equal(rec.GetProperty("answers")[0].GetString(), first[i].TargetNew);
            Assert.Equal(rec.GetProperty("answers").GetArrayLength(), first[i].GoldAnswers.Count);
            Assert.Equal(rec.GetProperty("loc_ans").GetString(), first[i].LocalityAnswer);
            if (i != 314 && i != 428)
            {
                Assert.Equal(rec.GetProperty("src").GetString(), alt[kept].Sentence);
                Assert.Equal(rec.GetProperty("alt").GetString(), alt[kept].TargetNew);
                kept++;
            }
            i++;
        }
    }

    // ---- the four formats -----------------------------------------------------------------------

    const string RomeRecord = """
        {
          "case_id": 0,
          "pararel_idx": 2796,
          "requested_rewrite": {
            "prompt": "The mother tongue of {} is",
            "relation_id": "P103",
            "target_new": { "str": "English", "id": "Q1860" },
            "target_true": { "str": "French", "id": "Q150" },
            "subject": "Danielle Darrieux"
          },
          "paraphrase_prompts": ["Shayna does this and Yauhen Sauchuk is. Danielle Darrieux, speaker of", "Danielle Darrieux's native language is"],
          "neighborhood_prompts": ["The mother tongue of Léon Blum is", "Michel Rocard is a native speaker of"],
          "attribute_prompts": ["J. R. R. Tolkien is a native speaker of"],
          "generation_prompts": ["Danielle Darrieux's mother tongue is", "Where Danielle Darrieux is from, people speak the language of"]
        }
        """;

    [Fact]
    public void CounterFactRomeFormat()
    {
        var r = Assert.Single(RequestLoader.Parse("[" + RomeRecord + "]", "cf.json"));
        Assert.Equal(RequestFormat.CounterFactRome, r.Format);
        Assert.Equal(0, r.CaseId);
        Assert.Equal("The mother tongue of {} is", r.Prompt);
        Assert.Equal("The mother tongue of Danielle Darrieux is", r.Sentence);
        Assert.Equal("The mother tongue of ", r.PromptPrefix);
        Assert.Equal(" is", r.PromptSuffix);
        Assert.Equal("English", r.TargetNew);
        Assert.Equal("French", r.TargetTrue);
        Assert.Equal(" French", r.NormalisedTargetTrue);
        Assert.Equal("P103", r.RelationId);
        Assert.Equal("Q1860", r.TargetNewId);
        Assert.Equal("Q150", r.TargetTrueId);
        Assert.Equal(2, r.ParaphrasePrompts.Count);
        Assert.Equal(
            new[] { new PromptAnswer("The mother tongue of Léon Blum is", "French"), new PromptAnswer("Michel Rocard is a native speaker of", "French") },
            r.NeighborhoodPrompts);
        Assert.Equal(new[] { "J. R. R. Tolkien is a native speaker of" }, r.AttributePrompts);
        Assert.Equal(2, r.GenerationPrompts.Count);
    }

    [Fact]
    public void EasyEditFormatAcceptsListsForRephraseAndLocality()
    {
        const string json = """
            [{"case_id": 7, "prompt": "Paris is the capital of", "subject": "Paris", "target_new": "Italy", "ground_truth": "France",
              "rephrase_prompt": ["The capital city Paris belongs to", "Paris lies in"],
              "locality_prompt": ["Lyon is in", "Berlin is the capital of"], "locality_ground_truth": ["France", "Germany"]}]
            """;
        var r = Assert.Single(RequestLoader.Parse(json, "ee.json"));
        Assert.Equal(RequestFormat.CounterFactEasyEdit, r.Format);
        Assert.Equal("{} is the capital of", r.Prompt);
        Assert.Equal("France", r.TargetTrue);
        Assert.Equal(2, r.ParaphrasePrompts.Count);
        Assert.Equal(new PromptAnswer("Berlin is the capital of", "Germany"), r.NeighborhoodPrompts[1]);
    }

    [Fact]
    public void ZsreFormatFollowsThePreset()
    {
        const string json = """
            [{"subject": "Watts Humphrey", "src": "What university did Watts Humphrey attend?", "pred": "Trinity College",
              "rephrase": "What university did Watts Humphrey take part in?", "alt": "University of Michigan",
              "answers": ["Illinois Institute of Technology"], "loc": "nq question: who played desmond doss father in hacksaw ridge",
              "loc_ans": "Hugo Weaving", "cond": "Trinity College >> University of Michigan || What university did Watts Humphrey attend?"}]
            """;
        var alt = Assert.Single(RequestLoader.Parse(json, "z.json"));
        var first = Assert.Single(RequestLoader.Parse(json, "z.json", new RequestLoadOptions { ZsreTarget = ZsreTarget.FirstAnswer }));
        Assert.Equal("What university did {} attend?", alt.Prompt);
        Assert.Equal("University of Michigan", alt.TargetNew);
        Assert.Equal("Illinois Institute of Technology", first.TargetNew);
        Assert.Equal("<|endoftext|>", alt.TargetTrue);
        Assert.Equal("<|endoftext|>", first.TargetTrue);
        Assert.Equal("Hugo Weaving", alt.LocalityAnswer);
        Assert.Empty(alt.NeighborhoodPrompts);
    }

    [Fact]
    public void PlainFormatTakesStringOrStrTargets()
    {
        const string json = """
            [{"prompt": "{} is located in", "subject": "Paris", "target_new": "Rome", "target_true": "France"},
             {"prompt": "The home of{}", "subject": " Tom", "target_new": {"str": " Oslo"},
              "neighborhood_prompts": [{"prompt": "The home of Ann is", "target": "Bergen"}]}]
            """;
        var rs = RequestLoader.Parse(json, "plain.json");
        Assert.Equal(2, rs.Count);
        Assert.All(rs, r => Assert.Equal(RequestFormat.Plain, r.Format));
        Assert.Equal("Paris is located in", rs[0].Sentence);
        Assert.Equal(" Rome", rs[0].NormalisedTargetNew);
        Assert.Equal("France", rs[0].TargetTrue);
        Assert.Null(rs[0].CaseId);
        // The subject keeps its own leading space (fixture style) and a spaced target is not doubled.
        Assert.Equal("The home of Tom", rs[1].Sentence);
        Assert.Equal(" Oslo", rs[1].NormalisedTargetNew);
        Assert.Null(rs[1].TargetTrue);
        Assert.Equal(new PromptAnswer("The home of Ann is", "Bergen"), Assert.Single(rs[1].NeighborhoodPrompts));
    }

    [Fact]
    public void SingleObjectAndJsonLinesAreAccepted()
    {
        var one = Assert.Single(RequestLoader.Parse("""{"prompt": "{} plays", "subject": "Mia Hamm", "target_new": "chess"}""", "one.json"));
        Assert.Equal("Mia Hamm plays", one.Sentence);

        string jsonl = "\uFEFF{\"prompt\": \"{} plays\", \"subject\": \"Mia Hamm\", \"target_new\": \"chess\"}\r\n\n"
            + "{\"prompt\": \"{} lives in\", \"subject\": \"Tom\", \"target_new\": \"Oslo\"}\n";
        var rs = RequestLoader.Parse(jsonl, "reqs.jsonl");
        Assert.Equal(2, rs.Count);
        Assert.Equal("Tom lives in", rs[1].Sentence);
    }

    [Fact]
    public void LoadReadsFiles()
    {
        string path = Path.Combine(Path.GetTempPath(), $"kedit-req-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "[" + RomeRecord + "]");
        try { Assert.Equal("Danielle Darrieux", Assert.Single(RequestLoader.Load(path)).Subject); }
        finally { File.Delete(path); }
    }

    [Fact]
    public void BracesOtherThanTheSlotAreNeverInterpreted()
    {
        var r = Assert.Single(RequestLoader.Parse("""[{"prompt": "{0} of {} is {x}", "subject": "A{}B", "target_new": "{y}"}]""", "b.json"));
        Assert.Equal("{0} of A{}B is {x}", r.Sentence);
        Assert.Equal(" {y}", r.NormalisedTargetNew);
        Assert.Equal("Yes!\n{0} of A{}B is {x}", r.InContext("Yes!\n{}"));
    }

    // ---- rejections -----------------------------------------------------------------------------

    static KeditException Rejects(string json, params string[] fragments)
    {
        var e = Assert.Throws<KeditException>(() => RequestLoader.Parse(json, "reqs.json"));
        Assert.Contains("reqs.json", e.Message);
        foreach (var f in fragments) Assert.Contains(f, e.Message);
        return e;
    }

    const string Good = """{"case_id": 1, "prompt": "Paris is in", "subject": "Paris", "target_new": "Italy", "ground_truth": "France"}""";

    [Fact]
    public void SubjectMissingFromPrompt() =>
        Rejects($$"""[{{Good}}, {"case_id": 5, "prompt": "Lyon is in", "subject": "Paris", "target_new": "Italy", "ground_truth": "France"}]""",
            "record [1] (case_id 5)", "'prompt'", "does not contain the subject");

    [Fact]
    public void SubjectOccurringTwice() =>
        Rejects("""[{"case_id": 9, "prompt": "Paris, Paris is in", "subject": "Paris", "target_new": "Italy", "ground_truth": "France"}]""",
            "record [0] (case_id 9)", "'prompt'", "more than once");

    [Fact]
    public void OverlappingSubjectOccurrencesAreAmbiguousToo() =>
        Rejects("""[{"src": "Who is aaa?", "subject": "aa", "alt": "x", "answers": ["y"]}]""", "record [0]", "'src'", "more than once");

    [Fact]
    public void TwoSlotsInATemplatePrompt() =>
        Rejects("""[{"prompt": "{} and {} are", "subject": "A", "target_new": "B"}]""", "'prompt'", "2 times");

    [Theory]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": ""}""", "'target_new'")]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": {"str": "  "}}""", "'target_new.str'")]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": "B", "target_true": ""}""", "'target_true'")]
    [InlineData("""{"prompt": "{} is", "subject": "", "target_new": "B"}""", "'subject'")]
    [InlineData("""{"prompt": "x is", "subject": "x", "target_new": "B", "ground_truth": ""}""", "'ground_truth'")]
    [InlineData("""{"subject": "x", "src": "x?", "alt": "", "answers": ["a"]}""", "'alt'")]
    public void EmptyValues(string record, string field) => Rejects("[" + record + "]", "record [0]", field, "is empty");

    [Fact]
    public void EmptyRequestedRewriteTarget() =>
        Rejects(RomeRecord.Replace("\"English\"", "\"\""), "record [0] (case_id 0)", "'requested_rewrite.target_new.str'", "is empty");

    [Fact]
    public void UnknownShape() =>
        Rejects("""[{"question": "x", "answer": "y"}]""", "record [0]", "unknown shape", "'question'");

    [Theory]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": 5}""", "'target_new'", "got a number")]
    [InlineData("""{"case_id": "3", "prompt": "{} is", "subject": "A", "target_new": "B"}""", "'case_id'", "got a string")]
    [InlineData("""{"prompt": "{} is", "subject": ["A"], "target_new": "B"}""", "'subject'", "got an array")]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": "B", "paraphrase_prompts": ["ok", 3]}""", "'paraphrase_prompts[1]'", "got a number")]
    [InlineData("""{"prompt": "{} is", "subject": "A", "target_new": {"text": "B"}}""", "'target_new.text'", "not a known field")]
    [InlineData("""{"subject": "x", "src": "x?", "alt": "y", "answers": "a"}""", "'answers'", "must be an array")]
    public void WrongJsonTypes(string record, string field, string problem) => Rejects("[" + record + "]", "record [0]", field, problem);

    [Fact]
    public void RecordThatIsNotAnObject() => Rejects("""[42]""", "record [0]", "must be a JSON object");

    [Fact]
    public void MissingRequiredField() =>
        Rejects(RomeRecord.Replace("\"subject\": \"Danielle Darrieux\"", "\"relation\": \"x\""), "record [0] (case_id 0)", "'requested_rewrite.relation'");

    [Fact]
    public void MissingSubjectIsNamed() =>
        Rejects("""[{"prompt": "{} is", "target_new": "B"}]""", "record [0]", "'subject' is missing");

    [Fact]
    public void UnknownFieldSuggestsTheClosestName()
    {
        const string json = """[{"prompt": "{} is", "subject": "A", "target_new": "B", "paraphrase_prompt": ["x"]}]""";
        Rejects(json, "'paraphrase_prompt'", "did you mean 'paraphrase_prompts'");
        var r = Assert.Single(RequestLoader.Parse(json, "reqs.json", new RequestLoadOptions { AllowUnknownFields = true }));
        Assert.Empty(r.ParaphrasePrompts);
    }

    [Fact]
    public void DuplicateKeys() =>
        Rejects("""[{"prompt": "{} is", "subject": "A", "subject": "B", "target_new": "C"}]""", "subject' appears twice");

    [Fact]
    public void MixedFormatsInOneFile() =>
        Rejects($$"""[{{Good}}, {"prompt": "{} is", "subject": "A", "target_new": "B"}]""", "record [1]", "plain", "EasyEdit");

    [Fact]
    public void NeighborhoodStringsNeedATrueTarget() =>
        Rejects("""[{"prompt": "{} is", "subject": "A", "target_new": "B", "neighborhood_prompts": ["C is"]}]""", "'neighborhood_prompts[0]'", "target_true");

    [Fact]
    public void LocalityListsMustPair() =>
        Rejects("""[{"prompt": "A is", "subject": "A", "target_new": "B", "ground_truth": "C", "locality_prompt": ["x", "y"], "locality_ground_truth": "z"}]""",
            "'locality_ground_truth'", "pair");

    [Fact]
    public void LenientParsingSkipsInvalidRecordsButNotEverything()
    {
        const string json = """
            [{"prompt": "{} a", "subject": "A", "target_new": "B"},
             {"prompt": "{} b", "subject": "A", "target_new": ""},
             {"prompt": "{} c", "subject": "A", "target_new": "C"}]
            """;
        var result = RequestLoader.ParseLenient(json, "reqs.json");
        Assert.Equal(new[] { "A a", "A c" }, result.Requests.Select(r => r.Sentence));
        var skip = Assert.Single(result.Skipped);
        Assert.Equal(1, skip.Index);
        Assert.Contains("'target_new' is empty", skip.Reason);
        var none = Assert.Throws<KeditException>(() => RequestLoader.ParseLenient("""[{"prompt": "{} b", "subject": "A", "target_new": ""}]""", "reqs.json"));
        Assert.Contains("none of the 1 records", none.Message);
    }

    [Theory]
    [InlineData("[]", "empty")]
    [InlineData("", "no JSON content")]
    public void NothingToEdit(string json, string fragment) => Rejects(json, fragment);

    [Fact]
    public void BrokenJsonReportsLineAndPosition()
    {
        var e = Rejects("[\n  {\"prompt\": \"{} is\",\n   \"subject\" \"A\"}\n]", "invalid JSON", "line 3");
        Assert.IsAssignableFrom<JsonException>(e.InnerException);
        Rejects("{\"prompt\": \"{} a\", \"subject\": \"A\", \"target_new\": \"B\"}\n{\"prompt\": \"{} b\", \"subject\": \"A\",}\n", "invalid JSON", "line 2");
    }

    [Fact]
    public void JsonLinesRecordsAreLabelledWithTheirLine() =>
        Rejects("{\"prompt\": \"{} a\", \"subject\": \"A\", \"target_new\": \"B\"}\n\n{\"prompt\": \"{} b\", \"subject\": \"A\", \"target_new\": \"\"}\n",
            "record [1] (line 3)", "'target_new'");

    [Fact]
    public void MissingFileAndDirectory()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"kedit-missing-{Guid.NewGuid():N}.json");
        var e = Assert.Throws<KeditException>(() => RequestLoader.Load(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("does not exist", e.Message);
        var d = Assert.Throws<KeditException>(() => RequestLoader.Load(Path.GetTempPath()));
        Assert.Contains("directory", d.Message);
    }
}
