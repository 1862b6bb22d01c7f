using Kedit.Corpus;
using Kedit.Editing.Inputs;
using Kedit.Models;
using Kedit.Tokenization;
using Kedit.Training;
using Xunit;

namespace Kedit.Tests.Training;

/// <summary>The default model shipped in models/factworld and the fact world it was trained on.</summary>
public class ShippedModelTests
{
    static string ModelDir => Path.Combine(TestPaths.Repo, "models", "factworld");
    static string DataDir => Path.Combine(ModelDir, "data");

    [Fact]
    public void FactWorldHasEnoughFactsAndRelationsAndIsConsistent()
    {
        var world = FactWorld.Build(7);
        Assert.True(world.Facts.Count >= 1000, $"{world.Facts.Count} facts");
        Assert.True(world.Relations.Count >= 10);
        Assert.All(world.Relations, r => Assert.True(world.Facts.Count(f => f.RelationId == r.Id) >= 20, r.Name));
        // One answer per subject and relation; held-out phrasings never appear among the trained ones.
        Assert.Equal(world.Facts.Count, world.Facts.Select(f => (f.RelationId, f.Subject)).Distinct().Count());
        Assert.All(world.Relations, r => Assert.Empty(r.HeldOutTemplates.Intersect(r.TrainTemplates)));
        Assert.Contains(world.Facts, f => f is { RelationId: "P36", Subject: "France", Object: "Paris" });
        Assert.Empty(world.GeneralHeldOut.Intersect(world.GeneralTrain));
    }

    [Fact]
    public void ProfilesStateEverySubjectsFactsOnceInAShuffledOrder()
    {
        var world = FactWorld.Build(7, profilesPerSubject: 3);
        var profiles = world.Profiles().ToList();
        var subjects = world.Facts.GroupBy(f => f.Subject).ToList();
        Assert.Equal(3 * subjects.Count, profiles.Count);
        Assert.Equal(profiles, world.Profiles().ToList()); // drawn from the seed
        Assert.Empty(FactWorld.Build(7).Profiles());
        var firstOrders = new HashSet<string>();
        foreach (var (g, round) in subjects.SelectMany(g => Enumerable.Range(0, 3).Select(r => (g, r))))
        {
            string doc = profiles[round * subjects.Count + subjects.IndexOf(g)];
            // Every sentence is one of the fact's training sentences, each fact exactly once.
            var sentences = g.Select(f => world.RelationOf(f).TrainTemplates.Select(t => Relation.Sentence(t, f.Subject, f.Object)).ToList()).ToList();
            string rest = doc;
            int found = 0;
            while (rest.Length > 0)
            {
                int k = sentences.FindIndex(opts => opts.Any(o => rest.StartsWith(o, StringComparison.Ordinal)));
                Assert.True(k >= 0, $"profile \"{doc}\" has a sentence that is no training sentence of {g.Key}");
                string hit = sentences[k].First(o => rest.StartsWith(o, StringComparison.Ordinal));
                if (round == 0 && found == 0) firstOrders.Add(g.ElementAt(k).RelationId);
                sentences[k] = [];
                rest = rest[hit.Length..].TrimStart();
                found++;
            }
            Assert.Equal(g.Count(), found);
        }
        // Shuffled: countries (four facts each) do not always open with the same relation.
        Assert.True(firstOrders.Count > 1);
        // The training documents carry them between the fact sentences and the general text.
        Assert.Equal(world.Facts.Sum(f => world.RelationOf(f).TrainTemplates.Count) + profiles.Count + world.GeneralTrain.Count, world.TrainingDocuments().Count());
    }

    [Fact]
    public void CommittedCorpusIsWhatTheGeneratorWrites()
    {
        var recipe = TrainingRecipe.Load(Path.Combine(ModelDir, "recipe.json"));
        string dir = Path.Combine(Path.GetTempPath(), "kedit-world-" + Guid.NewGuid().ToString("N"));
        try
        {
            FactWorld.Build(recipe.CorpusSeed, recipe.CorpusProfiles).Write(dir);
            foreach (var file in new[] { FactWorld.FactsFile, FactWorld.TrainFile, FactWorld.HeldOutFile, FactWorld.RequiredWordsFile, FactWorld.CounterFactFile })
                Assert.True(File.ReadAllBytes(Path.Combine(dir, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(DataDir, file))), file);
            var loaded = FactWorld.Load(dir);
            Assert.Equal(FactWorld.Build(recipe.CorpusSeed).Facts, loaded.Facts);
            Assert.Equal(recipe.CorpusProfiles, loaded.ProfilesPerSubject);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void EveryObjectWordIsOneTokenOfTheShippedTokenizer()
    {
        var tok = Tokenizer.Load(ModelDir);
        Assert.InRange(tok.VocabSize, 2000, 4000);
        foreach (var word in FactWorld.Load(DataDir).ObjectWords())
            Assert.True(tok.Encode(" " + word, false).Length == 1, $"\" {word}\" is {tok.Encode(" " + word, false).Length} tokens");
    }

    [Fact]
    public void ShippedModelKnowsItsTrainingFacts()
    {
        var model = Transformer.Load(ModelDir);
        Assert.Equal("gpt2", model.Config.ModelType);
        Assert.True(new FileInfo(Path.Combine(ModelDir, "model.safetensors")).Length <= 25L << 20);
        var world = FactWorld.Load(DataDir);
        var sample = world.TrainedPrompts(0).Where((_, i) => i % (world.Facts.Count / 200) == 0).Take(200).ToList();
        var score = ModelReport.FactAccuracy(model, sample);
        Assert.Equal(200, score.Total);
        Assert.True(score.Accuracy >= 0.9, $"trained-fact accuracy {score}");
    }

    [Fact]
    public void HeldOutParaphrasesAreAnsweredWellAboveChance()
    {
        var model = Transformer.Load(ModelDir);
        var world = FactWorld.Load(DataDir);
        var prompts = world.HeldOutPrompts().Where((_, i) => i % 15 == 0).ToList();
        var score = ModelReport.FactAccuracy(model, prompts);
        // Chance is about one in the number of objects of a relation (≥ 10 for every relation); the
        // shipped model gets about 20% of all held-out phrasings right.
        Assert.True(score.Accuracy >= 0.1, $"held-out paraphrase accuracy {score}");
    }

    [Fact]
    public void PerplexityOfTheShippedModelIsFarBelowUniform()
    {
        var model = Transformer.Load(ModelDir);
        var world = FactWorld.Load(DataDir);
        double ppl = ModelReport.Perplexity(model, world.GeneralHeldOut.Take(50));
        Assert.InRange(ppl, 1.0, model.Config.VocabSize / 20.0);
    }

    [Fact]
    public void CounterFactRequestFileLoads()
    {
        var world = FactWorld.Load(DataDir);
        var requests = RequestLoader.Load(Path.Combine(DataDir, FactWorld.CounterFactFile));
        Assert.Equal(world.Facts.Count, requests.Count);
        var first = requests[0];
        var fact = world.Facts[0];
        Assert.Equal(fact.Subject, first.Subject);
        Assert.Equal(fact.Object, first.TargetTrue);
        Assert.NotEqual(first.TargetTrue, first.TargetNew);
        Assert.Contains(world.Facts, f => f.RelationId == fact.RelationId && f.Object == first.TargetNew);
        Assert.Equal(2, first.ParaphrasePrompts.Count);
    }
}
