using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kedit.Training;

/// <summary>
/// Everything that determines a training run: corpus, tokenizer, model shape, optimiser and
/// schedule, and the seed. Written next to the trained model as recipe.json so that
/// <c>kedit train --recipe recipe.json</c> reproduces it. Paths are relative to the recipe's folder.
/// </summary>
public sealed record TrainingRecipe
{
    /// <summary>Short name of the model (e.g. "factworld").</summary>
    public string Name { get; init; } = "model";
    /// <summary>Seed of the weight initialisation and of the data order.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>Folder of the corpus files, relative to the recipe.</summary>
    public string DataDir { get; init; } = "data";
    /// <summary>Corpus generator that (re)creates the data folder when its files are missing ("factworld" or null).</summary>
    public string? CorpusGenerator { get; init; } = "factworld";
    /// <summary>Seed given to the corpus generator.</summary>
    public int CorpusSeed { get; init; } = 7;
    /// <summary>Profile documents per subject the fact-world generator adds (see <c>FactWorld.ProfilesPerSubject</c>).</summary>
    public int CorpusProfiles { get; init; }
    /// <summary>Training text, one document per line, inside <see cref="DataDir"/>.</summary>
    public string TrainFile { get; init; } = "train.txt";
    /// <summary>Held-out text for perplexity, one document per line, inside <see cref="DataDir"/> (optional).</summary>
    public string? HeldOutFile { get; init; } = "heldout.txt";
    /// <summary>Words that must each be a single token (with a leading space), one per line, inside <see cref="DataDir"/> (optional).</summary>
    public string? RequiredTokensFile { get; init; } = "required_words.txt";

    /// <summary>Tokenizer vocabulary size including the 256 byte tokens and &lt;|endoftext|&gt;.</summary>
    public int VocabSize { get; init; } = 3000;

    public int Layers { get; init; } = 4;
    public int Hidden { get; init; } = 128;
    public int Heads { get; init; } = 4;
    public int Positions { get; init; } = 64;

    /// <summary>Optimiser steps.</summary>
    public int Steps { get; init; } = 4000;
    /// <summary>Packed rows per step.</summary>
    public int BatchRows { get; init; } = 16;
    /// <summary>Most tokens in one packed row (≤ <see cref="Positions"/>).</summary>
    public int RowTokens { get; init; } = 64;
    public double LearningRate { get; init; } = 2e-3;
    public double MinLearningRate { get; init; } = 1e-4;
    public int WarmupSteps { get; init; } = 200;
    public double WeightDecay { get; init; } = 0.01;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.98;
    public double AdamEps { get; init; } = 1e-8;
    /// <summary>Clip the gradient to this global L2 norm (0: no clipping).</summary>
    public double GradClip { get; init; } = 1.0;
    public double InitStd { get; init; } = 0.02;
    public int CheckpointEvery { get; init; } = 500;
    public int LogEvery { get; init; } = 25;

    static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Reads and checks a recipe file.</summary>
    /// <exception cref="KeditException">missing file, bad JSON, unknown field or an invalid setting.</exception>
    public static TrainingRecipe Load(string path)
    {
        if (!File.Exists(path)) throw new KeditException($"{path}: recipe file not found");
        TrainingRecipe? r;
        using var doc = Kedit.IO.StrictJson.ReadFile(path, "recipe");
        try { r = doc.RootElement.Deserialize<TrainingRecipe>(Json); }
        catch (JsonException e) { throw new KeditException($"{path}: invalid recipe ({e.Message})"); }
        if (r == null) throw new KeditException($"{path}: the recipe is null");
        r.Validate(path);
        return r;
    }

    /// <summary>The recipe as indented JSON (snake_case field names).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Checks every setting, naming the field at fault.</summary>
    public void Validate(string source)
    {
        void Check(bool ok, string field, string problem) { if (!ok) throw new KeditException($"{source}: field \"{field}\" {problem}"); }
        Check(!string.IsNullOrWhiteSpace(Name), "name", "must not be empty");
        // JSON null reaches these non-nullable strings through the deserializer.
        Check(!string.IsNullOrWhiteSpace(DataDir), "data_dir", "must be a folder name");
        Check(!string.IsNullOrWhiteSpace(TrainFile), "train_file", "must be a file name");
        Check(VocabSize >= 258 && VocabSize <= 65536, "vocab_size", $"must be in 258..65536, found {VocabSize}");
        Check(Layers > 0, "layers", "must be positive");
        Check(Hidden > 0 && Heads > 0 && Hidden % Heads == 0, "hidden", $"({Hidden}) must be a positive multiple of heads ({Heads})");
        Check(Positions >= 2, "positions", "must be at least 2");
        Check(RowTokens >= 2 && RowTokens <= Positions, "row_tokens", $"must be in 2..positions ({Positions}), found {RowTokens}");
        Check(Steps > 0, "steps", "must be positive");
        Check(BatchRows > 0, "batch_rows", "must be positive");
        Check(LearningRate > 0, "learning_rate", "must be positive");
        Check(MinLearningRate >= 0 && MinLearningRate <= LearningRate, "min_learning_rate", "must be in [0, learning_rate]");
        Check(WarmupSteps >= 0 && WarmupSteps < Steps, "warmup_steps", "must be in [0, steps)");
        Check(WeightDecay >= 0, "weight_decay", "must not be negative");
        Check(Beta1 >= 0 && Beta1 < 1, "beta1", "must be in [0, 1)");
        Check(Beta2 >= 0 && Beta2 < 1, "beta2", "must be in [0, 1)");
        Check(AdamEps > 0, "adam_eps", "must be positive");
        Check(GradClip >= 0, "grad_clip", "must not be negative");
        Check(InitStd > 0, "init_std", "must be positive");
        Check(CheckpointEvery > 0, "checkpoint_every", "must be positive");
        Check(LogEvery > 0, "log_every", "must be positive");
        Check(CorpusProfiles >= 0 && CorpusProfiles <= 64, "corpus_profiles", $"must be in 0..64, found {CorpusProfiles}");
        Check(CorpusGenerator is null or "factworld", "corpus_generator", $"must be \"factworld\" or null, found \"{CorpusGenerator}\"");
    }

    /// <summary>Learning rate at a 0-based step: linear warm-up, then cosine decay to the minimum.</summary>
    public double LearningRateAt(int step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, Steps - WarmupSteps);
        return MinLearningRate + 0.5 * (LearningRate - MinLearningRate) * (1 + Math.Cos(Math.PI * Math.Min(1, progress)));
    }
}
