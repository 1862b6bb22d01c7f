using System.Text.Json.Nodes;
using Kedit.Api;
using Kedit.Editing.Inputs;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Models;

/// <summary>
/// A BF16 (or F16) checkpoint stays 16-bit in memory, widened in the matrix products: its resident weights are at most
/// 1.1× its file, and its logits and edits are those of the same weights converted to F32 up front (an F32 copy of the
/// fixture written by the test); an edit promotes only the matrix it lands on.
/// </summary>
public sealed class ResidentWeightsTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-resident-").FullName;
    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }

    /// <summary>The fixture with every tensor widened to F32 and written as F32 (what loading used to do).</summary>
    string F32Copy(string fixture)
    {
        string src = TestPaths.Fixture(fixture), dst = Path.Combine(_tmp, fixture + "_as_f32");
        Directory.CreateDirectory(dst);
        foreach (var f in Directory.GetFiles(src)) if (!f.EndsWith(".safetensors")) File.Copy(f, Path.Combine(dst, Path.GetFileName(f)));
        using (var store = TensorStore.OpenDirectory(src))
            SafetensorsWriter.Write(Path.Combine(dst, TensorStore.SingleFileName),
                store.All.Select(t => SafetensorsWriter.Entry.F32(t.Name, t.Shape, store.ReadFloat32(t.Name))).ToList());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dst, "config.json")))!;
        config["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(dst, "config.json"), config.ToJsonString());
        return dst;
    }

    static double RelL2(float[] a, float[] b)
    {
        double num = 0, den = 0;
        for (int i = 0; i < a.Length; i++) { num += (double)(a[i] - b[i]) * (a[i] - b[i]); den += (double)b[i] * b[i]; }
        return Math.Sqrt(num / den);
    }

    [Theory]
    [InlineData("gpt2_bf16")]
    [InlineData("gpt2_f16")]
    public void SixteenBitCheckpointStaysSixteenBitWithTheF32PathsLogits(string fixture)
    {
        string f32Dir = F32Copy(fixture);
        using var half = Transformer.Load(TestPaths.Fixture(fixture));
        using var full = Transformer.Load(f32Dir);
        long file = new FileInfo(TestPaths.Fixture(fixture, TensorStore.SingleFileName)).Length;
        Assert.All(half.Weights.Matrices(), m => Assert.NotNull(m.Half));
        Assert.InRange(half.Weights.ResidentBytes, 1, (long)(1.1 * file));
        Assert.Equal(full.Weights.ParameterCount * 4, full.Weights.ResidentBytes);
        Assert.Contains("held 16-bit as stored", half.Weights.MemoryReport());
        Assert.Contains("held as F32 as stored", full.Weights.MemoryReport());

        using var gold = SafetensorsFile.Open(TestPaths.Fixture(fixture, "golden_forward.safetensors"));
        for (int s = 0; gold.TryGetInfo($"seq{s}.ids", out _); s++)
        {
            var ids = gold.ReadInt64($"seq{s}.ids").Select(i => (int)i).ToArray();
            var a = half.Forward(TokenBatch.Single(ids)).Logits;
            var b = full.Forward(TokenBatch.Single(ids)).Logits;
            Assert.True(RelL2(a, b) <= 1e-5, $"{fixture} seq{s}: logits relative L2 {RelL2(a, b):E2} from the F32 path");
        }
        // Forwards read the 16-bit matrices without promoting them.
        Assert.All(half.Weights.Matrices(), m => Assert.NotNull(m.Half));
    }

    [Fact]
    public void EditsOnBf16EqualTheF32PathsEditsAndPromoteOnlyTheEditedMatrix()
    {
        string f32Dir = F32Copy("gpt2_bf16");
        var hp = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("gpt2", "hparams.json")))!["rome"]!.AsObject();
        hp["mom2_adjustment"] = false;
        hp["v_num_grad_steps"] = 5;
        hp["context_templates"] = new JsonArray(new JsonArray("{}"));
        int layer = hp["layers"]!.AsArray().Single()!.GetValue<int>();
        var edited = new Dictionary<string, float[]>();
        foreach (var (name, dir) in new[] { ("bf16", TestPaths.Fixture("gpt2_bf16")), ("f32", f32Dir) })
        {
            using var editor = KnowledgeEditor.Load(dir, new EditorOptions { Method = EditMethod.Rome, HParamsJson = hp.ToJsonString() });
            long before = editor.Memory().ModelWeights;
            var original = (float[])editor.Model.Weights.Layers[layer].MlpOut.Matrix.Clone().F32;
            editor.ApplyEdits([new EditRequest("The home of{}", " Tom", " Oslo")]);
            var w = editor.Model.Weights;
            edited[name] = w.Layers[layer].MlpOut.Weight;
            Assert.True(RelL2(edited[name], original) > 1e-4, $"{name}: the edit changed nothing");
            if (name == "bf16")
            {
                // The edited matrix is float32 now, every other one still 16-bit.
                var matrices = w.Matrices().ToList();
                Assert.Null(w.Layers[layer].MlpOut.Matrix.Half);
                Assert.Equal(matrices.Count - 1, matrices.Count(m => m.Half != null));
                Assert.Equal(before + 2L * w.Layers[layer].MlpOut.Matrix.Length, editor.Memory().ModelWeights);
            }
        }
        Assert.True(RelL2(edited["bf16"], edited["f32"]) <= 1e-5, $"edited weights differ from the F32 path's by {RelL2(edited["bf16"], edited["f32"]):E2}");
    }
}
