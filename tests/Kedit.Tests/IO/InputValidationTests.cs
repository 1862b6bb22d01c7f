using System.Text.Json.Nodes;
using Kedit.IO;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Xunit;

namespace Kedit.Tests.IO;

/// <summary>
/// The hostile inputs of issue #13, one by one, through the CLI entry point: each must end as exit
/// 1 or 2 with one line naming the file and field (the fuzz harness covers their neighbourhoods).
/// </summary>
public sealed class InputValidationTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-input-").FullName;
    static string Data(string f) => Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", f);

    static (int Code, string Err) Kedit(params string[] args)
    {
        var e = new StringWriter();
        int code = Cli.Cli.Run(args, TextWriter.Null, e);
        return (code, e.ToString().TrimEnd());
    }

    static void Refused((int Code, string Err) r, int code, params string[] named)
    {
        Assert.True(r.Code == code, $"exit {r.Code}, expected {code}: {r.Err}");
        Assert.DoesNotContain('\n', r.Err);
        foreach (var n in named) Assert.Contains(n, r.Err);
    }

    /// <summary>A copy of the gpt2 fixture with <paramref name="change"/> applied to it.</summary>
    string Model(Action<string>? change = null)
    {
        string dir = Path.Combine(_tmp, "model-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt" })
            File.Copy(Path.Combine(TestPaths.Fixture("gpt2"), f), Path.Combine(dir, f));
        change?.Invoke(dir);
        return dir;
    }

    [Theory]
    [InlineData("""{"a": [1, {"b": "x\ud800y"}]}""", "field 'a[1].b'", "lone UTF-16 surrogate")]
    [InlineData("""{"a": 1, "a": 2}""", "field 'a'", "appears twice")]
    [InlineData("""{"a": {"b": 1e999}}""", "field 'a.b'", "beyond the range of a double")]
    [InlineData("""[1, 2""", "invalid JSON at line 1")]
    [InlineData("""{"a\nb": 1, "a\nb": 2}""", "field 'a\\u000ab'", "appears twice")]
    public void StrictJsonNamesTheField(string json, params string[] named)
    {
        var e = Assert.Throws<KeditException>(() => StrictJson.Parse(json, "input.json").Dispose());
        Assert.StartsWith("input.json: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (var n in named) Assert.Contains(n, e.Message);
    }

    [Fact]
    public void AnUnknownKeyWithAnEscapedControlCharacterIsNamedOnOneLine()
    {
        // A fuzzed hparams file: a backslash inserted into "clamp_norm_factor" made the key "clamp_<newline>orm_factor".
        var e = Assert.Throws<KeditException>(() => HParams.Parse("""{"layers": [1], "clamp_\norm_factor": 4}""", EditMethod.Rome, "hparams.json"));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains("field 'clamp_\\u000aorm_factor'", e.Message);
    }

    [Fact]
    public void InvalidUtf8IsRefusedNamingTheField()
    {
        byte[] bytes = [.. "{\"tok\": \""u8, 0xC3, 0x28, .. "\"}"u8];
        var e = Assert.Throws<KeditException>(() => StrictJson.Parse(bytes, "vocab.json").Dispose());
        Assert.Contains("field 'tok'", e.Message);
        Assert.Contains("not valid UTF-8", e.Message);
    }

    [Fact]
    public void TokenizerFilesCannotClaimHugeIds()
    {
        string dir = Model(d =>
        {
            var t = JsonNode.Parse(File.ReadAllText(Path.Combine(d, "tokenizer.json")))!;
            t["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = 1 << 30, ["content"] = "<big>", ["special"] = true });
            File.WriteAllText(Path.Combine(d, "tokenizer.json"), t.ToJsonString());
        });
        Refused(Kedit("tokenize", "--tokenizer", dir, "--text", "hi"), 1, "tokenizer.json", "added_tokens[", ".id", "4194303");
    }

    [Fact]
    public void CatastrophicRegexesTimeOutAndAreRefused()
    {
        string dir = Model(d =>
        {
            var t = JsonNode.Parse(File.ReadAllText(Path.Combine(d, "tokenizer.json")))!;
            t["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = "(a+)+$" }, ["behavior"] = "Isolated", ["invert"] = false,
            };
            File.WriteAllText(Path.Combine(d, "tokenizer.json"), t.ToJsonString());
        });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Refused(Kedit("tokenize", "--tokenizer", dir, "--text", new string('a', 40) + "!"), 1, "tokenizer.json", "pre_tokenizer.pattern.Regex", "match timeout");
        Assert.True(sw.Elapsed.TotalSeconds < 60, "the timeout did not stop the match");
    }

    [Theory]
    [InlineData("NaN", "1", "temperature")]
    [InlineData("Infinity", "1", "temperature")]
    [InlineData("-1", "1", "temperature")]
    [InlineData("1", "-3", "top-k")]
    public void GenerationNumbersMustBeSane(string temperature, string topK, string named)
    {
        var r = Kedit("generate", "--model", TestPaths.Fixture("gpt2"), "--prompt", "hello", "--max-new-tokens", "2", "--temperature", temperature, "--top-k", topK);
        Assert.True(r.Code is 1 or 2, r.Err);
        Assert.DoesNotContain('\n', r.Err);
        Assert.Contains(named, r.Err);
    }

    [Theory]
    [InlineData("99999")]
    [InlineData("1,-5")]
    [InlineData("")]
    public void DecodeRefusesIdsOutsideTheVocabulary(string ids) =>
        Refused(Kedit("tokenize", "--tokenizer", TestPaths.Fixture("gpt2"), "--decode", ids), 2, "--decode");

    [Fact]
    public void StatsLayersMustListSomething() =>
        Refused(Kedit("stats", "--model", TestPaths.Fixture("gpt2"), "--layers", "", "--corpus", Data("corpus.jsonl"), "--out", Path.Combine(_tmp, "s.safetensors")), 2, "--layers");

    [Fact]
    public void StatisticsShapesAreCheckedBeforeAnythingIsAllocated()
    {
        // A well-formed file declaring a [40000, 40000] F64 tensor (12.8 GB, sparse on disk): refused
        // from its header, against the model's MLP width (256), before anything is read or allocated.
        string stats = Path.Combine(_tmp, "huge.safetensors");
        const long big = 40000L * 40000 * 8;
        byte[] header = System.Text.Encoding.UTF8.GetBytes(
            $$$"""{"count.1":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"mom2.1":{"dtype":"F64","shape":[40000,40000],"data_offsets":[8,{{{8 + big}}}]}}""");
        using (var fs = File.Create(stats))
        {
            fs.Write(BitConverter.GetBytes((long)header.Length));
            fs.Write(header);
            fs.Write(BitConverter.GetBytes(10L));
            fs.SetLength(8 + header.Length + 8 + big);
        }
        long before = GC.GetAllocatedBytesForCurrentThread();
        var r = Kedit("edit", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"),
            "--stats", stats, "--out", Path.Combine(_tmp, "out"));
        Assert.True(r.Code == 1, r.Err);
        Assert.Contains("huge.safetensors", r.Err);
        Assert.Contains("[256,256]", r.Err);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1L << 30, "the refusal allocated gigabytes");
    }

    [Fact]
    public void RollbackRefusesATransposedOriginal()
    {
        string stats = Path.Combine(_tmp, "stats.safetensors"), edited = Path.Combine(_tmp, "edited"), model = Model();
        Assert.Equal(0, Kedit("stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats).Code);
        var h = JsonNode.Parse(File.ReadAllText(Data("memit.json")))!.AsObject();
        h["v_num_grad_steps"] = 2;
        string hp = Path.Combine(_tmp, "memit.json");
        File.WriteAllText(hp, h.ToJsonString());
        Assert.Equal(0, Kedit("edit", "--model", model, "--method", "memit", "--hparams", hp, "--requests", Data("requests.json"), "--stats", stats, "--out", edited).Code);
        string orig = Path.Combine(edited, "original.safetensors");
        List<SafetensorsWriter.Entry> entries;
        using (var f = SafetensorsFile.Open(orig))
            entries = f.Tensors.Select(t => new SafetensorsWriter.Entry(t.Name, t.DType, new[] { t.Shape[1], t.Shape[0] }, f.GetBytes(t.Name).ToArray())).ToList();
        SafetensorsWriter.Write(orig, entries);
        string back = Path.Combine(_tmp, "back");
        Refused(Kedit("rollback", "--journal", edited, "--out", back), 1, "original.safetensors", "shape");
        Assert.False(Directory.Exists(back));
        Assert.Empty(Directory.GetFileSystemEntries(_tmp, ".back.kedit-*"));
    }

    [Fact]
    public void AJournalWithAWrongTypeNamesTheField()
    {
        string dir = Path.Combine(_tmp, "j");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "journal.json"), """{"tool": "kedit", "version": 1, "method": "memit", "layers": "1,2", "edited_tensors": [], "steps": []}""");
        File.WriteAllText(Path.Combine(dir, "original.safetensors"), "");
        Refused(Kedit("rollback", "--journal", dir, "--out", Path.Combine(_tmp, "r")), 1, "journal.json", "'layers'");
    }

    [Fact]
    public void HParamsThatWouldOverflowAreRefusedUpFront()
    {
        var h = JsonNode.Parse(File.ReadAllText(Data("memit.json")))!.AsObject();
        h["mom2_update_weight"] = 1e300;
        string hp = Path.Combine(_tmp, "memit.json");
        File.WriteAllText(hp, h.ToJsonString());
        Refused(Kedit("edit", "--model", TestPaths.Fixture("gpt2"), "--method", "memit", "--hparams", hp, "--requests", Data("requests.json"),
            "--stats", Path.Combine(_tmp, "none.safetensors"), "--out", Path.Combine(_tmp, "out")), 1, "memit.json", "mom2_update_weight", "at most");
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
