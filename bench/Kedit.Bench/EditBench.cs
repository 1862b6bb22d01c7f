using System.Diagnostics;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Bench;

/// <summary>
/// Per-edit latency on a GPT-2-small-sized random model, split into keys / z-optimisation / solve /
/// restraint, each next to its FLOP floor at the GEMM rate measured in the same run: ROME, a MEMIT
/// batch of 10, and sequential D4S edits (whose per-edit cost must not grow with past edits).
/// </summary>
public static class EditBench
{
    public static void Run(string[] args)
    {
        bool quick = args.Contains("quick");
        int d4sEdits = args.Select(a => a.StartsWith("d4s=") ? int.Parse(a[4..]) : 0).FirstOrDefault(n => n > 0, quick ? 10 : 100);
        // The sequential run is about the solve and restraint not growing with history; its z-optimisation
        // (history-independent, timed in the ROME/MEMIT rows at 20 steps) is shortened so 100 edits finish in minutes.
        int d4sSteps = args.Select(a => a.StartsWith("d4s-steps=") ? int.Parse(a[10..]) : 0).FirstOrDefault(n => n > 0, 5);
        double gemmRate = MeasureGemmRate();
        using var model = RandomModel.Gpt2();
        var c = model.Config;
        int[] layers = { 4, 5, 6 };
        var rng = new Random(5);
        Console.WriteLine($"edit latency: GPT-2-small-sized random model ({c.Layers}×{c.Hidden}, MLP {c.Intermediate}); layers {string.Join(",", layers)}; GEMM rate {gemmRate:F0} GFLOP/s");

        var sw = Stopwatch.StartNew();
        var stats = RandomStatistics(model, layers, rng);
        Console.WriteLine($"statistics: {stats.Count(layers[0])} tokens, {layers.Length} layers in {sw.Elapsed.TotalSeconds:F1}s");

        var requests = Enumerable.Range(0, Math.Max(10, d4sEdits)).Select(_ => RandomRequest(rng, c.VocabSize)).ToList();
        var templates = ContextTemplates.Bare; // rows are given as ids; templates are unused

        Console.WriteLine($"{"method",-22} {"keys",16} {"z-optimisation",18} {"solve",16} {"restraint",16} {"total",8}");
        // ROME, one edit.
        {
            var s = new EditSession(model, HParams.Parse(HParamsJson(c, new[] { 5 }), EditMethod.Rome), stats, templates);
            s.Apply(new[] { requests[0] }); // warm-up (factorises C once)
            s.RestoreOriginal();
            var step = Timed(() => s.Apply(new[] { requests[1] }), out double total);
            Print("rome (1 request)", step, total, 0, Floors(model, new[] { 5 }, 1, gemmRate, rome: true));
            s.RestoreOriginal();
        }
        // MEMIT, batch of 10.
        {
            var s = new EditSession(model, HParams.Parse(HParamsJson(c, layers), EditMethod.Memit), stats, templates);
            var step = Timed(() => s.Apply(requests.Take(10).ToList()), out double total);
            Print("memit (batch of 10)", step, total, 0, Floors(model, layers, 10, gemmRate));
            s.RestoreOriginal();
        }
        // D4S, sequential, with PRUNE's restraint materialised after each edit.
        {
            Console.WriteLine($"d4s+prune: {d4sEdits} sequential edits, z-optimisation {d4sSteps} steps (d4s-steps=N)");
            var s = new EditSession(model, HParams.Parse(HParamsJson(c, layers, d4sSteps), EditMethod.D4S), stats, templates, PruneMode.Log);
            var perEdit = new List<double>(); var restraints = new List<double>(); double edits = 0;
            for (int i = 0; i < d4sEdits; i++)
            {
                var step = Timed(() => s.Apply(new[] { requests[i] }), out double total);
                var rw = Stopwatch.StartNew();
                s.Materialise();
                double restraint = rw.Elapsed.TotalSeconds;
                s.Unmaterialise();
                perEdit.Add(step.SolveSeconds); restraints.Add(restraint); edits += total;
                if (i == 0 || i == d4sEdits / 2 || i == d4sEdits - 1)
                    Print($"d4s+prune edit #{i + 1}", step, total + restraint, restraint, Floors(model, layers, 1, gemmRate, keysSoFar: i + 1, steps: d4sSteps));
            }
            int q = Math.Max(1, d4sEdits / 4);
            // The line bench/peer's `d4s` op compares with (its per-edit time has no restraint).
            Console.WriteLine($"d4s: {d4sEdits} sequential edits in {edits:F1}s, {edits / d4sEdits:F2}s per edit without the restraint, {(edits + restraints.Sum()) / d4sEdits:F2}s with it");
            // D4S's own update is O(d·f + f²) whatever the history; PRUNE's restraint works on all m keys so far (O((d+f)m² + f²m)).
            Console.WriteLine($"d4s solve per edit: first {q} edits {perEdit.Take(q).Average() * 1000:F1} ms, last {q} edits {perEdit.TakeLast(q).Average() * 1000:F1} ms (ratio {perEdit.TakeLast(q).Average() / perEdit.Take(q).Average():F2})");
            Console.WriteLine($"prune restraint per materialisation: first {q} {restraints.Take(q).Average() * 1000:F1} ms, last {q} {restraints.TakeLast(q).Average() * 1000:F1} ms");
            s.RestoreOriginal();
        }
    }

