using Kedit.Editing;
using Kedit.IO;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Editing;

/// <summary>
/// The batched statistics path (padded batches, real rows gathered, SYRK on one triangle) against sums of each
/// document's keys captured alone, and its float32-product mode against the float64 mode.
/// </summary>
public class KeyStatisticsTests
{
    static readonly int[] Layers = { 1, 2 };

    // The test corpus's documents cut to lengths 3..40 in a scrambled order, so batches are padded.
    static List<int[]> GptCorpus(Transformer model) =>
        TextCorpus.Documents(Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", "corpus.jsonl"), model.Tokenizer)
            .Select((d, i) => d[..Math.Min(d.Length, 3 + i * 17 % 38)]).ToList();

    static Covariance Stats(Transformer model, IEnumerable<int[]> docs, int[] layers, KeyProducts products)
    {
        var cov = new Covariance(layers, model.Config.Intermediate, products);
        cov.Accumulate(model, docs);
        return cov;
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("gptj")]
    public void Float32ProductsMatchFloat64OnTheFixtures(string name)
    {
        using var fx = new EditFixture(name);
        var f32 = Stats(fx.Model, fx.CovSequences, Layers, KeyProducts.Float32);
        var f64 = Stats(fx.Model, fx.CovSequences, Layers, KeyProducts.Float64);
        foreach (int l in Layers)
        {
            Assert.Equal(f64.Count(l), f32.Count(l));
            CompareDouble.Close($"{name} L{l} float32 products vs float64", f32.Sum(l).Data, f64.Sum(l).Data, 1e-6);
        }
    }

    [SkippableFact]
    public void Float32ProductsMatchFloat64OnStories260k()
    {
        using var model = Transformer.Load(TestPaths.RequireShared("models", "stories260k"));
        var docs = TextCorpus.Documents(Path.Combine(TestPaths.Repo, "tests", "data", "stories260k", "corpus.jsonl"), null).ToList();
        int[] layers = { 1, 2, 3 };
        var f32 = Stats(model, docs, layers, KeyProducts.Float32);
        var f64 = Stats(model, docs, layers, KeyProducts.Float64);
        Assert.True(f64.Count(1) > 50_000, $"{f64.Count(1)} tokens");
        foreach (int l in layers)
            CompareDouble.Close($"stories260k L{l} float32 products vs float64", f32.Sum(l).Data, f64.Sum(l).Data, 1e-6);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void BatchedSumsEqualEachDocumentsKeysSummedAlone(string name)
    {
        using var model = Transformer.Load(TestPaths.Fixture(name));
        var docs = GptCorpus(model);
        Assert.True(docs.Select(d => d.Length).Distinct().Count() > 3, "the corpus must have documents of several lengths (padding)");
        var cov = Stats(model, docs, Layers, KeyProducts.Float64);
        Assert.Equal(docs.Count, cov.Documents);

        int f = model.Config.Intermediate;
        var (expected, tokens) = KeySumsAlone.Of(model, docs, Layers);
        foreach (int l in Layers)
        {
            Assert.Equal(tokens, cov.Count(l));
            // A batched forward blocks its GEMMs differently from a lone document: float32 rounding, not exactness.
            CompareDouble.Close($"{name} L{l} batched vs alone", cov.Sum(l).Data, expected[l], 1e-6);
            var s = cov.Sum(l);
            for (int i = 0; i < f; i++)
                for (int j = 0; j < i; j++) Assert.Equal(s[j, i], s[i, j]);
        }
    }

    [Fact]
    public void ResumingFromACheckpointCountsEveryDocumentOnce()
    {
        using var model = Transformer.Load(TestPaths.Fixture("gpt2"));
        var docs = GptCorpus(model);
        var whole = Stats(model, docs, Layers, KeyProducts.Float64);
        string path = Path.Combine(Path.GetTempPath(), $"kedit-cov-{Guid.NewGuid():N}.safetensors");
        try
        {
            int checkpoints = 0;
            var first = new Covariance(Layers, model.Config.Intermediate, KeyProducts.Float64);
            // Stop after the second checkpoint (7 documents each): the saved file holds exactly 14.
            try
            {
                first.Accumulate(model, docs, checkpointEvery: 7, checkpoint: c =>
                {
                    c.Save(path, new Dictionary<string, string>());
                    if (++checkpoints == 2) throw new OperationCanceledException();
                });
            }
            catch (OperationCanceledException) { }
            var resumed = Covariance.Load(path, Layers, model.Config.Intermediate, KeyProducts.Float64);
            Assert.Equal(14, resumed.Documents);
            resumed.Accumulate(model, docs);
            Assert.Equal(docs.Count, resumed.Documents);
            foreach (int l in Layers)
            {
                Assert.Equal(whole.Count(l), resumed.Count(l));
                CompareDouble.Close($"L{l} resumed vs whole", resumed.Sum(l).Data, whole.Sum(l).Data, 1e-6);
            }
        }
        finally { File.Delete(path); }
    }
}
