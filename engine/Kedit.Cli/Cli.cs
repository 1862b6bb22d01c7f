using System.Text;
using System.Text.Json;
using Kedit.Backends;
using Kedit.IO;
using Kedit.Models;
using Kedit.Tokenization;

namespace Kedit.Cli;

/// <summary>The kedit command line. Run(...) is also called in-process by the tests.</summary>
public static class Cli
{
    public static int Run(string[] argv) => Run(argv, Console.Out, Console.Error);

    public static int Run(string[] argv, TextWriter stdout, TextWriter stderr)
    {
        if (argv.Length == 0 || argv[0] is "-h" or "--help" or "help") { stdout.WriteLine(Help.Overview()); return argv.Length == 0 ? 2 : 0; }
        if (argv[0] is "--version" or "-V" or "version") { stdout.WriteLine(Help.Version); return 0; }
        string cmd = argv[0];
        var rest = argv.Skip(1);
        // Every command answers -h/--help the same way, before any of its options is parsed.
        if (Help.Find(cmd) is { } help && rest.Any(r => r is "-h" or "--help")) { stdout.WriteLine(Help.For(help)); return 0; }
        try
        {
            return cmd switch
            {
                "info" => Info(new Args(cmd, rest, Flags("json")), stdout),
                "generate" => Generate(new Args(cmd, rest, Flags()), stdout, stderr),
                "trace" => Trace(new Args(cmd, rest, Flags()), stdout),
                "tokenize" => Tokenize(new Args(cmd, rest, Flags("no-special")), stdout),
                "stats" => rest.Any(x => x == "--merge" || x.StartsWith("--merge=")) ? ClusterCommands.MergeStats(new Args(cmd, rest, Flags()), stdout, stderr) : Commands.Stats(new Args(cmd, rest, Flags("force")), stdout, stderr),
                "targets" => ClusterCommands.Targets(new Args(cmd, rest, Flags("sequential")), stdout, stderr),
                "edit" => Commands.Edit(new Args(cmd, rest, Flags("sequential", "force")), stdout, stderr),
                "plan" => PlanCommand.Run(new Args(cmd, rest, Flags("json", "sequential")), stdout),
                "rollback" => Commands.Rollback(new Args(cmd, rest, Flags()), stdout),
                "apply" => ApplyCommand.Run(new Args(cmd, rest, Flags()), stdout),
                "eval" => Commands.Eval(new Args(cmd, rest, Flags()), stdout, stderr),
                "demo" => Commands.Demo(new Args(cmd, rest, Flags("quick")), stdout, stderr),
                "export" => Export(new Args(cmd, rest, Flags()), stdout),
                "train" => TrainCommand.Run(rest.ToArray(), stdout, stderr),
                "serve" => ServeCommand.Run(rest.ToArray(), stdout, stderr),
                _ => throw new UsageException($"unknown command '{cmd}' (kedit --help lists them)"),
            };
        }
        catch (UsageException e) { stderr.WriteLine($"kedit: {e.Message}{Help.SeeAlso(cmd)}"); return 2; }
        catch (KeditException e) { stderr.WriteLine($"kedit: error: {e.Message}"); return 1; }
        catch (IOException e) { stderr.WriteLine($"kedit: error: {e.Message}"); return 1; }
        catch (UnauthorizedAccessException e) { stderr.WriteLine($"kedit: error: {e.Message}"); return 1; }
    }

    static HashSet<string> Flags(params string[] f) => new(f);

    internal static Transformer LoadModel(Args a) => Transformer.Load(a.ModelDir(), Devices.Create(a.Opt("device") ?? "cpu"));

    static int Export(Args a, TextWriter o)
    {
        string outPath = a.Req("out");
        string dtype = a.Opt("dtype") ?? "f32";
        int[] edited = a.Opt("edited-layers") is string e ? Args.ParseIds(e, "edited-layers") : [];
        if (dtype is not ("f32" or "f16")) throw new UsageException($"export: --dtype {dtype} is not a dtype (f32 or f16)");
        AtomicOutput.CheckFileTarget(outPath);
        using var m = Transformer.Load(a.ModelDir());
        a.EnsureAllUsed();
        Kedit.IO.Onnx.OnnxExporter.Export(m, outPath, new Kedit.IO.Onnx.OnnxExportOptions { EditedLayers = edited.Distinct().ToList(), Float16Weights = dtype == "f16" });
        o.WriteLine($"wrote {outPath}: {m.Config.ModelType}, {m.Config.Layers} layers, opset {Kedit.IO.Onnx.OnnxExporter.Opset}" +
                    (dtype == "f16" ? ", weights as float16" : "") + (edited.Length > 0 ? $", down projections of layers {string.Join(",", edited.Distinct().Order())} as inputs" : ""));
        return 0;
    }