    static EditStep Timed(Func<EditStep> f, out double seconds)
    {
        var sw = Stopwatch.StartNew();
        var r = f();
        seconds = sw.Elapsed.TotalSeconds;
        return r;
    }

    /// <summary>Key statistics over 64 random 64-token documents: more tokens than the key width, so C is positive definite.</summary>
    internal static Covariance RandomStatistics(Transformer model, int[] layers, Random rng)
    {
        var c = model.Config;
        var stats = new Covariance(layers, c.Intermediate);
        stats.Accumulate(model, Enumerable.Range(0, 64).Select(_ => Enumerable.Range(0, 64).Select(_ => rng.Next(c.VocabSize)).ToArray()));
        return stats;
    }

    /// <summary>The benches' hparams for a random model (ROME, MEMIT and D4S read the same fields).</summary>
    internal static string HParamsJson(ModelConfig c, int[] layers, int steps = 20) =>
        $$"""{"layers": [{{string.Join(",", layers)}}], "fact_token": "subject_last", "v_num_grad_steps": {{steps}}, "v_lr": 0.5, "v_loss_layer": {{c.Layers - 1}}, "v_weight_decay": 0.5, "clamp_norm_factor": 4, "kl_factor": 0.0625, "mom2_adjustment": true, "mom2_update_weight": 15000}""";

    /// <summary>A request given as token ids (random models have no tokenizer): prompt, 5 context rows, a KL row, a 2-token target.</summary>
    internal static PreparedRequest RandomRequest(Random rng, int vocab)
    {
        int[] R(int n) => Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
        var prompt = R(8);
        var groups = new List<IReadOnlyList<LookupRow>> { new[] { new LookupRow(prompt, 4) } };
        groups.Add(Enumerable.Range(0, 5).Select(_ => { var pre = R(6); return new LookupRow(pre.Concat(prompt).ToArray(), 10); }).ToList());
        return new PreparedRequest(groups, new[] { new LookupRow(R(7), 4) }, new LookupRow(prompt, 4), R(2));
    }

    /// <summary>FLOP floors (seconds at the measured GEMM rate) of keys, z, solve, restraint.</summary>
    static (double Keys, double Z, double Solve, double Restraint) Floors(Transformer m, int[] layers, int n, double rate, bool rome = false, int keysSoFar = 0, int steps = 20)
    {
        var c = m.Config;
        double perLayer = 2.0 * 12 * c.Hidden * c.Hidden; // flops per token per block
        int tokens = 6 * 14 + 7; // context rows + KL row per request
        double keys = n * tokens * perLayer * (layers.Sum(l => l + 1) + layers[^1] + 1);
        int above = c.Layers - 1 - layers[^1];
        double z = n * steps * tokens * (2 * perLayer * above + 4.0 * c.Hidden * c.VocabSize / tokens * 3); // fwd+bwd above ℓ*, logits at the target rows
        double f = c.Intermediate, d = c.Hidden;
        double solve = rome ? f * f * 2 + d * f : layers.Length * (2 * f * f * n + 2 * d * f * n + (keysSoFar > 0 ? f * f * n + 4 * d * f * n : 0));
        double restraint = keysSoFar > 0 ? layers.Length * (2 * (d + f) * keysSoFar * keysSoFar + Math.Pow(keysSoFar, 3) + 2 * f * f * keysSoFar) : 0;
        return (keys / rate / 1e9, z / rate / 1e9, solve / rate / 1e9, restraint / rate / 1e9);
    }

    static void Print(string name, EditStep s, double total, double restraint, (double Keys, double Z, double Solve, double Restraint) floor)
    {
        static string Cell(double t, double f) => $"{t * 1000,7:F1}ms ({f * 1000:F1})";
        Console.WriteLine($"{name,-22} {Cell(s.KeySeconds, floor.Keys),16} {Cell(s.TargetSeconds, floor.Z),18} {Cell(s.SolveSeconds, floor.Solve),16} {Cell(restraint, floor.Restraint),16} {total * 1000,6:F0}ms");
    }

    static double MeasureGemmRate()
    {
        int n = 1024;
        var a = RandomModel.Rand(n * n, 1, 1); var b = RandomModel.Rand(n * n, 2, 1); var cc = new float[n * n];
        Kedit.Kernels.Cpu.Gemm.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, cc, n);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 3; i++) Kedit.Kernels.Cpu.Gemm.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, cc, n);
        return 3 * 2.0 * n * n * n / sw.Elapsed.TotalSeconds / 1e9;
    }
}
