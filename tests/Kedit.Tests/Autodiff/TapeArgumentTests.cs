using Kedit.Autodiff;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// The tape's buffer checks: a buffer shorter than the batch needs is refused with an ArgumentException
/// naming the sizes (not the slice's ArgumentOutOfRangeException from deeper down), a buffer exactly the
/// needed size or longer is accepted and only its prefix is read or written.
/// </summary>
public class TapeArgumentTests
{
    static (Transformer Model, TransformerTape Tape, int Rows, int D, int V, int[] LogitRows, float[] X) Setup()
    {
        var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var batch = TokenBatch.RightPadded(new List<IReadOnlyList<int>> { new[] { 3, 50, 7, 99 }, new[] { 8, 21 } });
        int d = model.Config.Hidden, V = model.Config.VocabSize, rows = batch.Size * batch.Length;
        var rng = new Random(3);
        var x = Enumerable.Range(0, rows * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        return (model, new TransformerTape(model, batch, 1), rows, d, V, new[] { 3, batch.Length + 1 }, x);
    }

    static void AssertArgumentError(Action act, params string[] parts)
    {
        var e = Assert.Throws<ArgumentException>(act); // exactly ArgumentException: the tape's own check, not a slice failing later
        foreach (var p in parts) Assert.Contains(p, e.Message);
    }

    [Fact]
    public void ShortResidualIsRefusedNamingTheShape()
    {
        var (_, tape, rows, d, V, logitRows, x) = Setup();
        using (tape)
            AssertArgumentError(() => tape.Forward(x.AsSpan(0, rows * d - 1), logitRows, new float[logitRows.Length * V]),
                $"the residual has {rows * d - 1} values", $"[{rows}, {d}]");
    }

    [Fact]
    public void ShortLogitsBufferIsRefusedNamingTheSize()
    {
        var (_, tape, _, _, V, logitRows, x) = Setup();
        using (tape)
            AssertArgumentError(() => tape.Forward(x, logitRows, new float[logitRows.Length * V - 1]),
                $"the logits buffer holds {logitRows.Length * V - 1} values", $"{logitRows.Length} rows need {logitRows.Length * V}");
    }

    [Fact]
    public void ShortGradientBuffersAreRefusedNamingTheSizes()
    {
        var (_, tape, rows, d, V, logitRows, x) = Setup();
        using (tape)
        {
            tape.Forward(x, logitRows);
            int n = logitRows.Length;
            AssertArgumentError(() => tape.Backward(new float[n * V - 1], new float[rows * d]),
                $"dLogits holds {n * V - 1} values", $"{n} logit rows need {n * V}");
            AssertArgumentError(() => tape.Backward(new float[n * V], new float[rows * d - 1]),
                $"the residual gradient buffer holds {rows * d - 1} values", $"[{rows}, {d}] needed");
        }
    }

    [Fact]
    public void LongerBuffersAreAcceptedAndOnlyTheirPrefixUsed()
    {
        var (model, tape, rows, d, V, logitRows, x) = Setup();
        using (tape)
        {
            int n = logitRows.Length;
            var expectedLogits = tape.Forward(x, logitRows);
            var rng = new Random(5);
            var r = Enumerable.Range(0, n * V).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var expectedDx = tape.Backward(r);

            // Longer inputs carry garbage past the prefix; longer outputs keep a sentinel past it.
            var xLong = x.Concat(Enumerable.Repeat(1e6f, 7)).ToArray();
            var logits = Enumerable.Repeat(-7f, n * V + 5).ToArray();
            tape.Forward(xLong, logitRows, logits);
            Assert.Equal(expectedLogits, logits[..(n * V)]);
            Assert.All(logits[(n * V)..], v => Assert.Equal(-7f, v));

            var rLong = r.Concat(Enumerable.Repeat(1e6f, 3)).ToArray();
            var dx = Enumerable.Repeat(-7f, rows * d + 4).ToArray();
            tape.Backward(rLong, dx);
            Assert.Equal(expectedDx, dx[..(rows * d)]);
            Assert.All(dx[(rows * d)..], v => Assert.Equal(-7f, v));
        }
    }

    [Fact]
    public void RefusedForwardLeavesThePreviousOneIntactAndAFailedOneNothing()
    {
        var (_, tape, rows, d, V, logitRows, x) = Setup();
        using (tape)
        {
            tape.Forward(x, logitRows);
            var r = Enumerable.Repeat(0.5f, logitRows.Length * V).ToArray();
            var before = tape.Backward(r);
            // Refused before any work: the saved forward is still the one differentiated.
            Assert.Throws<ArgumentException>(() => tape.Forward(x, logitRows, new float[1]));
            Assert.Equal(before, tape.Backward(r));
            // Failing midway (a logit row outside the batch, found after the blocks ran): nothing to differentiate.
            Assert.ThrowsAny<Exception>(() => tape.Forward(x, new[] { rows + 3 }));
            var e = Assert.Throws<InvalidOperationException>(() => tape.Backward(new float[V]));
            Assert.Contains("Backward needs a Forward first", e.Message);
        }
    }

    [Fact]
    public void DisposedTapeHasNothingToDifferentiate()
    {
        var (_, tape, _, _, V, logitRows, x) = Setup();
        tape.Forward(x, logitRows);
        tape.Dispose();
        Assert.Throws<InvalidOperationException>(() => tape.Backward(new float[logitRows.Length * V]));
    }

    [Fact]
    public void ParameterGradsKeepOneZeroedArrayPerParameter()
    {
        var grads = new ParameterGrads();
        float[] p = { 1, 2, 3 }, q = { 1, 2, 3 }; // equal contents, different parameters
        Assert.False(grads.TryGet(p, out _));
        var gp = grads.For(p);
        Assert.Equal(new float[3], gp);
        Assert.Same(gp, grads.For(p));
        Assert.True(grads.TryGet(p, out var again));
        Assert.Same(gp, again);
        Assert.NotSame(gp, grads.For(q)); // keyed by reference, not by contents
        Assert.Equal(2, grads.All.Count());
        gp[1] = 5;
        grads.Clear();
        Assert.Equal(new float[3], grads.For(p));
        Assert.Same(gp, grads.For(p)); // cleared in place, still registered
    }
}