    static int Info(Args a, TextWriter o)
    {
        bool json = a.Flag("json");
        // Headers only: the matrices are described, not read (the norms and biases are, to check them).
        using var m = Transformer.Load(a.ModelDir(), Devices.Create(a.Opt("device") ?? "cpu"), headersOnly: true);
        a.EnsureAllUsed();
        var c = m.Config; var w = m.Weights;
        var dtypes = w.StoredDTypes.Values.GroupBy(t => DTypes.ToSafetensorsName(t)).ToDictionary(g => g.Key, g => g.Count());
        var info = new Dictionary<string, object?>
        {
            ["model_type"] = c.ModelType,
            ["architecture"] = c.Architecture.ToString(),
            ["layers"] = c.Layers,
            ["hidden_size"] = c.Hidden,
            ["intermediate_size"] = c.Intermediate,
            ["heads"] = c.Heads,
            ["kv_heads"] = c.KvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_positions"] = c.MaxPositions,
            ["rope"] = c.Rope == RopeLayout.None ? null : new Dictionary<string, object> { ["layout"] = c.Rope.ToString(), ["rotary_dim"] = c.RotaryDim, ["theta"] = c.RopeTheta },
            ["tied_embeddings"] = ReferenceEquals(w.LmHead.Matrix, w.TokenTable),
            ["config_fields"] = c.MathFields.ToDictionary(f => f.Name, f => f.Value),
            ["parameters"] = w.ParameterCount,
            ["stored_dtypes"] = dtypes,
            ["stored_bytes"] = w.StoredBytes,
            ["resident_bytes"] = w.ResidentBytes,
            ["memory"] = w.MemoryReport(),
            ["edited_matrix"] = c.DownProjName(0).Replace(".0.", ".{l}."),
            ["device"] = m.Backend.Name,
            ["tokenizer"] = m.Tokenizer == null ? null : new Dictionary<string, object?> { ["vocab_size"] = m.Tokenizer.VocabSize, ["adds_bos"] = m.Tokenizer.AddsBos, ["bos_id"] = m.Tokenizer.BosId, ["eos_id"] = m.Tokenizer.EosId },
        };
        if (json) { o.WriteLine(JsonSerializer.Serialize(info, Commands.JsonOut)); return 0; }
        o.WriteLine($"model        {a.ModelDir()}");
        o.WriteLine($"architecture {c.Architecture} (model_type {c.ModelType})");
        o.WriteLine($"layers       {c.Layers}, hidden {c.Hidden}, MLP {c.Intermediate}, heads {c.Heads} (kv {c.KvHeads}, head_dim {c.HeadDim})");
        o.WriteLine($"vocabulary   {c.VocabSize}, positions {c.MaxPositions}" + (c.Rope == RopeLayout.None ? ", learned position embeddings" : $", RoPE {c.Rope} on {c.RotaryDim} dims, theta {c.RopeTheta}"));
        o.WriteLine($"config       {string.Join(", ", c.MathFields.Select(f => $"{f.Name} {f.Value}"))}");
        o.WriteLine($"parameters   {w.ParameterCount:N0}");
        o.WriteLine($"memory       {w.MemoryReport()}");
        o.WriteLine($"edited       {info["edited_matrix"]} (MLP down projection; key width {c.Intermediate})");
        o.WriteLine($"device       {m.Backend.Name}");
        if (m.Tokenizer != null) o.WriteLine($"tokenizer    {m.Tokenizer.VocabSize} tokens, BOS {(m.Tokenizer.AddsBos ? "added" : "not added")}");
        return 0;
    }

