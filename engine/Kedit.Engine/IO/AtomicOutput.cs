using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kedit.IO;

/// <summary>
/// Every output kedit writes goes through here, so that a run killed at any instant leaves either
/// the previous output or the new one complete, never a mix and never nothing.
/// <list type="bullet">
/// <item>Files: written to <c>.NAME.kedit-tmp-PID-ID</c> in the same folder, fsynced, renamed over NAME.</item>
/// <item>Directories: built in a staging sibling <c>.NAME.kedit-tmp-PID-ID</c>, then swapped with the
/// old output in one <c>renameat2(RENAME_EXCHANGE)</c>; the old one, now under the staging name, is
/// deleted. Where the swap is unsupported (not Linux, or a file system without it) the old output is
/// renamed to <c>.NAME.kedit-old-PID-ID</c> first; a run killed between the two renames is repaired by
/// the next run for the same output, which moves the old output back.</item>
/// <item>Several files into one existing folder (<c>train --out</c>): staged, then a manifest
/// <c>.kedit-commit.json</c> is written before the renames; a run killed after it is rolled forward by
/// the next command that opens the folder (<see cref="Recover"/>).</item>
/// </list>
/// Staging left by killed runs (the PID in its name no longer runs) is deleted by the next run that
/// writes beside it. Durability is against process death; directory entries are not fsynced.
/// Test hook: with KEDIT_FAULT_KILL_AT=N the process SIGKILLs itself just before its N-th
/// rename, copy or delete here (the fault-injection tests walk N = 1, 2, …).
/// </summary>
public static class AtomicOutput
{
    const string TmpTag = ".kedit-tmp-", OldTag = ".kedit-old-";
    /// <summary>Marks a folder kedit committed, so a later run may replace it (and no other non-empty folder).</summary>
    public const string MarkerName = ".kedit-output";
    public const string ManifestName = ".kedit-commit.json";

    // ---- files ----------------------------------------------------------------------------------

