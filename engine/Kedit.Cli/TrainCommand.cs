using Kedit.Training;

namespace Kedit.Cli;

/// <summary><c>kedit train --recipe FILE [--out DIR] [--resume] [--prepare-only]</c>: trains a model from a recipe.</summary>
public static class TrainCommand
{
    public const string Usage =
        "usage: kedit train --recipe FILE [--out DIR] [--resume] [--prepare-only]\n" +
        "  --recipe FILE    training recipe (JSON; e.g. models/factworld/recipe.json)\n" +
        "  --out DIR        model folder to write (default: the recipe's folder)\n" +
        "  --resume         continue from DIR/checkpoint when present\n" +
        "  --prepare-only   write the corpus and tokenizer, then stop";

    /// <summary>Runs the command; returns the process exit code (0 ok, 1 error, 2 bad usage).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? recipe = null, outDir = null;
        bool resume = false, prepareOnly = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--recipe" when i + 1 < args.Length: recipe = args[++i]; break;
                case "--out" when i + 1 < args.Length: outDir = args[++i]; break;
                case "--resume": resume = true; break;
                case "--prepare-only": prepareOnly = true; break;
                case "-h" or "--help": stdout.WriteLine(Usage); return 0;
                default:
                    stderr.WriteLine($"kedit train: unknown or incomplete option \"{args[i]}\"\n{Usage}");
                    return 2;
            }
        }
        if (recipe == null) { stderr.WriteLine($"kedit train: --recipe is required\n{Usage}"); return 2; }
        try
        {
            var result = TrainingPipeline.Run(recipe, outDir, resume, prepareOnly, stdout);
            if (result != null) stdout.WriteLine($"model written to {result.OutputDir} ({result.Steps} steps, final loss {result.FinalLoss:F4}, {result.Seconds:F0} s)");
            return 0;
        }
        catch (KeditException e)
        {
            stderr.WriteLine($"kedit train: {e.Message}");
            return 1;
        }
    }
}
