using Kedit.Corpus;
using Kedit.IO;
using Kedit.Tokenization;

namespace Kedit.Training;

/// <summary>
/// The whole recipe: corpus (generated when its files are missing), BPE tokenizer trained on the
/// training text, then the model, all written into one Hugging Face style model folder together
/// with recipe.json and training_log.txt.
/// </summary>
public static class TrainingPipeline
{
    /// <summary>Loads the corpus documents a recipe names, generating the fact world first when needed.</summary>
    public static IReadOnlyList<string> PrepareCorpus(TrainingRecipe recipe, string recipeDir, TextWriter progress)
    {
        string dataDir = Path.Combine(recipeDir, recipe.DataDir);
        string trainPath = Path.Combine(dataDir, recipe.TrainFile);
        if (!File.Exists(trainPath))
        {
            if (recipe.CorpusGenerator != "factworld") throw new KeditException($"{trainPath}: training text not found (and the recipe names no corpus generator)");
            progress.WriteLine($"generating the fact world (seed {recipe.CorpusSeed}) into {dataDir}");
            FactWorld.Build(recipe.CorpusSeed, recipe.CorpusProfiles).Write(dataDir);
        }
        var docs = File.ReadAllLines(trainPath).Where(l => l.Length > 0).ToList();
        if (docs.Count == 0) throw new KeditException($"{trainPath}: the training text is empty");
        return docs;
    }

    /// <summary>Trains the tokenizer of the recipe on <paramref name="documents"/> and writes it into <paramref name="outDir"/>.</summary>
    public static Tokenizer PrepareTokenizer(TrainingRecipe recipe, string recipeDir, IReadOnlyList<string> documents, string outDir, TextWriter progress)
    {
        IEnumerable<string>? required = null;
        if (recipe.RequiredTokensFile != null)
        {
            string path = Path.Combine(recipeDir, recipe.DataDir, recipe.RequiredTokensFile);
            if (!File.Exists(path)) throw new KeditException($"{path}: required-words file not found (named by required_tokens_file)");
            required = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        }
        var vocab = BpeTrainer.Train(documents, recipe.VocabSize, required);
        vocab.Save(outDir, recipe.Positions);
        progress.WriteLine($"tokenizer: {vocab.Size} ids, {vocab.Merges.Count} merges -> {Path.Combine(outDir, "tokenizer.json")}");
        return Tokenizer.Load(outDir);
    }

    /// <summary>
    /// Runs the recipe at <paramref name="recipePath"/> into <paramref name="outDir"/> (default: the
    /// recipe's folder). With <paramref name="prepareOnly"/>, stops after the corpus and tokenizer.
    /// </summary>
    public static TrainingResult? Run(string recipePath, string? outDir, bool resume, bool prepareOnly, TextWriter progress)
    {
        var recipe = TrainingRecipe.Load(recipePath);
        string recipeDir = Path.GetDirectoryName(Path.GetFullPath(recipePath))!;
        outDir = Path.GetFullPath(outDir ?? recipeDir);
        Directory.CreateDirectory(outDir);
        AtomicOutput.Recover(outDir);
        // The model's files are staged and moved in together at the end: until then an earlier model
        // in outDir stays whole (its tokenizer included), and a kill part-way through the move is
        // finished by the next command that opens the folder.
        string staging = AtomicOutput.CreateStaging(outDir);
        try
        {
            var docs = PrepareCorpus(recipe, recipeDir, progress);
            var tokenizer = PrepareTokenizer(recipe, recipeDir, docs, staging, progress);
            if (!string.Equals(Path.GetFullPath(recipePath), Path.Combine(outDir, "recipe.json"), StringComparison.Ordinal))
            {
                // The copy points at the recipe's corpus from its new place.
                string data = Path.GetRelativePath(outDir, Path.Combine(recipeDir, recipe.DataDir));
                AtomicOutput.WriteAllText(Path.Combine(staging, "recipe.json"), (recipe with { DataDir = data.Replace('\\', '/') }).ToJson() + "\n");
            }
            var result = prepareOnly ? null : new Trainer(recipe, tokenizer, docs, outDir, progress, modelDir: staging).Run(resume);
            AtomicOutput.CommitFiles(staging, outDir, ModelFiles.Where(f => File.Exists(Path.Combine(staging, f))).ToList());
            return result;
        }
        catch { AtomicOutput.Abandon(staging); throw; }
    }

    /// <summary>What a training run writes into its model folder (the log and checkpoint aside), in commit order.</summary>
    static readonly string[] ModelFiles = { "tokenizer.json", "tokenizer_config.json", "recipe.json", "config.json", "model.safetensors" };
}
