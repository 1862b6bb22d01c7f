using System.Diagnostics;
using System.Globalization;
using Kedit.Autodiff;
using Kedit.Backends;
using Kedit.IO;
using Kedit.Models;
using Kedit.Tokenization;

namespace Kedit.Training;

/// <summary>What a finished training run reports.</summary>
public sealed record TrainingResult(int Steps, double FinalLoss, double Seconds, long TokensSeen, string OutputDir);

/// <summary>
/// Packs documents (lines of text, already tokenized) into rows of at most RowTokens tokens, in a
/// seeded order that is reshuffled every epoch. Each row starts at a document start; later
/// documents in a row use their space-prefixed form, as they would appear in running text.
/// Deterministic: row k of the stream depends only on the seed and the documents.
/// </summary>
public sealed class RowPacker
{
    readonly int[][] _first, _continued;
    readonly int _rowTokens, _seed;

    public RowPacker(Tokenizer tokenizer, IReadOnlyList<string> documents, int rowTokens, int seed)
    {
        if (documents.Count == 0) throw new KeditException("the training corpus is empty");
        _rowTokens = rowTokens; _seed = seed;
        _first = new int[documents.Count][]; _continued = new int[documents.Count][];
        Parallel.For(0, documents.Count, i =>
        {
            _first[i] = Clip(tokenizer.Encode(documents[i], addSpecialTokens: false));
            _continued[i] = Clip(tokenizer.Encode(" " + documents[i], addSpecialTokens: false));
        });
        TotalTokens = _first.Sum(t => (long)t.Length);
    }

    int[] Clip(int[] ids) => ids.Length <= _rowTokens ? ids : ids[.._rowTokens];

    /// <summary>Tokens of one pass over the documents (each in its document-start form).</summary>
    public long TotalTokens { get; }

    /// <summary>The endless row stream (epoch after epoch).</summary>
    public IEnumerable<int[]> Rows()
    {
        var row = new List<int>(_rowTokens);
        for (int epoch = 0; ; epoch++)
        {
            var order = Enumerable.Range(0, _first.Length).ToArray();
            new Random(unchecked(_seed * 7919 + epoch)).Shuffle(order);
            foreach (int i in order)
            {
                if (row.Count > 0 && row.Count + _continued[i].Length > _rowTokens)
                {
                    yield return row.ToArray();
                    row.Clear();
                }
                row.AddRange(row.Count == 0 ? _first[i] : _continued[i]);
            }
        }
    }
}

/// <summary>
/// Trains a GPT-2 model on the CPU with the engine's own forward and backward passes: packed rows,
/// next-token cross-entropy, AdamW, global-norm clipping, warm-up + cosine learning rate, atomic
/// checkpoints (model.safetensors + optimizer state) that <c>--resume</c> continues from, and a
/// progress line plus training_log.txt.
/// </summary>
public sealed class Trainer
{
    /// <summary>Optimizer-state file inside the output folder's checkpoint/ subfolder.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    readonly TrainingRecipe _recipe;
    readonly Tokenizer _tokenizer;
    readonly IReadOnlyList<string> _documents;
    readonly string _outDir;
    /// <summary>Where the finished model is saved: the output folder, or the staging folder it is committed from.</summary>
    readonly string _modelDir;
    readonly TextWriter _progress;

    public Trainer(TrainingRecipe recipe, Tokenizer tokenizer, IReadOnlyList<string> documents, string outDir, TextWriter progress, string? modelDir = null)
    {
        _recipe = recipe; _tokenizer = tokenizer; _documents = documents; _outDir = outDir; _progress = progress; _modelDir = modelDir ?? outDir;
    }

