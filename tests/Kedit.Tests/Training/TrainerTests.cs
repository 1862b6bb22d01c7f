using Kedit.Autodiff;
using Kedit.IO;
using Kedit.Models;
using Kedit.Tests.Autodiff;
using Kedit.Training;
using Xunit;

namespace Kedit.Tests.Training;

public class TrainerTests
{
    static readonly TrainingRecipe Tiny = new()
    {
        Name = "tiny", Seed = 5, VocabSize = 300, Layers = 2, Hidden = 16, Heads = 2, Positions = 16, RowTokens = 16,
        Steps = 6, BatchRows = 2, WarmupSteps = 2, LearningRate = 1e-2, MinLearningRate = 1e-3, CheckpointEvery = 100, LogEvery = 1,
        CorpusGenerator = null, RequiredTokensFile = null, HeldOutFile = null, InitStd = 0.3,
    };

    static Transformer TinyModel(int vocab = 30)
    {
        var c = GptParameters.Config(Tiny, vocab, null);
        return new Transformer(c, GptParameters.Initialize(c, 11, Tiny.InitStd));
    }

    static TokenBatch TinyBatch() => TokenBatch.RightPadded(new List<IReadOnlyList<int>>
    {
        new[] { 1, 5, 9, 2, 7, 7, 3, 14, 20 }, new[] { 4, 8, 15, 16, 23 }, new[] { 29, 0, 12 },
    });

    [Fact]
    public void LossGradientMatchesFiniteDifferencesForEveryParameter()
    {
        var model = TinyModel();
        var batch = TinyBatch();
        var grads = new ParameterGrads();
        var (loss, n) = LanguageModelLoss.ForwardBackward(model, batch, grads);
        Assert.Equal(8 + 4 + 2, n); // real positions with a real next token
        Assert.Equal(loss, LanguageModelLoss.Evaluate(model, batch).Loss, 6);

        var rng = new Random(3);
        // wte gets both the tied head's and the input embedding's gradient through one array.
        foreach (var p in GptParameters.List(model.Config, model.Weights))
            FiniteDifference.Check(p.Name, p.Values, grads.For(p.Values), () => LanguageModelLoss.Evaluate(model, batch).Loss, rng);
    }

    [Fact]
    public void AdamWStepsReduceTheLoss()
    {
        var model = TinyModel();
        var batch = TinyBatch();
        var parameters = GptParameters.List(model.Config, model.Weights);
        var adam = new AdamW(parameters, 0.9, 0.98, 1e-8, 0.01);
        var grads = new ParameterGrads();
        double first = LanguageModelLoss.Evaluate(model, batch).Loss;
        // An untrained model is near uniform: loss ≈ ln V.
        Assert.InRange(first, Math.Log(30) - 1.5, Math.Log(30) + 1.5);
        for (int step = 0; step < 40; step++)
        {
            grads.Clear();
            LanguageModelLoss.ForwardBackward(model, batch, grads);
            adam.Step(parameters.Select(p => grads.For(p.Values)).ToArray(), 1e-2);
        }
        double last = LanguageModelLoss.Evaluate(model, batch).Loss;
        Assert.True(last < 0.3 * first, $"loss went from {first} to {last}");
    }

    [Fact]
    public void LearningRateScheduleIsWarmupThenCosine()
    {
        var r = new TrainingRecipe { Steps = 110, WarmupSteps = 10, LearningRate = 1e-3, MinLearningRate = 1e-4 };
        Assert.Equal(1e-4, r.LearningRateAt(0), 12);
        Assert.Equal(1e-3, r.LearningRateAt(9), 12);
        Assert.Equal(1e-3, r.LearningRateAt(10), 12);
        Assert.Equal(1e-4 + 0.5 * 9e-4, r.LearningRateAt(60), 12);  // half way: cos(π/2) = 0
        Assert.Equal(1e-4, r.LearningRateAt(110), 12);
    }

    [Fact]
    public void BadRecipeFieldsAreNamed()
    {
        string dir = TempDir();
        try
        {
            string path = Path.Combine(dir, "recipe.json");
            File.WriteAllText(path, "{\"hidden\": 30, \"heads\": 4}");
            Assert.Contains("\"hidden\"", Assert.Throws<KeditException>(() => TrainingRecipe.Load(path)).Message);
            File.WriteAllText(path, "{\"hiden\": 32}");
            Assert.Contains("hiden", Assert.Throws<KeditException>(() => TrainingRecipe.Load(path)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), "kedit-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static string WriteTinyRecipe(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "data"));
        var lines = Enumerable.Range(0, 24).Select(i => $"Item {i} is stored in box {i % 5} near the door.");
        File.WriteAllLines(Path.Combine(dir, "data", "train.txt"), lines);
        string path = Path.Combine(dir, "recipe.json");
        File.WriteAllText(path, Tiny.ToJson());
        return path;
    }

    [Fact]
    public void ResumingFromACheckpointGivesTheSameModelAsOneRun()
    {
        string dir = TempDir();
        try
        {
            string recipePath = WriteTinyRecipe(dir);
            string outA = Path.Combine(dir, "a"), outB = Path.Combine(dir, "b");
            var log = new StringWriter();
            var result = TrainingPipeline.Run(recipePath, outA, resume: false, prepareOnly: false, log)!;
            Assert.Equal(6, result.Steps);

            var recipe = TrainingRecipe.Load(recipePath);
            var docs = TrainingPipeline.PrepareCorpus(recipe, dir, log);
            var tok = TrainingPipeline.PrepareTokenizer(recipe, dir, docs, outB, log);
            new Trainer(recipe, tok, docs, outB, log).Run(resume: false, stopAfterStep: 3);
            Assert.True(File.Exists(Path.Combine(outB, "checkpoint", Trainer.OptimizerFile)));
            new Trainer(recipe, tok, docs, outB, log).Run(resume: true);
            Assert.Contains("resuming", log.ToString());

            using var a = TensorStore.OpenDirectory(outA);
            using var b = TensorStore.OpenDirectory(outB);
            Assert.Equal(a.Names.Order(), b.Names.Order());
            foreach (var name in a.Names) Assert.Equal(a.ReadFloat32(name), b.ReadFloat32(name));

            // The folder is a loadable HF GPT-2 model with the exact HF tensor names.
            var model = Transformer.Load(outA);
            Assert.Equal("gpt2", model.Config.ModelType);
            Assert.Contains("transformer.h.1.mlp.c_proj.weight", a.Names);
            Assert.Equal([16L, 48L], a.GetInfo("transformer.h.0.attn.c_attn.weight").Shape);
            Assert.Equal(2 + 12 * 2 + 2, a.Names.Count);
            Assert.True(File.Exists(Path.Combine(outA, "training_log.txt")));
            Assert.True(File.Exists(Path.Combine(outA, "recipe.json")));
            Assert.False(Directory.Exists(Path.Combine(outA, "checkpoint")));
        }
        finally { Directory.Delete(dir, true); }
    }
}
