using Kedit.Training;

namespace Kedit.Cli;

/// <summary><c>kedit train --recipe FILE [--out DIR] [--resume] [--prepare-only]</c>: trains a model from a recipe.</summary>
public static class TrainCommand
{
    /// <summary>Runs the command; returns the process exit code (0 ok, 1 error, 2 bad usage).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var a = new Args("train", args, new HashSet<string> { "resume", "prepare-only" });
        string recipe = a.Req("recipe");
        string? outDir = a.Opt("out");
        bool resume = a.Flag("resume"), prepareOnly = a.Flag("prepare-only");
        a.EnsureAllUsed();
        var result = TrainingPipeline.Run(recipe, outDir, resume, prepareOnly, stdout);
        if (result != null) stdout.WriteLine($"model written to {result.OutputDir} ({result.Steps} steps, final loss {result.FinalLoss:F4}, {result.Seconds:F0} s)");
        return 0;
    }
}
