using Kedit.Editing;
using Kedit.Evaluation;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Models;

/// <summary>Logits of chosen rows, in chunks through a sink, against the whole logits array; batched perplexity against one window per forward.</summary>
public class LogitRowsTests
{
    static List<int[]> Sequences(int count, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(i => Enumerable.Range(0, 40 + i * 29 % 88).Select(_ => rng.Next(vocab)).ToArray()).ToList();
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void AskedRowsThroughTheSinkEqualThoseRowsOfAllLogits(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        int V = model.Config.VocabSize;
        var batch = TokenBatch.RightPadded(Sequences(7, V, 5));
        var all = model.Forward(batch).Logits;
        // More rows than one chunk, in a scrambled order, so chunks are full and the last one short.
        var rows = Enumerable.Range(0, batch.Size * batch.Length).Where(r => batch.Mask[r]).Reverse().Where((_, i) => i % 2 == 0).ToList();
        Assert.True(rows.Count > Transformer.LogitChunkRows && rows.Count % Transformer.LogitChunkRows != 0, $"{rows.Count} rows");

        var asked = model.Forward(batch, new ForwardOptions { Logits = LogitsMode.Rows, LogitRows = rows });
        Assert.Equal(rows.Count, asked.Rows);
        var streamed = new float[rows.Count * V];
        var chunks = new List<(int First, int Count)>();
        var none = model.Forward(batch, new ForwardOptions
        {
            Logits = LogitsMode.Rows, LogitRows = rows,
            OnLogits = (first, count, logits) => { chunks.Add((first, count)); logits.CopyTo(streamed.AsSpan(first * V, count * V)); },
        });
        Assert.Empty(none.Logits);
        Assert.Equal(rows.Count, chunks.Sum(c => c.Count));
        Assert.All(chunks, c => Assert.True(c.Count <= Transformer.LogitChunkRows));
        for (int i = 0; i < rows.Count; i++)
        {
            var expected = all.AsSpan(rows[i] * V, V).ToArray().Select(v => (double)v).ToArray();
            // The same rows through GEMMs of other heights: float32 rounding only.
            Compare.Close($"{name} row {rows[i]}", asked.Row(i), expected, 1e-5);
            Compare.Close($"{name} streamed row {rows[i]}", streamed.AsSpan(i * V, V), expected, 1e-5);
        }
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("gptj")]
    public void BatchedPerplexityEqualsOneWindowPerForward(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        int V = model.Config.VocabSize;
        var docs = Sequences(40, V, 9);
        const int window = 64;
        double nll = 0; long count = 0;
        foreach (var doc in docs)
            for (int start = 0; start < doc.Length; start += window)
            {
                var w = doc.AsSpan(start, Math.Min(window, doc.Length - start)).ToArray();
                if (w.Length < 2) continue;
                var logits = model.Forward(TokenBatch.Single(w)).Logits;
                for (int t = 1; t < w.Length; t++) { nll -= ComputeZ.LogSoftmax(logits.AsSpan((t - 1) * V, V))[w[t]]; count++; }
            }
        double expected = Math.Exp(nll / count), actual = Metrics.Perplexity(model, docs, window);
        Assert.True(Math.Abs(actual - expected) <= 1e-6 * expected, $"{name}: batched {actual} vs alone {expected}");
    }
}
