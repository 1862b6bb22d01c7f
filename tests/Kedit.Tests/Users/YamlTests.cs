using System.Text.Json.Nodes;
using Kedit.IO;
using Xunit;

namespace Kedit.Tests.Users;

/// <summary>The YAML reader against the shapes configuration files use, and the refusals it promises.</summary>
public class YamlTests
{
    static JsonNode? Parse(string text) => Yaml.Parse(text, "test.yaml");

    static string Fail(string text) => Assert.Throws<KeditException>(() => Parse(text)).Message;

    [Fact]
    public void ScalarsResolveByTheCoreSchema()
    {
        var o = Parse("""
            a: 12
            b: -3
            c: 5e-1
            d: 0.75
            e: true
            f: False
            g: ~
            h: null
            i: "12"
            j: 'it''s'
            k: plain words here
            l: 0x1F
            m: .inf
            n: 1e400
            """)!.AsObject();
        Assert.Equal(12L, o["a"]!.GetValue<long>());
        Assert.Equal(-3L, o["b"]!.GetValue<long>());
        Assert.Equal(0.5, o["c"]!.GetValue<double>());
        Assert.Equal(0.75, o["d"]!.GetValue<double>());
        Assert.True(o["e"]!.GetValue<bool>());
        Assert.False(o["f"]!.GetValue<bool>());
        Assert.Null(o["g"]);
        Assert.True(o.ContainsKey("h") && o["h"] == null);
        Assert.Equal("12", o["i"]!.GetValue<string>());
        Assert.Equal("it's", o["j"]!.GetValue<string>());
        Assert.Equal("plain words here", o["k"]!.GetValue<string>());
        Assert.Equal(31L, o["l"]!.GetValue<long>());
        Assert.Equal(".inf", o["m"]!.GetValue<string>());     // no JSON form: stays text, a numeric field then refuses it
        Assert.Equal("1e400", o["n"]!.GetValue<string>());    // overflows float64 the same way
    }

    [Fact]
    public void CommentsAreDroppedButNotInsideQuotes()
    {
        var o = Parse("""
            # a heading comment
            model_name: "./hugging_cache/gpt2-xl"   # trailing comment
            tag: "a # inside quotes"
            url: http://x/#anchor
            """)!.AsObject();
        Assert.Equal(3, o.Count);
        Assert.Equal("./hugging_cache/gpt2-xl", o["model_name"]!.GetValue<string>());
        Assert.Equal("a # inside quotes", o["tag"]!.GetValue<string>());
        Assert.Equal("http://x/#anchor", o["url"]!.GetValue<string>());
    }

    [Fact]
    public void FlowAndBlockSequencesAndNestedMappings()
    {
        var o = Parse("""
            ---
            layers: [13, 14, 15, 16, 17]
            pairs: [[5, 10],
                    [10, 10]]
            block:
              - 1
              - two
              - [3, 4]
            same_indent:
            - a
            - b
            items:
              - prompt: "p1"
                answer: a1
              - prompt: p2
                answer: [x, "y"]
            nested:
              inner:
                deep: 1
              flow: {k: v, n: 2}
            """)!.AsObject();
        Assert.Equal("[13,14,15,16,17]", o["layers"]!.ToJsonString());
        Assert.Equal("[[5,10],[10,10]]", o["pairs"]!.ToJsonString());
        Assert.Equal("[1,\"two\",[3,4]]", o["block"]!.ToJsonString());
        Assert.Equal("[\"a\",\"b\"]", o["same_indent"]!.ToJsonString());
        Assert.Equal("[{\"prompt\":\"p1\",\"answer\":\"a1\"},{\"prompt\":\"p2\",\"answer\":[\"x\",\"y\"]}]", o["items"]!.ToJsonString());
        Assert.Equal("{\"inner\":{\"deep\":1},\"flow\":{\"k\":\"v\",\"n\":2}}", o["nested"]!.ToJsonString());
    }

    [Fact]
    public void BlockScalarsKeepOrFoldLines()
    {
        var o = Parse("""
            lit: |
              line one
              line two
            folded: >-
              joined
              words
            after: 1
            """)!.AsObject();
        Assert.Equal("line one\nline two\n", o["lit"]!.GetValue<string>());
        Assert.Equal("joined words", o["folded"]!.GetValue<string>());
        Assert.Equal(1L, o["after"]!.GetValue<long>());
    }

    [Fact]
    public void DoubleQuotedEscapes()
    {
        var o = Parse("s: \"a\\tb\\n\\u00e9\\\"\"")!.AsObject();
        Assert.Equal("a\tb\né\"", o["s"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("a: 1\na: 2", "line 2: key 'a' appears twice")]
    [InlineData("a: &x 1\nb: *x", "line 1: YAML anchors and aliases")]
    [InlineData("a: !!str 1", "line 1: YAML tags")]
    [InlineData("a:\n\t- 1", "line 2: a tab in the indentation")]
    [InlineData("a: [1, 2", "line 1: a flow collection ([ or {) that is never closed")]
    [InlineData("a: \"open", "line 1: a double-quoted string is never closed")]
    [InlineData("a: 1\n---\nb: 2", "line 2: a second YAML document")]
    [InlineData("a: 1\n  b: 2", "line 2:")]
    [InlineData("a: \"x\\q\"", "line 1: unknown escape \\q")]
    [InlineData("- 1\nb: 2", "line 2:")]
    public void MalformedOrUnsupportedYamlNamesTheFileAndLine(string text, string expected)
    {
        string m = Fail(text);
        Assert.StartsWith("test.yaml: line ", m);
        Assert.Contains(expected, m);
        Assert.DoesNotContain('\n', m);
    }

    [Fact]
    public void EmptyDocumentIsNull() => Assert.Null(Parse("# only a comment\n\n"));
}
