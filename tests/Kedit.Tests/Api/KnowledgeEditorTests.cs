using Kedit.Api;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Api;

/// <summary>The embedding API on the gpt2 fixture: edits move preferences, rollback is exact, readers see whole edits only.</summary>
public class KnowledgeEditorTests(ApiFixture fx) : IClassFixture<ApiFixture>
{
    const string Prompt = "The home of Tom";

    [Fact]
    public void MemitEditMovesTheScoredPreferenceAndRollbackRestoresLogitsBitwise()
    {
        using var original = Transformer.Load(ApiFixture.ModelDir);
        var expected = ApiFixture.Logits(original);
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        ApiFixture.AssertBitwiseEqual(expected, ApiFixture.Logits(editor.Model), "logits before any edit");

        double osloBefore = editor.Score(Prompt, " Oslo"), berlinBefore = editor.Score(Prompt, "Berlin");
        Assert.True(osloBefore > berlinBefore, $"the fixture model already prefers Oslo ({osloBefore} vs {berlinBefore})");

        var record = editor.ApplyEdits(File.ReadAllText(ApiFixture.Data("requests.json")));
        Assert.Equal(3, record.Requests.Count);
        Assert.Equal(new[] { record.Id }, editor.ListEdits().Select(r => r.Id));
        double osloAfter = editor.Score(Prompt, " Oslo"), berlinAfter = editor.Score(Prompt, "Berlin");
        Assert.True(osloAfter < 0.1, $"after the edit the NLL of Oslo is {osloAfter} (was {osloBefore})");
        Assert.True(osloAfter < berlinAfter, $"after the edit Oslo should be preferred: NLL {osloAfter} vs Berlin {berlinAfter}");

        editor.Rollback(record.Id);
        Assert.Empty(editor.ListEdits());
        ApiFixture.AssertBitwiseEqual(expected, ApiFixture.Logits(editor.Model), "logits after rollback");
        Assert.Equal(osloBefore, editor.Score(Prompt, " Oslo"));

        var e = Assert.Throws<KeditException>(() => editor.Rollback(record.Id));
        Assert.Contains(record.Id, e.Message);
    }