    /// <summary>Writes <paramref name="path"/> through a fsynced temporary file and a rename.</summary>
    public static void WriteFile(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new KeditException($"cannot write '{path}': directory '{dir}' does not exist");
        if (Directory.Exists(full)) throw new KeditException($"cannot write '{path}': it is a directory");
        CleanStale(full);
        string tmp = TempName(full);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            Step("rename file");
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(tmp); } catch (Exception) { /* best effort: the original error matters more */ }
            if (e is IOException or UnauthorizedAccessException) throw new KeditException($"cannot write '{path}': {e.Message}", e);
            throw;
        }
    }

    public static void WriteAllText(string path, string text) => WriteFile(path, s => s.Write(Encoding.UTF8.GetBytes(text)));

    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/> atomically (temp file, fsync, rename).</summary>
    public static void CopyFile(string source, string destination) =>
        WriteFile(destination, s => { Step("copy"); using var src = File.OpenRead(source); src.CopyTo(s); });

    // ---- directories ----------------------------------------------------------------------------

    /// <summary>
    /// A fresh staging directory next to <paramref name="outDir"/> (same file system, so the commit is
    /// a rename). First repairs an interrupted replacement of outDir and deletes stale staging.
    /// </summary>
    public static string CreateStaging(string outDir)
    {
        string full = Path.GetFullPath(outDir.TrimEnd('/', '\\'));
        string parent = Path.GetDirectoryName(full) ?? throw new KeditException($"{outDir}: invalid output directory");
        if (File.Exists(full)) throw new KeditException($"{outDir}: exists and is a file, not a directory");
        Directory.CreateDirectory(parent);
        RestoreInterrupted(full);
        CleanStale(full);
        string staging = TempName(full);
        Directory.CreateDirectory(staging);
        return staging;
    }

    /// <summary>
    /// Checks before any work that <see cref="CommitDirectory"/> will be able to put an output at <paramref name="outDir"/>:
    /// not a file, not a foreign non-empty directory, no file in the way of its parent folders — so a long job does not
    /// fail at its very end.
    /// </summary>
    public static void CheckDirectoryTarget(string outDir, Func<string, bool> replaceable, string what)
    {
        string full = Path.GetFullPath(outDir.TrimEnd('/', '\\'));
        if (File.Exists(full)) throw new KeditException($"{outDir}: exists and is a file, not a directory");
        if (!IsReplaceable(full, replaceable)) throw new KeditException($"{outDir}: exists and is not {what}; refusing to replace it");
        CheckParents(full, outDir);
    }

    /// <summary>Checks before any work that a file can be written at <paramref name="path"/> (not a directory, no file in the way).</summary>
    public static void CheckFileTarget(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new KeditException($"{path}: is a directory; give a file name for the output");
        CheckParents(full, path);
    }

    static void CheckParents(string full, string shown)
    {
        for (string? p = Path.GetDirectoryName(full); p != null && !Directory.Exists(p); p = Path.GetDirectoryName(p))
            if (File.Exists(p)) throw new KeditException($"{shown}: {p} is a file, so the output cannot be created under it");
    }

    static bool IsReplaceable(string full, Func<string, bool> replaceable) =>
        !Directory.Exists(full) || !Directory.EnumerateFileSystemEntries(full).Any() || File.Exists(Path.Combine(full, MarkerName)) || replaceable(full);

    /// <summary>
    /// Puts a complete staging directory in place of <paramref name="outDir"/>. An existing output is
    /// replaced only when it is empty, carries the marker of a kedit output, or <paramref name="replaceable"/>
    /// recognises it (outputs of kedit versions before the marker).
    /// </summary>
    public static void CommitDirectory(string stagingDir, string outDir, Func<string, bool> replaceable, string what)
    {
        string full = Path.GetFullPath(outDir.TrimEnd('/', '\\'));
        File.WriteAllText(Path.Combine(stagingDir, MarkerName), $"{what}\n");
        if (!Directory.Exists(full))
        {
            Step("rename directory");
            Directory.Move(stagingDir, full);
            return;
        }
        if (!IsReplaceable(full, replaceable))
            throw new KeditException($"{outDir}: exists and is not {what}; refusing to replace it");
        Step("exchange directories");
        if (!TwoRenamesForced() && TryExchange(stagingDir, full))
        {
            Step("delete the old output");
            Directory.Delete(stagingDir, recursive: true); // now the old output
            return;
        }
        string old = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}{OldTag}{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.Move(full, old);
        Step("rename directory");
        Directory.Move(stagingDir, full);
        Step("delete the old output");
        Directory.Delete(old, recursive: true);
    }

    public static void Abandon(string stagingDir)
    {
        try { if (Directory.Exists(stagingDir)) Directory.Delete(stagingDir, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    // ---- several files into one folder ----------------------------------------------------------

    /// <summary>
    /// Moves <paramref name="names"/> from <paramref name="stagingDir"/> into <paramref name="outDir"/>
    /// as one unit: the manifest goes first, so a kill part-way is finished by <see cref="Recover"/>.
    /// </summary>
    public static void CommitFiles(string stagingDir, string outDir, IReadOnlyList<string> names)
    {
        var manifest = new JsonObject
        {
            ["staging"] = Path.GetFileName(stagingDir),
            ["files"] = new JsonArray(names.Select(n => (JsonNode)n).ToArray()),
        };
        WriteAllText(Path.Combine(outDir, ManifestName), manifest.ToJsonString());
        RollForward(outDir, Path.GetFileName(stagingDir), names);
    }

    /// <summary>Finishes a <see cref="CommitFiles"/> that a killed run left part-way (no-op when none is pending).</summary>
    public static void Recover(string outDir)
    {
        string path = Path.Combine(outDir, ManifestName);
        if (!File.Exists(path)) return;
        string staging;
        List<string> names;
        using (var doc = StrictJson.ReadFile(path, "pending commit"))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("staging", out var s) || s.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("files", out var f) || f.ValueKind != JsonValueKind.Array || f.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
                throw new KeditException($"{path}: field 'staging' or 'files' is missing or of the wrong type; delete the file if the folder is otherwise complete");
            staging = s.GetString()!;
            names = f.EnumerateArray().Select(x => x.GetString()!).ToList();
        }
        // Only plain names in the output's own parent: a manifest must not move files from elsewhere.
        if (!staging.StartsWith('.') || !staging.Contains(TmpTag) || staging.IndexOfAny(new[] { '/', '\\' }) >= 0 || names.Any(n => n.Length == 0 || n != Path.GetFileName(n) || n is "." or ".."))
            throw new KeditException($"{path}: field 'staging' or 'files' names a path outside the folder");
        RollForward(outDir, staging, names);
    }

    static void RollForward(string outDir, string stagingName, IReadOnlyList<string> names)
    {
        string staging = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outDir.TrimEnd('/', '\\')))!, stagingName);
        foreach (var n in names)
        {
            string from = Path.Combine(staging, n);
            if (!File.Exists(from)) continue; // moved before the kill
            Step("rename file");
            File.Move(from, Path.Combine(outDir, n), overwrite: true);
        }
        Step("delete the manifest");
        File.Delete(Path.Combine(outDir, ManifestName));
        Abandon(staging);
    }

    // ---- staging names, stale staging, interrupted replacements ---------------------------------

    static string TempName(string full) =>
        Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}{TmpTag}{Environment.ProcessId}-{Guid.NewGuid():N}");

    /// <summary>The PID in a staging name, or null when the name is not one of ours.</summary>
    static int? OwnerPid(string name, string tag)
    {
        int at = name.LastIndexOf(tag, StringComparison.Ordinal);
        if (at < 0) return null;
        string rest = name[(at + tag.Length)..];
        int dash = rest.IndexOf('-');
        return dash > 0 && int.TryParse(rest[..dash], out int pid) ? pid : null;
    }

    static bool Running(int pid)
    {
        if (pid == Environment.ProcessId) return true;
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Deletes staging of <paramref name="full"/> left by runs that no longer run (unless a pending manifest still needs it).</summary>
    static void CleanStale(string full)
    {
        string dir = Path.GetDirectoryName(full)!, prefix = $".{Path.GetFileName(full)}{TmpTag}";
        if (!Directory.Exists(dir)) return;
        string? pending = PendingStaging(full);
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir, prefix + "*"))
        {
            string name = Path.GetFileName(entry);
            if (name == pending || OwnerPid(name, TmpTag) is not int pid || Running(pid)) continue;
            try
            {
                if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                else File.Delete(entry);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* another run may be cleaning it too */ }
        }
    }

    static string? PendingStaging(string full)
    {
        string manifest = Path.Combine(full, ManifestName);
        if (!File.Exists(manifest)) return null;
        try { using var doc = StrictJson.ReadFile(manifest); return doc.RootElement.TryGetProperty("staging", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null; }
        catch (KeditException) { return null; }
    }

    /// <summary>After a two-rename replacement killed between its renames: the old output goes back in place.</summary>
    static void RestoreInterrupted(string full)
    {
        string dir = Path.GetDirectoryName(full)!, prefix = $".{Path.GetFileName(full)}{OldTag}";
        foreach (var old in Directory.EnumerateDirectories(dir, prefix + "*").Order(StringComparer.Ordinal))
        {
            if (OwnerPid(Path.GetFileName(old), OldTag) is not int pid || Running(pid)) continue;
            if (!Directory.Exists(full)) { Step("restore the old output"); Directory.Move(old, full); }
            else Directory.Delete(old, recursive: true); // the new output made it in: the old one was only not yet deleted
        }
    }

    // ---- the swap and the fault hook ------------------------------------------------------------

    const uint RenameExchange = 2;

    [DllImport("libc", EntryPoint = "renameat2", SetLastError = true)]
    static extern int RenameAt2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    /// <summary>Swaps two directories in one step (Linux ≥ 3.15 on ext4, xfs, btrfs, tmpfs, …); false where unsupported.</summary>
    static bool TryExchange(string a, string b)
    {
        if (!OperatingSystem.IsLinux()) return false;
        const int AtFdCwd = -100;
        try { return RenameAt2(AtFdCwd, a, AtFdCwd, b, RenameExchange) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    static bool TwoRenamesForced() => Environment.GetEnvironmentVariable("KEDIT_FAULT_TWO_RENAMES") == "1";

    static int _steps;

    /// <summary>Counts an output step; KEDIT_FAULT_KILL_AT=N kills the process (SIGKILL) before the N-th.</summary>
    static void Step(string what)
    {
        string? at = Environment.GetEnvironmentVariable("KEDIT_FAULT_KILL_AT");
        if (at == null) return;
        int n = Interlocked.Increment(ref _steps);
        if (int.TryParse(at, out int kill) && n == kill)
        {
            Console.Error.WriteLine($"kedit: fault injection: killed before step {n} ({what})");
            Console.Error.Flush();
            Process.GetCurrentProcess().Kill();
        }
    }
}
