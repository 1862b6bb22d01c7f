using System.Diagnostics;
using Kedit.Backends.Ort;
using Kedit.IO.Onnx;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// The engine's CPU backend against ONNX Runtime's CPU provider on the same GPT-2-small-sized random
/// model (exported by kedit), in one run: prefill tokens/s, cached decode tokens/s, and the cost of
/// publishing an edit (binding a new down-projection set) to the ORT session.
/// </summary>
public static class OrtBench
{
    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        int[] edited = [c.Layers / 2];
        string onnx = Path.Combine(Path.GetTempPath(), $"kedit-bench-{Guid.NewGuid():N}.onnx");
        try
        {
            var export = Stopwatch.StartNew();
            OnnxExporter.Export(model, onnx, new OnnxExportOptions { EditedLayers = edited });
            Console.WriteLine($"ort: GPT-2-small-sized random model ({c.Layers} layers, {c.Hidden} wide, vocab {c.VocabSize}), {Environment.ProcessorCount} cores; export {export.Elapsed.TotalSeconds:F1} s");
            Console.WriteLine("     (ORT computes logits for every prompt position, the engine for the last only: the graph's one output)");
            var original = OrtWeightSet.DownProjections(model, edited);
            using var ort = new OrtDecoder(onnx, c, original);
            var rng = new Random(5);
            Console.WriteLine($"{"case",-30} {"kedit cpu",10} {"ort cpu",10} {"ort/kedit",10}");
            foreach (int T in quick ? new[] { 64 } : new[] { 64, 512 })
            {
                var ids = Enumerable.Range(0, T).Select(_ => rng.Next(c.VocabSize)).ToArray();
                double ours = Rate(T, quick, () => model.Forward(TokenBatch.Single(ids), new ForwardOptions { Logits = LogitsMode.Last }));
                double theirs = Rate(T, quick, () => { using var cache = ort.CreateCache(); ort.Forward(ids, cache); });
                Console.WriteLine($"{"prefill " + T + " tokens (tok/s)",-30} {ours,10:F0} {theirs,10:F0} {theirs / ours,10:F2}");
            }
            {
                int prompt = 32, steps = quick ? 16 : 64;
                var ids = Enumerable.Range(0, prompt).Select(_ => rng.Next(c.VocabSize)).ToArray();
                var options = new GenerationOptions { MaxNewTokens = steps, StopTokens = new HashSet<int>() };
                double ours = Rate(steps, quick, () => Generator.Generate(model, ids, options));
                double theirs = Rate(steps, quick, () => Generator.Generate(ort, c, ids, options));
                Console.WriteLine($"{"decode, 32-token prompt (tok/s)",-30} {ours,10:F1} {theirs,10:F1} {theirs / ours,10:F2}");
            }
            {
                // Publishing = wrapping the engine's arrays in OrtValues and swapping the set; no session rebuild.
                int reps = 1000;
                var sw = Stopwatch.StartNew();
                for (int r = 0; r < reps; r++) ort.Publish(OrtWeightSet.DownProjections(model, edited))?.Dispose();
                Console.WriteLine($"publish an edit ({edited.Length} layer): {sw.Elapsed.TotalMilliseconds * 1000 / reps:F1} µs");
            }
        }
        finally { File.Delete(onnx); File.Delete(onnx + ".data"); }
    }

    /// <summary>Units per second of <paramref name="run"/> (which does <paramref name="units"/>), after one warm-up call.</summary>
    static double Rate(int units, bool quick, Action run)
    {
        run();
        int reps = quick ? 2 : 4;
        var sw = Stopwatch.StartNew();
        for (int r = 0; r < reps; r++) run();
        return units * reps / sw.Elapsed.TotalSeconds;
    }
}
