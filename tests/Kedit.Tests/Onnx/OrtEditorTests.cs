using Kedit.Api;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Kedit.Tests.Api;
using Xunit;

namespace Kedit.Tests.Onnx;

/// <summary>A KnowledgeEditor serving through ONNX Runtime: edits published by rebinding, rollback to the original binding.</summary>
public sealed class OrtEditorTests(ApiFixture fx) : IClassFixture<ApiFixture>
{
    [Fact]
    public void EditsAndRollbacksReachTheOrtSessionWithoutRebuildingIt()
    {
        using var editor = KnowledgeEditor.Load(ApiFixture.ModelDir, new EditorOptions
        {
            Method = EditMethod.Memit, HParamsPath = ApiFixture.Data("memit.json"), StatsPath = fx.StatsPath, ServeWithOnnxRuntime = true,
        });
        var ort = editor.OnnxRuntime!;
        var ids = editor.Model.RequireTokenizer().Encode("The sport of Mia Hamm is");
        float[] OrtLogits()
        {
            using var cache = ort.CreateCache();
            return ort.Forward(ids, cache);
        }
        float[] CpuLogits() => editor.Model.Forward(TokenBatch.Single(ids)).Logits;
        string CpuGenerate() => editor.Model.RequireTokenizer().Decode(Generator.Generate(editor.Model, ids, new GenerationOptions { MaxNewTokens = 4 }));

        var before = OrtLogits();
        Assert.True(OnnxExportTests.RelL2(before, CpuLogits()) <= 1e-4);
        Assert.Equal(CpuGenerate(), editor.Generate("The sport of Mia Hamm is", 4));

        var record = editor.ApplyEdits(fx.Requests);
        var edited = OrtLogits();
        double r = OnnxExportTests.RelL2(edited, CpuLogits());
        Assert.True(r <= 1e-4, $"ORT after the edit vs the CPU backend on the edited model: relative L2 {r:E2}");
        Assert.True(OnnxExportTests.RelL2(edited, before) > 1e-2, "the edit must reach the ORT session");
        Assert.Same(ort, editor.OnnxRuntime);
        Assert.Equal(CpuGenerate(), editor.Generate("The sport of Mia Hamm is", 4));

        editor.Rollback(record.Id);
        ApiFixture.AssertBitwiseEqual(before, OrtLogits(), "ORT logits after rollback");
    }
}
