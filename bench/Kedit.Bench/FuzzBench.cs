using System.Diagnostics;
using Kedit.Fuzz;

namespace Kedit.Bench;

/// <summary>
/// `fuzz [N] [processes=M] [seed=S] [heap=MB] [timeout=SEC] [dll=PATH] [case=K]`: the long fuzz run. N cases run in this
/// process through Cli.Run (timeout and allocation cap per case); then M cases, drawn from the
/// same sequence after them, each run as its own `dotnet kedit.dll` process under
/// DOTNET_GCHeapHardLimit, killed past the timeout, classified by exit code and stderr (a stack
/// trace or an exit code other than 0/1/2 is a crash; an out-of-memory death is over the cap).
/// Prints the counts per input kind and every failing case; exit code 1 when any failed.
/// config.json cases (issue #21 owns its reader) are skipped in process and run only as processes.
/// </summary>
public static class FuzzBench
{
    public static int Run(string[] args)
    {
        int n = args.FirstOrDefault(a => int.TryParse(a, out _)) is string s ? int.Parse(s) : 10_000;
        string Opt(string name, string dflt) => args.FirstOrDefault(a => a.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..] ?? dflt;
        int processes = int.Parse(Opt("processes", "500")), seed = int.Parse(Opt("seed", "1"));
        long heap = long.Parse(Opt("heap", "1024")) << 20;
        var timeout = TimeSpan.FromSeconds(double.Parse(Opt("timeout", "60"), System.Globalization.CultureInfo.InvariantCulture));
        string repo = StoriesExperiment.FindRepo();
        string dll = Opt("dll", Path.Combine(repo, "engine", "Kedit.Cli", "bin", "Release", "net10.0", "kedit.dll"));

        using var harness = new FuzzHarness(repo, seed, Kedit.Cli.Cli.Run);
        if (Opt("case", "") is { Length: > 0 } one)
        {
            // Reproduces one case (of this seed) as a process, printing its command and outcome.
            var r = harness.RunInProcessOfItsOwn(int.Parse(one), dll, heap, timeout);
            Console.WriteLine($"case {r.Case.Index} [{r.Case.Kind}] {r.Case.Mutation} → {r.Outcome} (exit {r.ExitCode}, {r.Seconds:F1} s): {r.Detail}");
            return r.Outcome is FuzzOutcome.Valid or FuzzOutcome.CleanError ? 0 : 1;
        }
        Console.WriteLine($"fuzz: seed {seed}, {n} cases in process (timeout {timeout.TotalSeconds:0} s, heap cap {FuzzHarness.AllocationCap >> 20} MiB), " +
                          $"{processes} as processes (DOTNET_GCHeapHardLimit {heap >> 20} MiB); workspace {harness.Root}");
        var sw = Stopwatch.StartNew();
        var inProcess = new List<FuzzResult>(n);
        for (int i = 0; i < n; i++)
        {
            inProcess.Add(harness.RunInProcess(i, Kedit.Cli.Cli.Run, timeout));
            if ((i + 1) % 1000 == 0) Console.WriteLine($"  {i + 1} in-process cases, {sw.Elapsed.TotalSeconds:F0} s");
        }
        double inSecs = sw.Elapsed.TotalSeconds;
        sw.Restart();
        var own = new List<FuzzResult>(processes);
        if (processes > 0 && !File.Exists(dll)) { Console.Error.WriteLine($"fuzz: {dll} is missing (./build.sh build first)"); return 2; }
        for (int i = 0; i < processes; i++)
        {
            own.Add(harness.RunInProcessOfItsOwn(n + i, dll, heap, timeout));
            if ((i + 1) % 100 == 0) Console.WriteLine($"  {i + 1} process cases, {sw.Elapsed.TotalSeconds:F0} s");
        }
        double ownSecs = sw.Elapsed.TotalSeconds;

        Console.WriteLine($"\nin process: {n} cases in {inSecs:F0} s ({1000 * inSecs / Math.Max(n, 1):F0} ms/case)");
        Console.WriteLine(FuzzHarness.Summary(inProcess));
        if (processes > 0)
        {
            Console.WriteLine($"as processes: {processes} cases in {ownSecs:F0} s ({1000 * ownSecs / processes:F0} ms/case)");
            Console.WriteLine(FuzzHarness.Summary(own));
        }
        var failed = inProcess.Concat(own).Where(r => r.Outcome is not (FuzzOutcome.Valid or FuzzOutcome.CleanError)).ToList();
        foreach (var f in failed)
            Console.WriteLine($"FAIL case {f.Case.Index} [{f.Case.Kind}] {f.Case.Mutation} → {f.Outcome} (exit {f.ExitCode}): {f.Detail.Split('\n')[0]}\n    kedit {string.Join(' ', f.Case.Args.Select(a => a.Contains(' ') ? $"'{a}'" : a))}");
        Console.WriteLine($"{failed.Count} failing of {inProcess.Count + own.Count}");
        return failed.Count == 0 ? 0 : 1;
    }
}
