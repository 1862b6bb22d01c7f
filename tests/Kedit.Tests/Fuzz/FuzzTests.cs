using Xunit;
using Kedit.Fuzz;
using Xunit.Abstractions;

namespace Kedit.Tests.Fuzz;

/// <summary>
/// The seeded slice of the fuzz harness that runs with the suite: 1,024 mutated inputs across every
/// input kind, in process. Each must end valid or as a one-line error naming the file or option;
/// none may throw past the CLI, run past the timeout or allocate beyond the cap. The long run is
/// `./build.sh bench fuzz N` (bench/Kedit.Bench/FuzzBench.cs), which also runs cases as processes.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    const int Seed = 13, Cases = 1024;

    [Fact]
    public void EveryMutatedInputEndsValidOrAsANamedError()
    {
        using var harness = new FuzzHarness(TestPaths.Repo, Seed, Kedit.Cli.Cli.Run);
        var results = Enumerable.Range(0, Cases).Select(i => harness.RunInProcess(i, Kedit.Cli.Cli.Run, TimeSpan.FromSeconds(60))).ToList();
        output.WriteLine(FuzzHarness.Summary(results));
        var failures = results.Where(r => r.Outcome is FuzzOutcome.Crash or FuzzOutcome.Hang or FuzzOutcome.OverCap or FuzzOutcome.UnnamedError).ToList();
        foreach (var f in failures.Take(40))
            output.WriteLine($"case {f.Case.Index} [{f.Case.Kind}] {f.Case.Mutation}: {f.Outcome} {f.Detail}");
        Assert.True(failures.Count == 0, $"{failures.Count} failing cases, first: case {failures.FirstOrDefault()?.Case.Index} [{failures.FirstOrDefault()?.Case.Kind}] {failures.FirstOrDefault()?.Case.Mutation}: {failures.FirstOrDefault()?.Detail}");
        // The harness must be able to tell: every kind produced refusals, and mutations that stay valid ran to the end.
        // (A .txt corpus is any text: its cases can only end valid, or refused as empty.)
        foreach (var kind in FuzzHarness.Kinds.Where(k => k is not "corpus.txt"))
            Assert.True(results.Any(r => r.Case.Kind == kind && r.Outcome == FuzzOutcome.CleanError), $"no clean error for {kind}");
        Assert.Contains(results, r => r.Outcome == FuzzOutcome.Valid);
    }

    [Fact]
    public void CasesAreDeterministic()
    {
        using var a = new FuzzHarness(TestPaths.Repo, Seed, Kedit.Cli.Cli.Run);
        for (int i = 0; i < 64; i++)
        {
            var x = a.Make(i, Path.Combine(a.Root, "x", i.ToString()));
            var y = a.Make(i, Path.Combine(a.Root, "y", i.ToString()));
            Assert.Equal(x.Mutation, y.Mutation);
            Assert.Equal(x.Kind, y.Kind);
            if (File.Exists(x.MutatedFile)) Assert.Equal(File.ReadAllBytes(x.MutatedFile), File.ReadAllBytes(y.MutatedFile));
        }
    }
}