    /// <summary>
    /// Runs the recipe's steps (from the last checkpoint when <paramref name="resume"/>) and saves the
    /// model. With <paramref name="stopAfterStep"/>, writes a checkpoint after that step and returns
    /// early, as an interrupted run would have (used to test resuming).
    /// </summary>
    public TrainingResult Run(bool resume, int? stopAfterStep = null)
    {
        var r = _recipe;
        Directory.CreateDirectory(_outDir);
        string ckptDir = Path.Combine(_outDir, "checkpoint");
        string logPath = Path.Combine(_outDir, "training_log.txt");
        var config = GptParameters.Config(r, _tokenizer.VocabSize, _tokenizer.EosId);

        ModelWeights weights;
        int startStep = 0;
        AdamW adam;
        if (resume && File.Exists(Path.Combine(ckptDir, OptimizerFile)))
        {
            (weights, adam, startStep) = LoadCheckpoint(config, ckptDir);
        }
        else
        {
            if (resume) _progress.WriteLine($"no checkpoint in {ckptDir}: starting from step 0");
            weights = GptParameters.Initialize(config, r.Seed, r.InitStd);
            adam = new AdamW(GptParameters.List(config, weights), r.Beta1, r.Beta2, r.AdamEps, r.WeightDecay);
            File.WriteAllText(logPath, "");
        }
        var parameters = GptParameters.List(config, weights);
        using var log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        void Log(string line) { _progress.WriteLine(line); log.WriteLine(line); }

        var model = new Transformer(config, weights, CpuBackend.Instance, _tokenizer);
        var packer = new RowPacker(_tokenizer, _documents, r.RowTokens, r.Seed);
        Log($"# {r.Name}: {config.Layers} layers, d={config.Hidden}, {config.Heads} heads, {config.MaxPositions} positions, vocab {config.VocabSize}, " +
            $"{weights.ParameterCount:N0} parameters; corpus {_documents.Count:N0} documents, {packer.TotalTokens:N0} tokens per epoch; " +
            $"{r.Steps} steps of {r.BatchRows} rows × ≤{r.RowTokens} tokens; start step {startStep}");

        using var rows = packer.Rows().GetEnumerator();
        for (long skip = (long)startStep * r.BatchRows; skip > 0; skip--) rows.MoveNext();

        var grads = new ParameterGrads();
        var gradArrays = parameters.Select(p => grads.For(p.Values)).ToArray();
        var clock = Stopwatch.StartNew();
        long tokens = 0, windowTokens = 0; double windowLoss = 0; int windowSteps = 0; double lastLoss = double.NaN;
        var windowClock = Stopwatch.StartNew();
        for (int step = startStep; step < r.Steps; step++)
        {
            var batchRows = new List<IReadOnlyList<int>>(r.BatchRows);
            for (int i = 0; i < r.BatchRows; i++) { rows.MoveNext(); batchRows.Add(rows.Current); }
            var batch = TokenBatch.RightPadded(batchRows, 0);

            grads.Clear();
            var (loss, predicted) = LanguageModelLoss.ForwardBackward(model, batch, grads);
            double norm = AdamW.GlobalNorm(gradArrays);
            double scale = r.GradClip > 0 && norm > r.GradClip ? r.GradClip / norm : 1.0;
            double lr = r.LearningRateAt(step);
            adam.Step(gradArrays, lr, scale);

            int batchTokens = batchRows.Sum(x => x.Count);
            tokens += batchTokens; windowTokens += batchTokens; windowLoss += loss; windowSteps++; lastLoss = loss;
            if (double.IsNaN(loss) || double.IsInfinity(loss)) throw new KeditException($"training diverged at step {step + 1}: loss {loss}");
            if ((step + 1) % r.LogEvery == 0 || step + 1 == r.Steps)
            {
                double secs = windowClock.Elapsed.TotalSeconds;
                Log(string.Create(CultureInfo.InvariantCulture,
                    $"step {step + 1,6}/{r.Steps} | loss {windowLoss / windowSteps:F4} | lr {lr:E2} | grad norm {norm:F3} | {windowTokens / Math.Max(secs, 1e-9):F0} tok/s | {clock.Elapsed:hh\\:mm\\:ss}"));
                windowLoss = 0; windowSteps = 0; windowTokens = 0; windowClock.Restart();
            }
            if (step + 1 == stopAfterStep)
            {
                SaveCheckpoint(config, weights, adam, ckptDir, step + 1);
                return new TrainingResult(step + 1, lastLoss, clock.Elapsed.TotalSeconds, tokens, _outDir);
            }
            if ((step + 1) % r.CheckpointEvery == 0 && step + 1 < r.Steps) SaveCheckpoint(config, weights, adam, ckptDir, step + 1);
        }
        GptParameters.Save(_modelDir, config, weights, new Dictionary<string, string> { ["kedit_recipe"] = r.Name, ["kedit_steps"] = r.Steps.ToString(CultureInfo.InvariantCulture) });
        if (Directory.Exists(ckptDir)) Directory.Delete(ckptDir, recursive: true);
        Log(string.Create(CultureInfo.InvariantCulture, $"# done: {r.Steps} steps, {tokens:N0} tokens this run, {clock.Elapsed.TotalSeconds:F0} s, final loss {lastLoss:F4}"));
        return new TrainingResult(r.Steps, lastLoss, clock.Elapsed.TotalSeconds, tokens, _outDir);
    }

