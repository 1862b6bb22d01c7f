using Kedit.Editing.Inputs;
using Xunit;

namespace Kedit.Tests.Editing.Inputs;

public class EditRequestTests
{
    [Theory]
    [InlineData("English", " English")]
    [InlineData(" English", " English")]
    [InlineData("  two", "  two")]
    [InlineData("\tTab", " \tTab")]
    public void NormalisedTargetAddsExactlyOneLeadingSpace(string target, string expected) =>
        Assert.Equal(expected, EditRequest.NormalisedTarget(target));

    [Fact]
    public void ConstructorValidates()
    {
        Assert.Contains("exactly one", Assert.Throws<KeditException>(() => new EditRequest("no slot", "A", "B")).Message);
        Assert.Contains("found 2", Assert.Throws<KeditException>(() => new EditRequest("{}{}", "A", "B")).Message);
        Assert.Contains("subject", Assert.Throws<KeditException>(() => new EditRequest("{} is", " ", "B", caseId: 4)).Message);
        Assert.Contains("case_id 4", Assert.Throws<KeditException>(() => new EditRequest("{} is", " ", "B", caseId: 4)).Message);
        Assert.Contains("target_new", Assert.Throws<KeditException>(() => new EditRequest("{} is", "A", "")).Message);
        Assert.Contains("target_true", Assert.Throws<KeditException>(() => new EditRequest("{} is", "A", "B", "")).Message);
        Assert.Throws<KeditException>(() => new EditRequest("{} is", "A", "B", localityPrompt: "nq question: x"));
    }

    [Fact]
    public void TemplateFromSentenceReplacesTheSingleOccurrence()
    {
        Assert.Equal("The mother tongue of {} is", EditRequest.TemplateFromSentence("The mother tongue of Danielle Darrieux is", "Danielle Darrieux"));
        Assert.Equal("{}, by", EditRequest.TemplateFromSentence("BBC One, by", "BBC One"));
        Assert.Contains("more than once", Assert.Throws<KeditException>(() => EditRequest.TemplateFromSentence("Paris or Paris", "Paris")).Message);
        Assert.Contains("does not occur", Assert.Throws<KeditException>(() => EditRequest.TemplateFromSentence("Lyon", "Paris")).Message);
    }

    [Fact]
    public void InContextBuildsTauOfPromptOfSubject()
    {
        var r = new EditRequest("The home of{}", " Tom", "Oslo");
        Assert.Equal("Yes!\nThe home of Tom", r.InContext("Yes!\n{}"));
        Assert.Equal("The home of Tom", r.InContext("{}"));
        Assert.Equal("The home of", r.PromptPrefix);
        Assert.Equal("", r.PromptSuffix);
    }
}
