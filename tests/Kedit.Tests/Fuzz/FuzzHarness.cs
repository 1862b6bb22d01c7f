using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kedit.Fuzz;

/// <summary>What one fuzz case did.</summary>
public enum FuzzOutcome
{
    /// <summary>Exit 0: the mutated input was still valid.</summary>
    Valid,
    /// <summary>Exit 1 or 2 with one line on stderr that names the file (or the option) at fault.</summary>
    CleanError,
    /// <summary>Exit 1 or 2, one line, but the line names neither the file nor an option.</summary>
    UnnamedError,
    /// <summary>An exception escaped the CLI (a stack trace), or the process ended with another exit code.</summary>
    Crash,
    /// <summary>Ran past the case timeout.</summary>
    Hang,
    /// <summary>Allocated beyond the cap (in process: bytes allocated; in a process: killed by DOTNET_GCHeapHardLimit).</summary>
    OverCap,
}

/// <summary>One case: the input kind mutated, how, the command run and the file the error should name.</summary>
public sealed record FuzzCase(int Index, string Kind, string Mutation, string[] Args, string MutatedFile);

public sealed record FuzzResult(FuzzCase Case, FuzzOutcome Outcome, int ExitCode, string Detail, double Seconds);

/// <summary>
/// Seeded, deterministic fuzzing of every input kedit reads. A workspace holds valid base inputs
/// (the tests' GPT-2 fixture model, its statistics, an edit output with journal and step tensors,
/// requests, hparams, corpora, a training recipe); each case copies the workspace's view of one
/// input, mutates it — structured (a JSON value replaced by an extreme or malformed one, a key
/// deleted or duplicated, a safetensors header's dtype/shape/offsets changed, a shape transposed or
/// blown up) or by random bytes (flips, truncation, insertion, splices) — and runs the command that
/// reads it. Case i depends only on (seed, i). Outcomes are classified by <see cref="FuzzOutcome"/>.
/// </summary>
public sealed class FuzzHarness : IDisposable
{
    public static readonly string[] Kinds =
    {
        "requests", "hparams", "corpus.jsonl", "corpus.txt", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
        "config.json", "model.safetensors", "stats", "journal.json", "steps.safetensors", "original.safetensors", "recipe", "cli",
    };

    /// <summary>Cap on the managed heap one in-process case may add (the fixture model is 1.5 MB; a valid case holds tens of MB).</summary>
    public const long AllocationCap = 1L << 30;

    readonly string _root, _repo;
    readonly int _seed;
    string Base => Path.Combine(_root, "base");