    [Fact]
    public void D4sRollbackTakesTheEditOutOfTheRunningSums()
    {
        var r = fx.Requests;
        using var editor = fx.Editor(EditMethod.D4S, "d4s.json");
        const string Sport = "The sport of Mia Hamm";
        double osloBefore = editor.Score(Prompt, " Oslo"), chessBefore = editor.Score(Sport, " chess");
        var first = editor.ApplyEdits(new[] { r[1] });
        double osloEdited = editor.Score(Prompt, " Oslo");
        Assert.True(osloEdited < 0.1, $"the first edit took: NLL of Oslo {osloBefore} → {osloEdited}");
        var second = editor.ApplyEdits(new[] { r[0], r[2] });
        double chessEdited = editor.Score(Sport, " chess");
        Assert.NotEqual(first.Id, second.Id);
        editor.Rollback(first.Id);
        Assert.Equal(new[] { second.Id }, editor.ListEdits().Select(x => x.Id));
        // The first edit is gone, the second still holds.
        double osloRolledBack = editor.Score(Prompt, " Oslo"), chessKept = editor.Score(Sport, " chess");
        Assert.True(osloRolledBack > osloBefore - 0.5, $"Tom → Oslo is rolled back: NLL {osloBefore} → {osloEdited} → {osloRolledBack}");
        Assert.True(Math.Abs(chessKept - chessEdited) < 0.2 && chessKept < chessBefore - 1, $"Mia Hamm → chess still holds: NLL {chessBefore} → {chessEdited} → {chessKept}");

        // (That the served ΔW is then exactly the D4S solution of the remaining terms is checked against a
        // dense solve in EditGoldenTests.D4sRemoveLeavesTheBatchSolutionOfTheRemainingSteps.)
        editor.Rollback(second.Id);
        using var original = Transformer.Load(ApiFixture.ModelDir);
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(original), ApiFixture.Logits(editor.Model), "logits after rolling back every edit");
    }

    [Fact]
    public async Task GenerationsDuringAnEditSeeEitherTheOldOrTheNewWeights()
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        string before = editor.Generate(Prompt, 6);
        var outputs = new System.Collections.Concurrent.ConcurrentBag<string>();
        var edit = Task.Run(() => editor.ApplyEdits(fx.Requests));
        var deadline = DateTime.UtcNow.AddSeconds(60);
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            do outputs.Add(editor.Generate(Prompt, 6)); while (!edit.IsCompleted && DateTime.UtcNow < deadline);
            outputs.Add(editor.Generate(Prompt, 6));
        })).ToList();
        readers.ForEach(t => t.Start());
        readers.ForEach(t => t.Join());
        Assert.True(await Task.WhenAny(edit, Task.Delay(TimeSpan.FromSeconds(60))) == edit, "the edit did not finish");
        await edit;
        string after = editor.Generate(Prompt, 6);

        Assert.NotEqual(before, after);
        Assert.StartsWith(" Oslo", after);
        Assert.True(outputs.Count >= 4, $"only {outputs.Count} generations ran");
        Assert.All(outputs, o => Assert.True(o == before || o == after, $"generation '{o}' is neither the pre-edit '{before}' nor the post-edit '{after}'"));
        Assert.Contains(before, outputs);  // readers ran while the edit was being computed
    }

    [Fact]
    public void AnEditPastItsTimeBudgetIsAbandonedAndMemoryIsReported()
    {
        using var original = Transformer.Load(ApiFixture.ModelDir);
        var expected = ApiFixture.Logits(original);
        using var editor = fx.Editor(EditMethod.D4S, "d4s.json");
        var e = Assert.Throws<TimeoutException>(() => editor.ApplyEdits(fx.Requests, TimeSpan.FromMilliseconds(1)));
        Assert.Contains("time budget", e.Message);
        Assert.Empty(editor.ListEdits());
        ApiFixture.AssertBitwiseEqual(expected, ApiFixture.Logits(editor.Model), "logits after an edit that ran out of time");
        editor.ApplyEdits(fx.Requests, TimeSpan.FromMinutes(10));
        Assert.Single(editor.ListEdits());

        Assert.Throws<OperationCanceledException>(() => editor.Generate(Prompt, 8, new CancellationToken(canceled: true)));

        // Array sizes from the configuration: two edited layers (d4s.json), d×f float32 copies, f×f float64 statistics.
        var m = editor.Memory();
        var c = editor.Model.Config;
        long d = c.Hidden, f = c.Intermediate;
        Assert.Equal(original.Weights.ParameterCount * 4, m.ModelWeights);
        Assert.Equal(2 * 2 * d * f * 4, m.EditedLayerCopies);
        Assert.Equal(2 * f * f * 8, m.Statistics);
        // D4S per layer: the factor (packed, f(f+1)/2) and Γ (d·f), its sums as the requests' keys (f) and residuals (d).
        Assert.Equal(2 * (f * (f + 1) / 2 + d * f + fx.Requests.Count * (f + d)) * 8, m.EditState);
        Assert.Equal(m.ModelWeights + m.EditedLayerCopies + m.Statistics + m.EditState, m.Editor);
        Assert.True(m.ManagedHeap > 0 && m.WorkingSet > m.Editor, $"heap {m.ManagedHeap}, working set {m.WorkingSet}");
    }

    [Fact]
    public void ACancelledEditLeavesTheServedWeightsUntouched()
    {
        using var original = Transformer.Load(ApiFixture.ModelDir);
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => editor.ApplyEdits(fx.Requests, cts.Token));
        Assert.Empty(editor.ListEdits());
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(original), ApiFixture.Logits(editor.Model), "logits after a cancelled edit");
    }

    [Fact]
    public void AlphaEditRollbackReplaysTheOtherEditsFromW0()
    {
        var r = fx.Requests;
        using var editor = fx.Editor(EditMethod.AlphaEdit, "alphaedit.json");
        var first = editor.ApplyEdits(new[] { r[1] });
        editor.ApplyEdits(new[] { r[0], r[2] });
        editor.Rollback(first.Id);
        // Rolled back = the second edit applied alone to W0, with nothing preserved from the first (bitwise).
        using var fresh = fx.Editor(EditMethod.AlphaEdit, "alphaedit.json");
        fresh.ApplyEdits(new[] { r[0], r[2] });
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(fresh.Model), ApiFixture.Logits(editor.Model), "logits after rolling back the first AlphaEdit edit");
        Assert.True(editor.Score("The sport of Mia Hamm", " chess") < 1.0, "the kept edit holds");
    }

    [Fact]
    public void BadOptionsAndRequestsAreKeditErrorsNamingTheField()
    {
        var e = Assert.Throws<KeditException>(() => KnowledgeEditor.Load(ApiFixture.ModelDir, new EditorOptions { Method = EditMethod.Memit, HParamsPath = ApiFixture.Data("memit.json") }));
        Assert.Contains("stats", e.Message);
        e = Assert.Throws<KeditException>(() => EditorOptions.ParseMethod("alpha"));
        Assert.Contains("alpha", e.Message);
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        e = Assert.Throws<KeditException>(() => editor.ApplyEdits("""[{"prompt": "{} is in", "subject": "Paris"}]"""));
        Assert.Contains("target", e.Message);
        Assert.Empty(editor.ListEdits());
    }

    [Fact]
    public void ExportWritesTheServedWeightsAndAJournalThatRollsBack()
    {
        using var editor = fx.Editor(EditMethod.Memit, "memit.json");
        editor.ApplyEdits(fx.Requests);
        string outDir = Path.Combine(fx.Temp, "export-" + Guid.NewGuid().ToString("N"));
        editor.Export(outDir);

        using (var exported = Transformer.Load(outDir))
            ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(editor.Model), ApiFixture.Logits(exported), "logits of the exported model");
        string back = outDir + "-back";
        var err = new StringWriter();
        Assert.True(Cli.Cli.Run(new[] { "rollback", "--journal", outDir, "--out", back }, TextWriter.Null, err) == 0, err.ToString());
        using var original = Transformer.Load(ApiFixture.ModelDir);
        using var restored = Transformer.Load(back);
        ApiFixture.AssertBitwiseEqual(ApiFixture.Logits(original), ApiFixture.Logits(restored), "logits after kedit rollback of the export");
    }
}
