using Kedit.IO.Onnx;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Onnx;

/// <summary>The exported files read back by the project's own ONNX reader: structure, Optimum's layout, metadata, bound weights.</summary>
public sealed class OnnxStructureTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("kedit-onnx-structure-").FullName;
    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("gptj")]
    public void ExportedGraphsAreWellFormedInOptimumsLayout(string fixture)
    {
        using var m = Transformer.Load(TestPaths.Fixture(fixture));
        string path = Path.Combine(dir, $"{fixture}.onnx");
        OnnxExporter.Export(m, path, new OnnxExportOptions { EditedLayers = [1] });
        var info = OnnxReader.Read(path);
        Assert.Empty(OnnxReader.Check(info));
        Assert.Equal(OnnxExporter.Opset, info.Opset);
        Assert.Equal("kedit", info.Producer);
        Assert.Matches("^[0-9a-f]{64}$", info.Metadata["kedit.source_model_sha256"]);

        int L = m.Config.Layers;
        var inputs = info.Inputs.Select(i => i.Name).ToList();
        Assert.Equal(["input_ids", "attention_mask", "position_ids"], inputs.Take(3));
        for (int l = 0; l < L; l++)
        {
            Assert.Contains($"past_key_values.{l}.key", inputs);
            Assert.Contains($"past_key_values.{l}.value", inputs);
            Assert.Contains($"present.{l}.key", info.Outputs.Select(o => o.Name));
        }
        var logits = info.Outputs.Single(o => o.Name == "logits");
        Assert.Equal(1, logits.ElementType);   // float
        Assert.Equal(3, logits.Dims.Count);
        Assert.Equal(m.Config.VocabSize.ToString(), logits.Dims[2]);
        // The edited layer's down projection is an input, bound from the engine's memory; the others are initializers.
        string down1 = m.Config.DownProjName(1), down0 = m.Config.DownProjName(0);
        Assert.Contains(down1, inputs);
        Assert.DoesNotContain(info.Initializers, i => i.Name == down1);
        Assert.Contains(info.Initializers, i => i.Name == down0);
    }

    [Fact]
    public void TheCheckFindsWhatABrokenGraphGetsWrong()
    {
        var ok = new OnnxModelInfo(8, 17, "t", new Dictionary<string, string>(),
            [new OnnxValue("x", 1, ["2"])], [new OnnxValue("y", 1, ["2"])], [new OnnxValue("w", 1, ["2"], RawBytes: 8)],
            [new OnnxNode("Add", "", ["x", "w"], ["y"])]);
        Assert.Empty(OnnxReader.Check(ok));
        var bad = ok with
        {
            Initializers = [new OnnxValue("w", 1, ["3"], RawBytes: 8)],
            Nodes = [new OnnxNode("Plus", "", ["x", "v"], ["y"]), new OnnxNode("Add", "", ["x", "x"], ["y"])],
            Outputs = [new OnnxValue("y", 1, ["2"]), new OnnxValue("z", 1, ["2"])],
        };
        var problems = OnnxReader.Check(bad);
        Assert.Contains("initializer 'w' holds 8 bytes, its dims [3] say 12", problems);
        Assert.Contains("node 0 uses 'Plus', not an ONNX operator", problems);
        Assert.Contains("node 0 (Plus) reads 'v' before anything defines it", problems);
        Assert.Contains("node 1 (Add) output 'y' is defined twice", problems);
        Assert.Contains("graph output 'z' is never produced", problems);
    }

    [Fact]
    public void ATruncatedFileIsRefusedInOneLine()
    {
        using var m = Transformer.Load(TestPaths.Fixture("gpt2"));
        string path = Path.Combine(dir, "t.onnx");
        OnnxExporter.Export(m, path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<KeditException>(() => OnnxReader.Read(path));
        Assert.StartsWith($"{path}: not a well-formed ONNX model", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
