using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// The post-processors: which ids go before and after the encoded text (HF's single-sequence template,
/// RoBERTa/BERT cls and sep, a Sequence wrapping outward), and the errors naming each field.
/// </summary>
public class PostProcessorTests
{
    const string Model = """{"type": "BPE", "vocab": {"<s>": 0, "</s>": 1, "a": 2, "b": 3, "ab": 4}, "merges": ["a b"]}""";
    const string Template = """{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}, "</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}""";

    static Tokenizer Load(string postProcessor)
    {
        string dir = Directory.CreateTempSubdirectory("kedit-post-").FullName;
        try
        {
            string path = Path.Combine(dir, "tokenizer.json");
            File.WriteAllText(path, $$"""{"model": {{Model}}, "post_processor": {{postProcessor}}}""");
            return Tokenizer.FromTokenizerJson(path);
        }
        finally { Directory.Delete(dir, true); }
    }

    static void Fails(string postProcessor, string field, string detail)
    {
        var e = Assert.Throws<KeditException>(() => Load(postProcessor));
        Assert.Contains($"tokenizer.json: field '{field}'", e.Message);
        Assert.Contains(detail, e.Message);
    }

    [Theory]
    [InlineData("RobertaProcessing")]
    [InlineData("BertProcessing")]
    public void ClsAndSepWrapTheText(string type)
    {
        var tok = Load($$"""{"type": "{{type}}", "cls": ["<s>", 0], "sep": ["</s>", 1]}""");
        Assert.Equal(new[] { 0, 4, 2, 1 }, tok.Encode("aba"));
        Assert.Equal(new[] { 4, 2 }, tok.Encode("aba", addSpecialTokens: false));
        Assert.Equal(new[] { 0 }, tok.PrefixIds);
        Assert.Equal(new[] { 1 }, tok.SuffixIds);
    }

    [Fact]
    public void TemplateIdsBeforeAndAfterTheSequence()
    {
        var tok = Load(Template);
        Assert.Equal(new[] { 0, 4, 1 }, tok.Encode("ab"));
        Assert.Equal(new[] { 4 }, tok.Encode("ab", addSpecialTokens: false));
        // Only a prefix, and two ids for one special token.
        tok = Load("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "x"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"x": {"ids": [1, 0]}}}""");
        Assert.Equal(new[] { 1, 0, 2 }, tok.Encode("a"));
        Assert.Empty(tok.SuffixIds);
    }

    [Fact]
    public void ByteLevelAddsNothingAndASequenceWrapsOutward()
    {
        Assert.Equal(new[] { 2 }, Load("""{"type": "ByteLevel", "trim_offsets": false}""").Encode("a"));
        // The second processor wraps the first's output: its cls goes first, its sep last.
        var tok = Load($$"""{"type": "Sequence", "processors": [{{Template}}, {"type": "RobertaProcessing", "cls": ["</s>", 1], "sep": ["<s>", 0]}, {"type": "ByteLevel"}]}""");
        Assert.Equal(new[] { 1, 0 }, tok.PrefixIds);
        Assert.Equal(new[] { 1, 0 }, tok.SuffixIds);
        Assert.Equal(new[] { 1, 0, 2, 1, 0 }, tok.Encode("a"));
    }

    [Fact]
    public void BadPostProcessorsAreNamed()
    {
        Fails("""{"type": "RobertaProcessing", "cls": ["<s>", 0, 1], "sep": ["</s>", 1]}""", "post_processor.cls", "must be [token, id]");
        Fails("""{"type": "BertProcessing", "cls": ["<s>", 0], "sep": ["</s>"]}""", "post_processor.sep", "must be [token, id]");
        Fails("""{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "B"}}], "special_tokens": {}}""", "post_processor.single[0].Sequence.id", "must be \"A\" once in a single-sequence template, found \"B\"");
        Fails("""{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}""", "post_processor.single[1].Sequence.id", "found \"A\"");
        Fails("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}], "special_tokens": {"<s>": {"ids": [0]}}}""", "post_processor.single", "has no {\"Sequence\": {\"id\": \"A\"}} item");
        Fails("""{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"Other": {}}], "special_tokens": {}}""", "post_processor.single[1]", "must hold \"Sequence\" or \"SpecialToken\"");
        Fails("""{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"ids": [0, "x"]}}}""", "post_processor.special_tokens[\"<s>\"].ids[1]", "");
        Fails("""{"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "Nope"}]}""", "post_processor.processors[1].type", "unsupported post-processor type \"Nope\"");
        Fails("""[]""", "post_processor", "must be an object");
    }
}
