using Kedit.Api;
using Kedit.IO;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Xunit;

namespace Kedit.Tests.Api;

/// <summary>Key statistics of the gpt2 fixture (layers 1, 2), computed once through `kedit stats` for all API tests.</summary>
public sealed class ApiFixture : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-api-").FullName;

    public ApiFixture()
    {
        StatsPath = Path.Combine(_tmp, "stats.safetensors");
        // Computed here rather than through `kedit stats`, which would leave a cache inside tests/fixtures.
        using (var model = Transformer.Load(ModelDir))
        {
            var cov = new Covariance(new[] { 1, 2 }, model.Config.Intermediate);
            cov.Accumulate(model, TextCorpus.Documents(Data("corpus.jsonl"), model.Tokenizer));
            Assert.Equal(960, cov.Count(1));  // as the golden covariance (EditCliTests)
            cov.Save(StatsPath, new Dictionary<string, string> { ["kind"] = "test statistics" });
        }
        Requests = RequestLoader.Load(Data("requests.json"));
    }

    public static string Data(string f) => Path.Combine(TestPaths.Repo, "tests", "data", "gpt2-edit", f);
    public static string ModelDir => TestPaths.Fixture("gpt2");
    public string StatsPath { get; }
    public string Temp => _tmp;
    /// <summary>Paris → Rome, Tom → Oslo, Mia Hamm → chess.</summary>
    public IReadOnlyList<EditRequest> Requests { get; }

    public KnowledgeEditor Editor(EditMethod method, string hparams, bool onnxRuntime = false) =>
        KnowledgeEditor.Load(ModelDir, new EditorOptions { Method = method, HParamsPath = Data(hparams), StatsPath = StatsPath, ServeWithOnnxRuntime = onnxRuntime });

    /// <summary>All logits of a fixed two-prompt batch.</summary>
    public static float[] Logits(Transformer model)
    {
        var tok = model.RequireTokenizer();
        var batch = TokenBatch.RightPadded(new IReadOnlyList<int>[] { tok.Encode("Paris is located in"), tok.Encode("The sport of Mia Hamm is") });
        return model.Forward(batch).Logits;
    }

    public static void AssertBitwiseEqual(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: value {i} is {actual[i]:R}, expected {expected[i]:R}");
    }

    public void Dispose()
    {
        try { Directory.Delete(_tmp, true); } catch (IOException) { }
    }
}
