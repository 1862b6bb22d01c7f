using System.Text.Json;
using Kedit.Tokenization;
using Xunit;

namespace Kedit.Tests.Tokenization;

/// <summary>
/// The typed accessors every tokenizer file goes through: what each returns, and the one-line error that names
/// the file, the dotted field and what was found instead.
/// </summary>
public class JsonFieldsTests
{
    static readonly JsonFields F = new("t.json");

    static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    static void Fails(Action read, string message) => Assert.Equal(message, Assert.Throws<KeditException>(read).Message);

    [Fact]
    public void OptionalTreatsAbsentAndNullAlikeAndOnlyReadsObjects()
    {
        var o = Json("""{"a": 1, "n": null}""");
        Assert.Equal(1, JsonFields.Optional(o, "a")!.Value.GetInt32());
        Assert.Null(JsonFields.Optional(o, "n"));
        Assert.Null(JsonFields.Optional(o, "b"));
        Assert.Null(JsonFields.Optional(Json("[1]"), "a"));
        Assert.Null(JsonFields.Optional(Json("\"a\""), "a"));
    }

    [Fact]
    public void RequiredFieldsNameTheirDottedPath()
    {
        var o = Json("""{"o": {}, "a": [], "s": "x", "n": null}""");
        Assert.Equal(JsonValueKind.Object, F.RequireObject(o, "o", "").ValueKind);
        Assert.Equal(JsonValueKind.Array, F.RequireArray(o, "a", "p").ValueKind);
        Assert.Equal("x", F.RequireString(o, "s", "p"));
        Fails(() => F.Require(o, "z", ""), "t.json: field 'z' is missing");
        Fails(() => F.Require(o, "n", "p.q"), "t.json: field 'p.q.n' is missing");
        Fails(() => F.RequireString(o, "z", "p"), "t.json: field 'p.z' is missing");
        Fails(() => F.RequireObject(o, "a", "p"), "t.json: field 'p.a' must be an object, found an array");
        Fails(() => F.RequireObject(o, "z", "p"), "t.json: field 'p.z' is missing");
        Fails(() => F.RequireArray(o, "o", "p"), "t.json: field 'p.o' must be an array, found an object");
        Fails(() => F.RequireArray(o, "s", ""), "t.json: field 's' must be an array, found \"x\"");
        Assert.Equal("a.b", JsonFields.Join("a", "b"));
        Assert.Equal("b", JsonFields.Join("", "b"));
    }

    [Fact]
    public void ScalarsAreCheckedAndWhatWasFoundIsDescribed()
    {
        var o = Json("""{"t": true, "f": false, "i": -7, "x": 1.5, "big": 3000000000, "s": "yes", "long": "0123456789012345678901234567890123456789+", "forty": "0123456789012345678901234567890123456789", "a": [1], "o": {"k": 1}}""");
        Assert.True(F.OptionalBool(o, "t", "p"));
        Assert.False(F.OptionalBool(o, "f", "p"));
        Assert.Null(F.OptionalBool(o, "none", "p"));
        Assert.Equal(-7, F.OptionalInt(o, "i", "p"));
        Assert.Null(F.OptionalInt(o, "none", "p"));
        Assert.Null(F.OptionalString(o, "none", "p"));
        Assert.Equal("yes", F.OptionalString(o, "s", "p"));
        Fails(() => F.OptionalBool(o, "s", "p"), "t.json: field 'p.s' must be true or false, found \"yes\"");
        Fails(() => F.OptionalBool(o, "i", "p"), "t.json: field 'p.i' must be true or false, found -7");
        Fails(() => F.OptionalInt(o, "x", "p"), "t.json: field 'p.x' must be a 32-bit integer, found 1.5");
        Fails(() => F.OptionalInt(o, "big", "p"), "t.json: field 'p.big' must be a 32-bit integer, found 3000000000");
        Fails(() => F.OptionalInt(o, "t", "p"), "t.json: field 'p.t' must be a 32-bit integer, found true");
        Fails(() => F.OptionalInt(o, "f", "p"), "t.json: field 'p.f' must be a 32-bit integer, found false");
        Fails(() => F.OptionalString(o, "a", "p"), "t.json: field 'p.a' must be a string, found an array");
        Fails(() => F.OptionalString(o, "o", "p"), "t.json: field 'p.o' must be a string, found an object");
        // Strings are shown up to 40 characters.
        Fails(() => F.OptionalInt(o, "forty", "p"), "t.json: field 'p.forty' must be a 32-bit integer, found \"0123456789012345678901234567890123456789\"");
        Fails(() => F.OptionalInt(o, "long", "p"), "t.json: field 'p.long' must be a 32-bit integer, found \"0123456789012345678901234567890123456789...\"");
        Assert.Equal("v", F.AsString(Json("\"v\""), "p"));
        Fails(() => F.AsString(Json("null"), "p[0]"), "t.json: field 'p[0]' must be a string, found null");
    }

    [Fact]
    public void TokenIdsAreIntegersFromZeroToTheLimit()
    {
        Assert.Equal(0, F.AsTokenId(Json("0"), "id"));
        Assert.Equal(JsonFields.MaxTokenId, F.AsTokenId(Json(JsonFields.MaxTokenId.ToString()), "id"));
        Fails(() => F.AsTokenId(Json("-1"), "id"), "t.json: field 'id' must be a token id in 0..4194303, found -1");
        Fails(() => F.AsTokenId(Json("4194304"), "id"), "t.json: field 'id' must be a token id in 0..4194303, found 4194304");
        Fails(() => F.AsTokenId(Json("\"3\""), "id"), "t.json: field 'id' must be a 32-bit integer, found \"3\"");
    }

    [Theory]
    [InlineData("▁", true)]
    [InlineData("😀", true)]        // one character outside the BMP: a surrogate pair
    [InlineData("ab", false)]
    [InlineData("", false)]
    [InlineData("a😀", false)]
    [InlineData("\uD83D\uD83D", false)] // two high surrogates: two (broken) characters
    [InlineData("a\uDE00", false)]
    public void SingleCharactersMayBeSurrogatePairs(string value, bool ok)
    {
        var o = Json(JsonSerializer.Serialize(new Dictionary<string, string> { ["c"] = value }));
        if (ok) Assert.Equal(value, F.RequireSingleChar(o, "c", "p"));
        else Assert.Contains("t.json: field 'p.c' must be one character, found \"", Assert.Throws<KeditException>(() => F.RequireSingleChar(o, "c", "p")).Message);
    }

    [Fact]
    public void ParseFileNamesAMissingOrBrokenFile()
    {
        string dir = Directory.CreateTempSubdirectory("kedit-jsonfields-").FullName;
        try
        {
            string path = Path.Combine(dir, "x.json");
            Assert.Contains(path, Assert.Throws<KeditException>(() => JsonFields.ParseFile(path)).Message);
            File.WriteAllText(path, "{\"a\": ");
            Assert.Contains(path, Assert.Throws<KeditException>(() => JsonFields.ParseFile(path)).Message);
            File.WriteAllText(path, "{\"a\": 2}");
            using var doc = JsonFields.ParseFile(path);
            Assert.Equal(2, doc.RootElement.GetProperty("a").GetInt32());
        }
        finally { Directory.Delete(dir, true); }
    }
}