    /// <summary>Builds the workspace under a fresh temp folder from the repository at <paramref name="repo"/>.</summary>
    /// <param name="run">runs the kedit CLI in process (args, stdout, stderr) → exit code; used to make the statistics and the edit output</param>
    public FuzzHarness(string repo, int seed, Func<string[], TextWriter, TextWriter, int> run)
    {
        _repo = repo;
        _seed = seed;
        _root = Directory.CreateTempSubdirectory("kedit-fuzz-").FullName;
        Directory.CreateDirectory(Base);
        string fixture = Path.Combine(repo, "tests", "fixtures", "gpt2"), data = Path.Combine(repo, "tests", "data", "gpt2-edit");
        string model = Path.Combine(Base, "model"), bpe = Path.Combine(Base, "bpe");
        Directory.CreateDirectory(model);
        Directory.CreateDirectory(bpe);
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            File.Copy(Path.Combine(fixture, f), Path.Combine(model, f));
        // A GPT-2 style tokenizer folder (vocab.json + merges.txt, no tokenizer.json).
        foreach (var f in new[] { "vocab.json", "merges.txt" }) File.Copy(Path.Combine(fixture, f), Path.Combine(bpe, f));

        var requests = JsonNode.Parse(File.ReadAllText(Path.Combine(data, "requests.json")))!.AsArray();
        File.WriteAllText(Path.Combine(Base, "requests.json"), new JsonArray(requests.Take(2).Select(r => r!.DeepClone()).ToArray()).ToJsonString());
        File.WriteAllText(Path.Combine(Base, "one-request.json"), new JsonArray(requests[0]!.DeepClone()).ToJsonString());
        // Few target steps, so that a mutation that stays valid runs a real edit in well under a second.
        foreach (var (name, file) in new[] { ("memit", "memit.json"), ("rome", "rome.json") })
        {
            var h = JsonNode.Parse(File.ReadAllText(Path.Combine(data, file)))!.AsObject();
            h["v_num_grad_steps"] = 2;
            File.WriteAllText(Path.Combine(Base, $"{name}.json"), h.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        var corpus = File.ReadLines(Path.Combine(data, "corpus.jsonl")).Take(4).ToList();
        File.WriteAllLines(Path.Combine(Base, "corpus.jsonl"), corpus);
        File.WriteAllLines(Path.Combine(Base, "corpus.txt"), new[] { "Paris is located in France.", "The home of Tom is Berlin.", "Once upon a time there was a cat." });

        // A recipe whose corpus is a few lines (no generator), a small vocabulary: --prepare-only trains a BPE in milliseconds.
        string recipeDir = Path.Combine(Base, "recipe");
        Directory.CreateDirectory(Path.Combine(recipeDir, "data"));
        File.WriteAllLines(Path.Combine(recipeDir, "data", "train.txt"), Enumerable.Range(0, 20).Select(i => $"story {i}: the cat sat on the mat and Tom went home."));
        File.WriteAllText(Path.Combine(recipeDir, "recipe.json"), """
            {"name": "tiny", "data_dir": "data", "corpus_generator": null, "train_file": "train.txt", "held_out_file": null,
             "required_tokens_file": null, "vocab_size": 300, "layers": 1, "hidden": 16, "heads": 2, "positions": 32,
             "steps": 2, "batch_rows": 2, "row_tokens": 16, "warmup_steps": 1, "checkpoint_every": 1000, "log_every": 1}
            """);

        var sink = new StringWriter();
        // Statistics of the whole test corpus (960 tokens for 256-wide keys: positive definite, as ROME needs).
        Require(run(new[] { "stats", "--model", model, "--layers", "1,2", "--corpus", Path.Combine(data, "corpus.jsonl"), "--out", Path.Combine(Base, "stats.safetensors") }, sink, sink), sink);
        Require(run(new[] { "edit", "--model", model, "--method", "memit", "--hparams", Path.Combine(Base, "memit.json"), "--requests", Path.Combine(Base, "requests.json"),
            "--stats", Path.Combine(Base, "stats.safetensors"), "--sequential", "--batch-size", "1", "--out", Path.Combine(Base, "edit") }, sink, sink), sink);
    }

    static void Require(int code, StringWriter log)
    {
        if (code != 0) throw new InvalidOperationException($"fuzz workspace: a setup command failed:\n{log}");
    }

    public string Root => _root;

    // ---- cases ----------------------------------------------------------------------------------

    /// <summary>Case <paramref name="index"/>: writes its mutated input under <paramref name="caseDir"/> and returns the command.</summary>
    public FuzzCase Make(int index, string caseDir)
    {
        // Not HashCode.Combine: it is randomised per process, so "seed 13, case 897" would name another case each run.
        var rng = new Random((int)((_seed * 1_000_003L + index) & int.MaxValue));
        string kind = Kinds[index % Kinds.Length];
        Directory.CreateDirectory(caseDir);
        string model = LinkedCopy(Path.Combine(Base, "model"), Path.Combine(caseDir, "model"));
        string stats = Path.Combine(Base, "stats.safetensors"), requests = Path.Combine(Base, "requests.json"), one = Path.Combine(Base, "one-request.json");
        string outDir = Path.Combine(caseDir, "out");
        void M(string file, Func<byte[], Random, (byte[], string)> mutate, out string how)
        {
            var (bytes, m) = mutate(File.ReadAllBytes(file), rng);
            how = m;
            WriteOver(file, bytes);
        }
        string how;
        switch (kind)
        {
            case "requests":
            {
                string r = Copy(requests, caseDir, "requests.json");
                M(r, MutateJson, out how);
                return rng.Next(3) == 0
                    ? new(index, kind, how, new[] { "edit", "--model", model, "--method", "rome", "--hparams", Path.Combine(Base, "rome.json"), "--requests", r, "--stats", stats, "--out", outDir }, r)
                    : new(index, kind, how, new[] { "eval", "--model", model, "--requests", r, "--out", Path.Combine(caseDir, "report.json") }, r);
            }
            case "hparams":
            {
                bool rome = rng.Next(2) == 0;
                string h = Copy(Path.Combine(Base, rome ? "rome.json" : "memit.json"), caseDir, "hparams.json");
                M(h, MutateJson, out how);
                return new(index, kind, how, new[] { "edit", "--model", model, "--method", rome ? "rome" : "memit", "--hparams", h, "--requests", one, "--stats", stats, "--out", outDir }, h);
            }
            case "corpus.jsonl" or "corpus.txt":
            {
                string c = Copy(Path.Combine(Base, kind), caseDir, kind);
                M(c, kind.EndsWith("jsonl") ? MutateJsonLines : MutateText, out how);
                return new(index, kind, how, new[] { "stats", "--model", model, "--layers", "1", "--corpus", c, "--out", Path.Combine(caseDir, "s.safetensors") }, c);
            }
            case "tokenizer.json" or "tokenizer_config.json" or "config.json" or "model.safetensors":
            {
                string f = Path.Combine(model, kind);
                M(f, kind.EndsWith(".safetensors") ? MutateSafetensors : MutateJson, out how);
                string[] args = kind switch
                {
                    "config.json" or "model.safetensors" when rng.Next(2) == 0 => new[] { "info", "--model", model },
                    "tokenizer.json" or "tokenizer_config.json" when rng.Next(2) == 0 => new[] { "tokenize", "--tokenizer", model, "--text", "Paris is located in Rome, said Tom." },
                    _ => new[] { "generate", "--model", model, "--prompt", "Paris is located in", "--max-new-tokens", "2" },
                };
                return new(index, kind, how, args, f);
            }
            case "vocab.json" or "merges.txt":
            {
                string bpe = LinkedCopy(Path.Combine(Base, "bpe"), Path.Combine(caseDir, "bpe"));
                string f = Path.Combine(bpe, kind);
                M(f, kind.EndsWith(".json") ? MutateJson : MutateText, out how);
                return new(index, kind, how, new[] { "tokenize", "--tokenizer", bpe, "--text", "Paris is located in Rome, said Tom." }, f);
            }
            case "stats":
            {
                string s = Copy(stats, caseDir, "stats.safetensors");
                M(s, MutateSafetensors, out how);
                return new(index, kind, how, new[] { "edit", "--model", model, "--method", "memit", "--hparams", Path.Combine(Base, "memit.json"), "--requests", one, "--stats", s, "--out", outDir }, s);
            }
            case "journal.json" or "steps.safetensors" or "original.safetensors":
            {
                string edit = LinkedCopy(Path.Combine(Base, "edit"), Path.Combine(caseDir, "edit"));
                string f = Path.Combine(edit, kind);
                M(f, kind.EndsWith(".json") ? MutateJson : MutateSafetensors, out how);
                return rng.Next(2) == 0
                    ? new(index, kind, how, new[] { "rollback", "--journal", edit, "--out", outDir }, f)
                    : new(index, kind, how, new[] { "eval", "--model", edit, "--requests", requests, "--every", "1", "--out", Path.Combine(caseDir, "curve.json") }, f);
            }
            case "recipe":
            {
                string dir = Path.Combine(caseDir, "recipe");
                Directory.CreateDirectory(dir);
                Directory.CreateSymbolicLink(Path.Combine(dir, "data"), Path.Combine(Base, "recipe", "data"));
                string r = Copy(Path.Combine(Base, "recipe", "recipe.json"), dir, "recipe.json");
                M(r, MutateJson, out how);
                return new(index, kind, how, new[] { "train", "--recipe", r, "--out", outDir, "--prepare-only" }, r);
            }
            default:
            {
                var (args, m) = MutateArgs(rng, model, caseDir);
                return new(index, "cli", m, args, "--");
            }
        }
    }

    /// <summary>A folder of symbolic links to <paramref name="source"/>'s files (the mutated one is then written over its link).</summary>
    static string LinkedCopy(string source, string dest)
    {
        Directory.CreateDirectory(dest);
        foreach (var f in Directory.EnumerateFiles(source))
            File.CreateSymbolicLink(Path.Combine(dest, Path.GetFileName(f)), f);
        return dest;
    }

    static string Copy(string source, string dir, string name)
    {
        string p = Path.Combine(dir, name);
        File.Copy(source, p, overwrite: true);
        return p;
    }

    /// <summary>Replaces a file (or a link to one) by <paramref name="bytes"/>.</summary>
    static void WriteOver(string path, byte[] bytes)
    {
        File.Delete(path);
        File.WriteAllBytes(path, bytes);
    }

    // ---- mutations ------------------------------------------------------------------------------

    /// <summary>Values a structured mutation substitutes: extremes, wrong types, malformed text (raw JSON).</summary>
    static readonly string[] Extremes =
    {
        "0", "-1", "1", "2", "2147483647", "-2147483648", "2147483648", "1073741824", "9007199254740993", "1e308", "-1e308", "1e999", "-1e999",
        "1e-320", "0.5", "-0.0", "40000", "\"\"", "\"x\"", "\"\\ud800\"", "\"a\\udfffb\"", "\"{}\"", "\"{} {}\"", "null", "true", "false", "[]", "{}", "[[]]",
        "[1e999]", "[-5]", "[2147483647]", "[\"\\ud800\"]", "{\"\\ud800\": 1}", "\"" + new string('a', 5000) + "\"",
        string.Concat(Enumerable.Repeat("[", 200)) + string.Concat(Enumerable.Repeat("]", 200)),
    };

    static (byte[], string) MutateJson(byte[] original, Random rng)
    {
        if (rng.Next(10) < 3) return MutateBytes(original, rng);
        JsonNode? root;
        try { root = JsonNode.Parse(original); }
        catch (JsonException) { return MutateBytes(original, rng); }
        var nodes = new List<JsonNode>();
        void Walk(JsonNode? n) { if (n == null) return; nodes.Add(n); if (n is JsonObject o) foreach (var kv in o) Walk(kv.Value); else if (n is JsonArray a) foreach (var x in a) Walk(x); }
        Walk(root);
        var target = nodes[rng.Next(nodes.Count)];
        string path = target.GetPath();
        const string Raw = "\u0001RAW\u0001";
        string raw = Extremes[rng.Next(Extremes.Length)];
        string how;
        var parent = target.Parent;
        if (parent == null) return (Encoding.UTF8.GetBytes(raw), $"root := {Cut(raw)}");
        switch (rng.Next(5))
        {
            case 0 when parent is JsonObject po:
                po.Remove(target.GetPropertyName());
                how = $"delete {path}";
                break;
            case 1 when parent is JsonObject:
            {
                // A duplicate key, written into the text (a JsonObject cannot hold one): "k": old, "k": raw.
                string key = target.GetPropertyName(), old = target.ToJsonString();
                Replace(target, JsonValue.Create(Raw)!);
                raw = $"{old}, {JsonSerializer.Serialize(key)}: {raw}";
                how = $"duplicate key {path}";
                break;
            }
            case 2 when parent is JsonArray pa:
            {
                int at = pa.IndexOf(target);
                if (rng.Next(2) == 0) { pa.RemoveAt(at); how = $"remove {path}"; }
                else { for (int i = 0; i < 30; i++) pa.Insert(at, target.DeepClone()); how = $"{path} ×31"; }
                break;
            }
            default:
                Replace(target, JsonValue.Create(Raw)!);
                how = $"{path} := {Cut(raw)}";
                break;
        }
        string json = root!.ToJsonString().Replace(JsonSerializer.Serialize(Raw), raw);
        return (Encoding.UTF8.GetBytes(json), how);
    }

    static void Replace(JsonNode target, JsonNode value)
    {
        switch (target.Parent)
        {
            case JsonObject o: o[target.GetPropertyName()] = value; break;
            case JsonArray a: a[a.IndexOf(target)] = value; break;
        }
    }

    static string Cut(string s) => s.Length > 24 ? s[..21] + "..." : s;

    static (byte[], string) MutateJsonLines(byte[] original, Random rng)
    {
        var lines = Encoding.UTF8.GetString(original).Split('\n').Where(l => l.Length > 0).ToList();
        int i = rng.Next(lines.Count);
        if (rng.Next(4) == 0) return MutateBytes(original, rng);
        var (bytes, how) = MutateJson(Encoding.UTF8.GetBytes(lines[i]), rng);
        lines[i] = Encoding.UTF8.GetString(bytes).Replace("\n", " ");
        return (Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n"), $"line {i + 1}: {how}");
    }

    static (byte[], string) MutateText(byte[] original, Random rng)
    {
        if (rng.Next(2) == 0) return MutateBytes(original, rng);
        var lines = Encoding.UTF8.GetString(original).Split('\n').ToList();
        int i = rng.Next(lines.Count);
        string[] replacements = { "", " ", "a", "a b c", "\uFFFD\uFFFD", "\u0000", new string('x', 100_000), "#version: 0.2", "Ġ Ġ", "a  b", "\ud83d\ude00 \ud83d\ude00", "\t\t" };
        string r = replacements[rng.Next(replacements.Length)];
        string how;
        switch (rng.Next(3))
        {
            case 0: lines[i] = r; how = $"line {i + 1} := {Cut(JsonSerializer.Serialize(r))}"; break;
            case 1: lines.Insert(i, r); how = $"insert line {i + 1} {Cut(JsonSerializer.Serialize(r))}"; break;
            default: lines.RemoveAt(i); how = $"delete line {i + 1}"; break;
        }
        return (Encoding.UTF8.GetBytes(string.Join("\n", lines)), how);
    }

    static (byte[], string) MutateBytes(byte[] original, Random rng)
    {
        var b = original.ToList();
        string how;
        int at = b.Count == 0 ? 0 : rng.Next(b.Count);
        switch (rng.Next(6))
        {
            case 0:
                int flips = 1 + rng.Next(8);
                for (int i = 0; i < flips && b.Count > 0; i++) b[rng.Next(b.Count)] ^= (byte)(1 << rng.Next(8));
                how = $"{flips} bit flips";
                break;
            case 1: b.RemoveRange(at, b.Count - at); how = $"truncated at {at}"; break;
            case 2:
                var junk = new byte[1 + rng.Next(64)];
                rng.NextBytes(junk);
                b.InsertRange(at, junk);
                how = $"{junk.Length} random bytes at {at}";
                break;
            case 3: b.RemoveRange(at, Math.Min(b.Count - at, 1 + rng.Next(64))); how = $"bytes deleted at {at}"; break;
            case 4:
                byte[] special = { 0x00, 0xFF, 0xC0, 0xED, 0xA0, 0x80, (byte)'"', (byte)'\\', (byte)'{', (byte)'[' };
                b.Insert(at, special[rng.Next(special.Length)]);
                how = $"special byte at {at}";
                break;
            default:
                int from = b.Count == 0 ? 0 : rng.Next(b.Count), len = Math.Min(b.Count - from, 1 + rng.Next(256));
                b.InsertRange(at, b.GetRange(from, len));
                how = $"spliced {len} bytes from {from} to {at}";
                break;
        }
        return (b.ToArray(), "bytes: " + how);
    }

    static (byte[], string) MutateSafetensors(byte[] original, Random rng)
    {
        if (rng.Next(10) < 3 || original.Length < 8) return MutateBytes(original, rng);
        long n = BitConverter.ToInt64(original, 0);
        var header = JsonNode.Parse(original.AsSpan(8, (int)n))!.AsObject();
        var data = original.AsSpan(8 + (int)n).ToArray();
        var names = header.Where(kv => kv.Key != "__metadata__").Select(kv => kv.Key).ToList();
        string name = names[rng.Next(names.Count)];
        var t = header[name]!.AsObject();
        var shape = t["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToList();
        string how;
        switch (rng.Next(9))
        {
            case 0:
                string[] dtypes = { "F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "Q4", "" };
                string dt = dtypes[rng.Next(dtypes.Length)];
                t["dtype"] = dt;
                how = $"{name}.dtype := {dt}";
                break;
            case 1 when shape.Count == 2:
                t["shape"] = new JsonArray(shape[1], shape[0]);
                how = $"{name}: shape transposed";
                break;
            case 2:
                long[][] shapes = { new long[] { 40000, 40000 }, new long[] { 0 }, Array.Empty<long>(), new long[] { -1, 4 }, new long[] { 1L << 40, 1L << 40 }, new long[] { 1, 0 }, new long[] { 3 } };
                var s = shapes[rng.Next(shapes.Length)];
                t["shape"] = new JsonArray(s.Select(x => (JsonNode)x).ToArray());
                how = $"{name}.shape := [{string.Join(",", s)}]";
                break;
            case 3:
                var off = t["data_offsets"]!.AsArray();
                long[] shifts = { 1, -1, 8, 1L << 33, -(1L << 33) };
                long shift = shifts[rng.Next(shifts.Length)];
                int which = rng.Next(2);
                off[which] = off[which]!.GetValue<long>() + shift;
                how = $"{name}.data_offsets[{which}] += {shift}";
                break;
            case 4:
                header.Remove(name);
                how = $"{name} removed";
                break;
            case 5 when shape.Count >= 1:
                // The same number of elements in another shape: a reinterpretation, not a size error.
                long total = shape.Aggregate(1L, (a, x) => a * x);
                t["shape"] = new JsonArray(total);
                how = $"{name}: flattened to [{total}]";
                break;
            case 6:
                // NaN payloads in the tensor's data.
                var o = t["data_offsets"]!.AsArray();
                long start = o[0]!.GetValue<long>(), end = o[1]!.GetValue<long>();
                for (long i = start; i + 8 <= end; i += 8 * (1 + rng.Next(4))) BitConverter.GetBytes(double.NaN).CopyTo(data, i);
                how = $"{name}: NaN bytes in the data";
                break;
            case 7:
                header["__metadata__"] = new JsonObject { ["documents"] = "-5", ["step"] = "x", ["k"] = 3 };
                how = "__metadata__ replaced";
                break;
            default:
                var (hb, hh) = MutateJson(Encoding.UTF8.GetBytes(header.ToJsonString()), rng);
                return (Frame(hb, data), "header: " + hh);
        }
        return (Frame(Encoding.UTF8.GetBytes(header.ToJsonString()), data), how);
    }

    static byte[] Frame(byte[] header, byte[] data)
    {
        var result = new byte[8 + header.Length + data.Length];
        BitConverter.GetBytes((long)header.Length).CopyTo(result, 0);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }

    /// <summary>Command lines with hostile numbers and lists: non-finite, huge, negative, empty.</summary>
    static (string[], string) MutateArgs(Random rng, string model, string caseDir)
    {
        string[] numbers = { "NaN", "nan", "Infinity", "-Infinity", "1e39", "-1", "0", "2147483647", "2147483648", "-2147483648", "", " ", "1,2", "0x10", "1e5", "3.5" };
        string[] idLists = { "", ",", "99999", "-5", "1,-5", "2147483647", "0,1,2", "1,,2", "a", "1e3", "300", "299" };
        string x = numbers[rng.Next(numbers.Length)], ids = idLists[rng.Next(idLists.Length)];
        return rng.Next(7) switch
        {
            0 => (new[] { "generate", "--model", model, "--prompt", "Paris is", "--temperature", x, "--seed", "1", "--max-new-tokens", "2" }, $"--temperature {x}"),
            1 => (new[] { "generate", "--model", model, "--prompt", "Paris is", "--max-new-tokens", x }, $"--max-new-tokens {x}"),
            2 => (new[] { "generate", "--model", model, "--prompt", "Paris is", "--temperature", "1", "--top-k", x, "--max-new-tokens", "2" }, $"--top-k {x}"),
            3 => (new[] { "tokenize", "--tokenizer", model, "--decode", ids }, $"--decode {ids}"),
            4 => (new[] { "stats", "--model", model, "--layers", ids, "--corpus", Path.Combine(caseDir, "..", "..", "base", "corpus.jsonl"), "--out", Path.Combine(caseDir, "s.safetensors") }, $"--layers {ids}"),
            5 => (new[] { "trace", "--model", model, "--ids", ids, "--out", Path.Combine(caseDir, "t.safetensors") }, $"--ids {ids}"),
            _ => (new[] { "stats", "--model", model, "--layers", "1", "--corpus", Path.Combine(caseDir, "..", "..", "base", "corpus.jsonl"), "--samples", x, "--out", Path.Combine(caseDir, "s.safetensors") }, $"--samples {x}"),
        };
    }

    // ---- running and classifying ----------------------------------------------------------------

    /// <summary>Runs case <paramref name="index"/> in this process through <paramref name="run"/> (Cli.Run), with a timeout and an allocation cap.</summary>
    public FuzzResult RunInProcess(int index, Func<string[], TextWriter, TextWriter, int> run, TimeSpan timeout)
    {
        string caseDir = Path.Combine(_root, "cases", index.ToString());
        var c = Make(index, caseDir);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        // The cap is on memory held: the managed heap is sampled while the case runs (bytes allocated
        // and freed again are only work, and a valid 30-request evaluation allocates gigabytes in all).
        long before = GC.GetTotalMemory(forceFullCollection: false), peak = before;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(false));
                try { await Task.Delay(10, sampling.Token); } catch (TaskCanceledException) { }
            }
        });
        var sw = Stopwatch.StartNew();
        int code = -1;
        Exception? escaped = null;
        var thread = new Thread(() =>
        {
            try { code = run(c.Args, stdout, stderr); }
            catch (Exception e) { escaped = e; }
        }, 64 << 20);
        thread.Start();
        bool finished = thread.Join(timeout);
        double secs = sw.Elapsed.TotalSeconds;
        sampling.Cancel();
        sampler.Wait();
        long allocated = Math.Max(peak, GC.GetTotalMemory(false)) - before;
        FuzzResult result;
        if (!finished) result = new(c, FuzzOutcome.Hang, -1, $"still running after {timeout.TotalSeconds:0} s", secs);
        else if (escaped != null) result = new(c, FuzzOutcome.Crash, -1, escaped.GetType().Name + ": " + escaped.Message + "\n" + escaped.StackTrace, secs);
        else if (allocated > AllocationCap) result = new(c, FuzzOutcome.OverCap, code, $"held {allocated:N0} bytes more than before the case", secs);
        else result = Classify(c, code, stderr.ToString(), secs);
        if (finished) TryDelete(caseDir);
        return result;
    }

    /// <summary>Runs case <paramref name="index"/> as `dotnet kedit.dll ...` under DOTNET_GCHeapHardLimit, killed past the timeout.</summary>
    public FuzzResult RunInProcessOfItsOwn(int index, string keditDll, long heapLimitBytes, TimeSpan timeout)
    {
        string caseDir = Path.Combine(_root, "cases", index.ToString());
        var c = Make(index, caseDir);
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(keditDll);
        foreach (var a in c.Args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_GCHeapHardLimit"] = "0x" + heapLimitBytes.ToString("X");
        // Mutated models and corpora make statistics of their own: they stay in the workspace, not the user's cache.
        psi.Environment[Kedit.Editing.KeyStatistics.CacheDirectoryVariable] = Path.Combine(_root, "statistics-cache");
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var outp = p.StandardOutput.ReadToEndAsync();
        bool finished = p.WaitForExit((int)timeout.TotalMilliseconds);
        if (!finished) { p.Kill(entireProcessTree: true); p.WaitForExit(); }
        double secs = sw.Elapsed.TotalSeconds;
        string stderr = err.Result;
        FuzzResult result;
        if (!finished) result = new(c, FuzzOutcome.Hang, -1, $"killed after {timeout.TotalSeconds:0} s", secs);
        else if (stderr.Contains("OutOfMemoryException") || stderr.Contains("Out of memory")) result = new(c, FuzzOutcome.OverCap, p.ExitCode, Last(stderr), secs);
        else if (p.ExitCode is not (0 or 1 or 2) || stderr.Contains("Unhandled exception") || stderr.Contains("\n   at ")) result = new(c, FuzzOutcome.Crash, p.ExitCode, stderr.Length > 2000 ? stderr[..2000] : stderr, secs);
        else result = Classify(c, p.ExitCode, stderr, secs);
        TryDelete(caseDir);
        return result;
    }

    static string Last(string s) => s.TrimEnd().Split('\n')[^1];

    /// <summary>0 → valid; 1/2 → a clean error when the last stderr line is kedit's one-line message naming the mutated file or an option.</summary>
    static FuzzResult Classify(FuzzCase c, int code, string stderr, double secs)
    {
        if (code == 0) return new(c, FuzzOutcome.Valid, 0, "", secs);
        if (code is not (1 or 2)) return new(c, FuzzOutcome.Crash, code, stderr, secs);
        // Progress lines come before the error; the error itself is the last line, alone.
        string line = Last(stderr.Replace('\r', '\n'));
        bool kedit = line.StartsWith("kedit", StringComparison.Ordinal) && !stderr.Contains("\n   at ");
        string file = Path.GetFileName(c.MutatedFile);
        bool named = c.MutatedFile == "--" ? line.Contains("--") || line.Contains("kedit: ") : line.Contains(file) || line.Contains(Path.GetFileName(Path.GetDirectoryName(c.MutatedFile)!));
        if (!kedit) return new(c, FuzzOutcome.Crash, code, stderr, secs);
        return new(c, named ? FuzzOutcome.CleanError : FuzzOutcome.UnnamedError, code, line, secs);
    }

    static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>Counts by kind and outcome, as a table.</summary>
    public static string Summary(IReadOnlyList<FuzzResult> results)
    {
        var sb = new StringBuilder();
        var outcomes = Enum.GetValues<FuzzOutcome>();
        sb.AppendLine($"{"kind",-22}" + string.Concat(outcomes.Select(o => $"{o,13}")) + $"{"total",8}");
        foreach (var g in results.GroupBy(r => r.Case.Kind).OrderBy(g => Array.IndexOf(Kinds, g.Key)))
            sb.AppendLine($"{g.Key,-22}" + string.Concat(outcomes.Select(o => $"{g.Count(r => r.Outcome == o),13}")) + $"{g.Count(),8}");
        sb.AppendLine($"{"all",-22}" + string.Concat(outcomes.Select(o => $"{results.Count(r => r.Outcome == o),13}")) + $"{results.Count,8}");
        return sb.ToString();
    }

    public void Dispose() => TryDelete(_root);
}
