using System.Runtime.CompilerServices;
using Kedit.Editing;

namespace Kedit.Tests;

/// <summary>
/// The suite's statistics cache is a temporary folder of its own (through KEDIT_CACHE_DIR, which the
/// CLI processes the tests start inherit): a run neither reads a developer's ~/.cache/kedit nor
/// leaves files behind.
/// </summary>
static class TestCache
{
    public static string Directory { get; } = Path.Combine(Path.GetTempPath(), $"kedit-test-cache-{Environment.ProcessId}");

    [ModuleInitializer]
    internal static void PointTheCacheAtATemporaryFolder()
    {
        Environment.SetEnvironmentVariable(KeyStatistics.CacheDirectoryVariable, Directory);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { System.IO.Directory.Delete(Directory, recursive: true); }
            catch (DirectoryNotFoundException) { }
        };
    }
}
