using Xunit;

namespace Kedit.Tests;

/// <summary>Where test data lives: fixtures copied into the repo, and the optional ../shared folder.</summary>
public static class TestPaths
{
    public static string Repo { get; } = FindRepo();

    /// <summary>Golden fixtures committed under tests/fixtures (copied from shared/fixtures).</summary>
    public static string Fixtures => Path.Combine(Repo, "tests", "fixtures");

    public static string Fixture(params string[] parts) => Path.Combine(new[] { Fixtures }.Concat(parts).ToArray());

    /// <summary>The workplace's shared folder beside the repository (not committed; may be absent).</summary>
    public static string Shared => Path.GetFullPath(Path.Combine(Repo, "..", "shared"));

    /// <summary>Path inside ../shared; skips the test, saying why, when it is absent.</summary>
    public static string RequireShared(params string[] parts)
    {
        string p = Path.Combine(new[] { Shared }.Concat(parts).ToArray());
        Skip.IfNot(File.Exists(p) || Directory.Exists(p), $"skipped: {p} is absent (the ../shared folder is not part of a clone)");
        return p;
    }

    static string FindRepo()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root (Engine.sln) above " + AppContext.BaseDirectory);
    }
}