    static int Generate(Args a, TextWriter o, TextWriter err)
    {
        string prompt = a.Req("prompt");
        int maxNew = a.Int("max-new-tokens", 32);
        bool sampled = a.Has("temperature");
        float temp = a.Float("temperature", 0f);
        int seed = a.Int("seed", 0);
        int topK = a.Int("top-k", 0);
        if (a.Has("seed") && !sampled) throw new UsageException("generate: --seed only makes sense with --temperature");
        bool ort = a.Opt("device") is "ort" or "ort-cuda", ortCuda = a.Opt("device") == "ort-cuda";
        using var m = ort ? Transformer.Load(a.ModelDir()) : LoadModel(a);
        a.EnsureAllUsed();
        var tok = m.RequireTokenizer();
        var ids = tok.Encode(prompt);
        var options = new GenerationOptions { MaxNewTokens = maxNew, Temperature = temp, Seed = seed, TopK = topK };
        int[] outIds;
        if (ort)
        {
            // ONNX Runtime over the model's exported graph, exported once and reused by later runs.
            string onnx = Kedit.IO.Onnx.OnnxExportCache.GetOrExport(m, new Kedit.IO.Onnx.OnnxExportOptions(), out bool reused);
            using var decoder = new Kedit.Backends.Ort.OrtDecoder(onnx, m.Config, cuda: ortCuda);
            err.WriteLine($"generate: ONNX graph {(reused ? "reused" : "exported")}: {onnx}");
            outIds = Generator.Generate(decoder, m.Config, ids, options);
        }
        else outIds = Generator.Generate(m, ids, options);
        o.WriteLine(tok.Decode(ids.Concat(outIds).ToArray(), skipSpecialTokens: true));
        return 0;
    }

    static int Trace(Args a, TextWriter o)
    {
        string? prompt = a.Opt("prompt"), idsText = a.Opt("ids");
        string outPath = a.Req("out");
        if ((prompt == null) == (idsText == null)) throw new UsageException("trace: give exactly one of --prompt or --ids");
        AtomicOutput.CheckFileTarget(outPath);
        using var m = LoadModel(a);
        a.EnsureAllUsed();
        int[] ids = idsText != null ? Args.ParseIds(idsText, "ids") : m.RequireTokenizer().Encode(prompt!);
        if (ids.Length == 0) throw new KeditException("trace: the prompt encodes to no tokens");
        var c = m.Config;
        var hooks = new ForwardHooks().CaptureAll(c.Layers, HookPoint.BlockOutput, HookPoint.MlpKey, HookPoint.MlpValue);
        var r = m.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks });
        long T = ids.Length;
        var entries = new List<SafetensorsWriter.Entry>
        {
            SafetensorsWriter.Entry.I64("input_ids", new[] { T }, ids.Select(i => (long)i).ToArray()),
            SafetensorsWriter.Entry.F32("logits", new[] { T, c.VocabSize }, r.Logits),
        };
        for (int l = 0; l < c.Layers; l++)
        {
            entries.Add(SafetensorsWriter.Entry.F32($"hidden.{l}", new[] { T, c.Hidden }, hooks.Captured(l, HookPoint.BlockOutput)));
            entries.Add(SafetensorsWriter.Entry.F32($"mlp_key.{l}", new[] { T, c.Intermediate }, hooks.Captured(l, HookPoint.MlpKey)));
            entries.Add(SafetensorsWriter.Entry.F32($"mlp_value.{l}", new[] { T, c.Hidden }, hooks.Captured(l, HookPoint.MlpValue)));
        }
        SafetensorsWriter.Write(outPath, entries, new Dictionary<string, string> { ["model"] = Path.GetFullPath(a.ModelDir()), ["producer"] = "kedit trace" });
        o.WriteLine($"wrote {entries.Count} tensors for {T} tokens to {outPath}");
        return 0;
    }

    static int Tokenize(Args a, TextWriter o)
    {
        string dir = a.Req("tokenizer");
        string? text = a.Opt("text"), decode = a.Opt("decode");
        bool noSpecial = a.Flag("no-special");
        a.EnsureAllUsed();
        if ((text == null) == (decode == null)) throw new UsageException("tokenize: give exactly one of --text or --decode");
        var tok = Tokenizer.Load(dir);
        if (text != null) o.WriteLine("[" + string.Join(",", tok.Encode(text, addSpecialTokens: !noSpecial)) + "]");
        else
        {
            var ids = Args.ParseIds(decode!, "decode");
            foreach (int id in ids)
                if ((uint)id >= (uint)tok.VocabSize || !tok.HasToken(id)) throw new UsageException($"tokenize: --decode: id {id} is not in the tokenizer's vocabulary (ids 0..{tok.VocabSize - 1})");
            o.WriteLine(tok.Decode(ids, skipSpecialTokens: noSpecial));
        }
        return 0;
    }
}