    void SaveCheckpoint(ModelConfig config, ModelWeights weights, AdamW adam, string ckptDir, int step)
    {
        Directory.CreateDirectory(ckptDir);
        var parameters = GptParameters.List(config, weights);
        var meta = new Dictionary<string, string> { ["step"] = step.ToString(CultureInfo.InvariantCulture) };
        GptParameters.Save(ckptDir, config, weights, meta);
        var entries = new List<SafetensorsWriter.Entry>();
        for (int i = 0; i < parameters.Count; i++)
        {
            entries.Add(SafetensorsWriter.Entry.F32("m." + parameters[i].Name, parameters[i].Shape, adam.M[i]));
            entries.Add(SafetensorsWriter.Entry.F32("v." + parameters[i].Name, parameters[i].Shape, adam.V[i]));
        }
        // The optimizer file is written last: its presence marks a complete checkpoint.
        SafetensorsWriter.Write(Path.Combine(ckptDir, OptimizerFile), entries, meta);
    }

    (ModelWeights, AdamW, int) LoadCheckpoint(ModelConfig config, string ckptDir)
    {
        var loaded = Transformer.Load(ckptDir);
        var lc = loaded.Config;
        if (lc.Hidden != config.Hidden || lc.Layers != config.Layers || lc.Heads != config.Heads || lc.VocabSize != config.VocabSize || lc.MaxPositions != config.MaxPositions)
            throw new KeditException($"{ckptDir}: the checkpoint's shape does not match the recipe (delete the folder to start over)");
        var w = loaded.Weights;
        // The loader gives lm_head its own Linear over wte's array; rebuild the tied layout.
        var weights = GptParameters.Assemble(config, w.TokenEmbedding, w.PositionEmbedding!, w.Layers, w.FinalNormGamma, w.FinalNormBeta!);
        var parameters = GptParameters.List(config, weights);
        var adam = new AdamW(parameters, _recipe.Beta1, _recipe.Beta2, _recipe.AdamEps, _recipe.WeightDecay);
        string optPath = Path.Combine(ckptDir, OptimizerFile);
        using var store = TensorStore.OpenFile(optPath);
        if (!store.Metadata.TryGetValue("step", out var stepText) || !int.TryParse(stepText, CultureInfo.InvariantCulture, out int step))
            throw new KeditException($"{optPath}: metadata has no valid \"step\"");
        for (int i = 0; i < parameters.Count; i++)
        {
            string name = parameters[i].Name;
            if (!store.Contains("m." + name) || !store.Contains("v." + name)) throw new KeditException($"{optPath}: optimizer state for \"{name}\" is missing");
            store.ReadFloat32("m." + name, adam.M[i]);
            store.ReadFloat32("v." + name, adam.V[i]);
        }
        adam.StepsTaken = step;
        _progress.WriteLine($"resuming from {ckptDir} at step {step}");
        return (weights, adam, step);
    }
}
