using System.Text.Json;
using Kedit.Editing.Inputs;
using Xunit;

namespace Kedit.Tests.Editing.Inputs;

public class ContextTemplatesTests
{
    [Theory]
    [InlineData("{}", "P", "P")]
    [InlineData("Yes!\n{}", "The home of{}", "Yes!\nThe home of{}")]
    [InlineData("a {0} {} {x}", "{y}", "a {0} {y} {x}")]
    [InlineData("{{}", "P", "{P")]
    [InlineData("x. {}", "", "x. ")]
    public void FillIsLiteralSingleSubstitution(string template, string value, string expected) =>
        Assert.Equal(expected, ContextTemplates.Fill(template, value));

    [Theory]
    [InlineData("no slot", 0)]
    [InlineData("{}{}", 2)]
    [InlineData("{ }", 0)]
    public void FillRejectsTemplatesWithoutExactlyOneSlot(string template, int slots)
    {
        Assert.Equal(slots, ContextTemplates.CountSlots(template));
        Assert.Contains($"found {slots}", Assert.Throws<KeditException>(() => ContextTemplates.Fill(template, "P")).Message);
    }

    [Fact]
    public void FixtureTemplatesParseWithTheirGroupStructure()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("gpt2", "edit_inputs.json")));
        var root = doc.RootElement;
        var memit = ContextTemplates.FromJson(root.GetProperty("memit_context_templates").GetProperty("text"));
        var rome = ContextTemplates.FromJson(root.GetProperty("rome_context_templates").GetProperty("text"));
        Assert.Equal(new[] { 1, 5 }, memit.Groups.Select(g => g.Count));
        Assert.True(memit.StartsWithBare);
        Assert.Equal(6, Assert.Single(rome.Groups).Count);
        Assert.Equal(memit.All, rome.All);
        // The id lists mirror the text: one token prefix per template, empty for "{}".
        var ids = root.GetProperty("memit_context_templates").GetProperty("ids");
        Assert.Equal(memit.Groups.Select(g => g.Count), ids.EnumerateArray().Select(g => g.GetArrayLength()));

        // The fixture requests in canonical form, put into each context as the README's text front end does.
        foreach (var req in root.GetProperty("requests").EnumerateArray())
        {
            var text = req.GetProperty("text");
            var r = new EditRequest(text.GetProperty("prompt").GetString()!, text.GetProperty("subject").GetString()!, text.GetProperty("target").GetString()!);
            Assert.Equal(r.NormalisedTargetNew, r.TargetNew); // fixture targets already carry their space
            foreach (string t in memit.All)
            {
                string pre = t[..t.IndexOf("{}", StringComparison.Ordinal)];
                Assert.Equal(pre + r.PromptPrefix + r.Subject + r.PromptSuffix, r.InContext(t));
            }
        }
        var kl = ContextTemplates.Flat(root.GetProperty("kl_templates").GetProperty("text").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal("Paris is a", new EditRequest("{} is located in", "Paris", "Rome").FillSubject(kl.All.Single()));
    }

    [Fact]
    public void TestDefaultsFollowTheSpec()
    {
        Assert.Equal(new[] { 1, 5 }, ContextTemplates.TestDefaultMemit.Groups.Select(g => g.Count));
        Assert.Equal(6, ContextTemplates.TestDefaultRome.Count);
        Assert.Single(ContextTemplates.TestDefaultRome.Groups);
        Assert.Equal("{}", Assert.Single(Assert.Single(ContextTemplates.Bare.Groups)));
    }

    [Theory]
    [InlineData("""[["{}"], ["a. {}", "b. {}"]]""", 2, 3)]
    [InlineData("""["{}", "a. {}"]""", 1, 2)]
    public void JsonRoundTrip(string json, int groups, int count)
    {
        var t = ContextTemplates.Parse(json, "t.json");
        Assert.Equal(groups, t.Groups.Count);
        Assert.Equal(count, t.Count);
        var again = ContextTemplates.Parse(t.ToJson());
        Assert.Equal(t.Groups.Select(g => g.ToArray()), again.Groups.Select(g => g.ToArray()));
    }

    [Theory]
    [InlineData("[]", "empty")]
    [InlineData("""[["{}"], []]""", "group 1 is empty")]
    [InlineData("""[["{}"], ["a {} b {}"]]""", "[1][0]")]
    [InlineData("""["{}", ["a. {}"]]""", "not a mix")]
    [InlineData("""{"g": ["{}"]}""", "got an object")]
    [InlineData("""[["{}", 3]]""", "context_templates[0][1]")]
    public void InvalidStructuresAreRejected(string json, string fragment)
    {
        var e = Assert.Throws<KeditException>(() => ContextTemplates.Parse(json, "t.json"));
        Assert.Contains("t.json", e.Message);
        Assert.Contains(fragment, e.Message);
    }

    [Fact]
    public void TheConstructorNamesEachRefusal()
    {
        Assert.Equal("groups", Assert.Throws<ArgumentNullException>(() => new ContextTemplates(null!)).ParamName);
        Assert.Equal("src: a group is null",
            Assert.Throws<KeditException>(() => new ContextTemplates(new[] { new[] { "{}" }, null! }, "src")).Message);
        Assert.Equal("src: no template groups; give at least [[\"{}\"]]",
            Assert.Throws<KeditException>(() => new ContextTemplates(Array.Empty<string[]>(), "src")).Message);
        Assert.Equal("src: template [1][0] is null",
            Assert.Throws<KeditException>(() => new ContextTemplates(new[] { new[] { "{}" }, new string[] { null! } }, "src")).Message);
        Assert.Equal("template", Assert.Throws<ArgumentNullException>(() => ContextTemplates.Fill(null!, "P")).ParamName);
        Assert.Equal("value", Assert.Throws<ArgumentNullException>(() => ContextTemplates.Fill("{}", null!)).ParamName);
        Assert.Equal("text", Assert.Throws<ArgumentNullException>(() => ContextTemplates.CountSlots(null!)).ParamName);
    }

    [Theory]
    [InlineData("""[["{}"], ["a. {}"]]""", true)]
    [InlineData("""[["a. {}"], ["{}"]]""", false)]        // one template, not the bare one
    [InlineData("""[["{}", "a. {}"]]""", false)]          // the bare one, not alone
    [InlineData("""["{}"]""", true)]
    public void StartsWithBareMeansTheFirstGroupIsExactlyTheSlot(string json, bool bare) =>
        Assert.Equal(bare, ContextTemplates.Parse(json).StartsWithBare);

    [Fact]
    public void JsonErrorsNameTheGroupAndTheKindsMixed()
    {
        Assert.Contains("field 'context_templates[1][1]'",
            Assert.Throws<KeditException>(() => ContextTemplates.Parse("""[["{}"], ["a {}", 3]]""", "t.json")).Message);
        Assert.EndsWith("not a mix of array and string",
            Assert.Throws<KeditException>(() => ContextTemplates.Parse("""[["{}"], "a {}"]""", "t.json")).Message);
        Assert.EndsWith("not a mix of string and number and null",
            Assert.Throws<KeditException>(() => ContextTemplates.Parse("""["{}", 3, null]""", "t.json")).Message);
        Assert.Equal("2 group(s), 3 template(s)", ContextTemplates.Parse("""[["{}"], ["a. {}", "b. {}"]]""").ToString());
    }
}
