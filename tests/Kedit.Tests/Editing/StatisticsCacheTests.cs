using System.Security.Cryptography;
using Kedit.Editing;
using Xunit;
using static Kedit.Tests.Editing.EditCliTests;

namespace Kedit.Tests.Editing;

/// <summary>
/// Where the key statistics are cached: the user's cache folder, never a model directory. The
/// commands that write files leave tests/fixtures and a read-only model directory byte for byte as they were.
/// </summary>
public class StatisticsCacheTests : IDisposable
{
    readonly string _tmp = Directory.CreateTempSubdirectory("kedit-cache-test-").FullName;

    /// <summary>Every file under a folder (hidden ones too) with the SHA-256 of its bytes, by relative path.</summary>
    static List<string> Snapshot(string dir) => Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        .Select(f => $"{Path.GetRelativePath(dir, f)} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}")
        .Order(StringComparer.Ordinal).ToList();

    static void AssertUnchanged(List<string> before, string dir)
    {
        var after = Snapshot(dir);
        var changed = before.Except(after).Concat(after.Except(before)).ToList();
        Assert.True(changed.Count == 0, $"{dir} changed: {string.Join("; ", changed.Take(5))}");
    }

    /// <summary>The fixture check can fail: it sees a file added (hidden too), changed in one byte or removed.</summary>
    [Fact]
    public void SnapshotComparisonSeesAddedChangedRemovedAndHiddenFiles()
    {
        string dir = Path.Combine(_tmp, "snap");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(Path.Combine(dir, "sub", "a.bin"), new byte[] { 1, 2, 3 });
        var before = Snapshot(dir);
        AssertUnchanged(before, dir);
        void Fails(string file) => Assert.Contains(file, Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertUnchanged(before, dir)).Message);

        File.WriteAllBytes(Path.Combine(dir, "sub", "a.bin"), new byte[] { 1, 2, 4 });
        Fails(Path.Combine("sub", "a.bin"));         // one byte changed
        File.WriteAllBytes(Path.Combine(dir, "sub", "a.bin"), new byte[] { 1, 2, 3 });
        AssertUnchanged(before, dir);
        Directory.CreateDirectory(Path.Combine(dir, ".kedit-cache"));
        File.WriteAllText(Path.Combine(dir, ".kedit-cache", "stats.safetensors"), "");
        Fails(Path.Combine(".kedit-cache", "stats.safetensors")); // an empty file in a hidden folder added
        Directory.Delete(Path.Combine(dir, ".kedit-cache"), true);
        File.Delete(Path.Combine(dir, "sub", "a.bin"));
        Fails(Path.Combine("sub", "a.bin"));         // removed
    }

    [Fact]
    public void CacheFolderIsKeditCacheDirThenXdgCacheHomeThenHomeCache()
    {
        Assert.Equal(Path.GetFullPath("/tmp/mine"), KeyStatistics.CacheDirectory("/tmp/mine", "/xdg", "/home/u"));
        Assert.Equal(Path.GetFullPath("/xdg/kedit"), KeyStatistics.CacheDirectory(null, "/xdg", "/home/u"));
        Assert.Equal(Path.GetFullPath("/home/u/.cache/kedit"), KeyStatistics.CacheDirectory("", "", "/home/u"));
        // The suite's own: a temporary folder, so a run writes nothing anywhere else.
        Assert.Equal(TestCache.Directory, KeyStatistics.CacheDirectory());
    }

    [Fact]
    public void FileWritingCommandsLeaveTheFixturesUnchanged()
    {
        string model = TestPaths.Fixture("gpt2"), stats = Path.Combine(_tmp, "stats.safetensors"), edited = Path.Combine(_tmp, "edited");
        var before = Snapshot(TestPaths.Fixtures);
        var r = EditCliTests.Kedit("stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats);
        Assert.True(r.Code == 0, r.Err);
        r = EditCliTests.Kedit("edit", "--model", model, "--method", "d4s", "--hparams", Data("d4s.json"), "--requests", Data("requests.json"),
            "--corpus", Data("corpus.jsonl"), "--sequential", "--batch-size", "1", "--out", edited);
        Assert.True(r.Code == 0, r.Err);
        r = EditCliTests.Kedit("eval", "--model", edited, "--requests", Data("requests.json"), "--original", model, "--corpus", Data("corpus.jsonl"), "--out", Path.Combine(_tmp, "report.json"));
        Assert.True(r.Code == 0, r.Err);
        r = EditCliTests.Kedit("trace", "--model", model, "--prompt", "hello there", "--out", Path.Combine(_tmp, "trace.safetensors"));
        Assert.True(r.Code == 0, r.Err);
        r = EditCliTests.Kedit("rollback", "--journal", edited, "--out", Path.Combine(_tmp, "original"));
        Assert.True(r.Code == 0, r.Err);
        AssertUnchanged(before, TestPaths.Fixtures);
    }

    [Fact]
    public void AReadOnlyModelDirectoryIsNeverWrittenAndAnOlderCacheInsideItIsIgnored()
    {
        string model = Path.Combine(_tmp, "model");
        Directory.CreateDirectory(model);
        foreach (var f in Directory.EnumerateFiles(TestPaths.Fixture("gpt2"))) File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        // An older kedit kept its cache here, under the same key; those files are not statistics any more this version reads.
        string key = KeyStatistics.CacheKey(model, new[] { 1, 2 }, Data("corpus.jsonl"), null);
        Directory.CreateDirectory(Path.Combine(model, ".kedit-cache"));
        File.WriteAllText(Path.Combine(model, ".kedit-cache", $"stats-{key}.safetensors"), "not statistics");
        var before = Snapshot(model);
        // Read-only for a normal user (as root the bits do not bind: the snapshot comparison is the check that always does).
        var modes = Directory.EnumerateFileSystemEntries(model, "*", SearchOption.AllDirectories).Append(model).ToDictionary(p => p, File.GetUnixFileMode);
        foreach (var (p, m) in modes) File.SetUnixFileMode(p, m & ~(UnixFileMode.UserWrite | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite));
        try
        {
            string stats = Path.Combine(_tmp, "stats.safetensors");
            var r = EditCliTests.Kedit("stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", stats);
            Assert.True(r.Code == 0, r.Err);
            Assert.True(File.Exists(KeyStatistics.CachePath(key)), $"no statistics cached under {TestCache.Directory}");
            // Content-keyed: the same model, layers and corpus find them again.
            r = EditCliTests.Kedit("stats", "--model", model, "--layers", "1,2", "--corpus", Data("corpus.jsonl"), "--out", Path.Combine(_tmp, "again.safetensors"));
            Assert.True(r.Code == 0, r.Err);
            Assert.Contains($"statistics: cached {KeyStatistics.CachePath(key)}", r.Err);
            Assert.Equal(File.ReadAllBytes(stats), File.ReadAllBytes(Path.Combine(_tmp, "again.safetensors")));
            r = EditCliTests.Kedit("edit", "--model", model, "--method", "memit", "--hparams", Data("memit.json"), "--requests", Data("requests.json"),
                "--corpus", Data("corpus.jsonl"), "--out", Path.Combine(_tmp, "edited"));
            Assert.True(r.Code == 0, r.Err);
            AssertUnchanged(before, model);
        }
        finally { foreach (var (p, m) in modes) File.SetUnixFileMode(p, m); }
    }

    public void Dispose() { try { Directory.Delete(_tmp, true); } catch (IOException) { } }
}
