using Kedit.Autodiff;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The tape's forward against the model's own: from the residual the model leaves after block <c>start − 1</c>,
/// the tape's logits at every real token equal <see cref="Transformer.Forward(TokenBatch, ForwardOptions?)"/>'s.
/// Positions reach the tape's blocks through RoPE (llama, gptj): a tape that numbered real tokens wrongly (all at 0,
/// or backwards) fails here, while finite differences, which check the tape against itself, pass it. Counting the
/// left pads as well only shifts every position of a sequence by the same amount, which RoPE's relative rotation
/// cannot see: that mutant is equivalent.
/// </summary>
public class TapeForwardTests
{
    [Theory]
    [InlineData("llama", 1)]
    [InlineData("gptj", 1)]
    [InlineData("gpt2", 2)]
    public void TapeLogitsEqualTheModelsOnPaddedBatches(string fixture, int start)
    {
        using var model = Transformer.Load(TestPaths.Fixture(fixture));
        foreach (var batch in new[]
        {
            TokenBatch.LeftPadded(new List<IReadOnlyList<int>> { new[] { 3, 50, 7, 99, 12, 5 }, new[] { 8, 21 }, new[] { 40, 2, 9 } }),
            TokenBatch.RightPadded(new List<IReadOnlyList<int>> { new[] { 8, 21 }, new[] { 3, 50, 7, 99, 12, 5 } }),
        })
        {
            var hooks = new ForwardHooks().CaptureAll(start, HookPoint.BlockOutput);
            var expected = model.Forward(batch, new ForwardOptions { Hooks = hooks }).Logits;
            var realRows = Enumerable.Range(0, batch.Size * batch.Length).Where(r => batch.Mask[r]).ToArray();
            using var tape = new TransformerTape(model, batch, start);
            var logits = tape.Forward(hooks.Captured(start - 1, HookPoint.BlockOutput), realRows);
            int V = model.Config.VocabSize;
            var want = realRows.SelectMany(r => expected.AsSpan(r * V, V).ToArray()).Select(v => (double)v).ToArray();
            Compare.Close($"{fixture} tape logits from block {start}", logits, want, 1e-5);
        }
    }
}
