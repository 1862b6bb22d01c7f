using System.Reflection;

namespace Kedit.Cli;

/// <summary>
/// The one place a command's usage is written: `kedit --help` lists every command's synopsis, `kedit CMD --help`
/// prints that command's synopsis, description and examples.
/// </summary>
public static class Help
{
    public sealed record Command(string Name, string Synopsis, string Description, string[] Examples);

    public static readonly Command[] Commands =
    [
        new("info", "--model DIR|HUB-ID [--json] [--device cpu|opencl|cuda|ilgpu-cpu]",
            "architecture, widths, parameter count, dtypes and memory of a model directory",
            ["kedit info --model models/factworld", "kedit info --model gpt2-xl --json   # a hub id resolved in the local Hugging Face cache"]),
        new("generate", "--model DIR --prompt TEXT [--max-new-tokens N] [--temperature T --seed S] [--top-k K] [--device cpu|ort|ort-cuda]",
            "greedy decoding unless a temperature is given; ort: ONNX Runtime's CPU provider over the exported graph,\n" +
            "ort-cuda: its CUDA provider (a build with -p:KeditOrtGpu=true, on a host with CUDA 13)",
            ["kedit generate --model models/factworld --prompt \"The capital of France is\" --max-new-tokens 8"]),
        new("trace", "--model DIR (--prompt TEXT | --ids 1,2,3) --out FILE.safetensors [--device cpu|opencl|cuda|ilgpu-cpu]",
            "writes input_ids, logits, hidden.{l}, mlp_key.{l}, mlp_value.{l} (F32) for every layer",
            ["kedit trace --model models/factworld --prompt \"Paris is the capital of\" --out trace.safetensors"]),
        new("tokenize", "--tokenizer DIR (--text TEXT | --decode 1,2,3) [--no-special]",
            "prints ids as a JSON array, or the decoded text",
            ["kedit tokenize --tokenizer models/factworld --text \"Hello world\"", "kedit tokenize --tokenizer models/factworld --decode 15,42"]),
        new("stats", "--model DIR --layers 3,4 --corpus FILE [--samples N] [--mom2-dtype float32|float64] [--force] --out FILE.safetensors\n" +
                     "stats --import FILE.npz [--layer L] [--model DIR] --out FILE.safetensors\n" +
                     "stats ... --shard I/N --out PART.safetensors    |    stats --merge PART,PART,... --out FILE.safetensors",
            "second moment E[k kᵀ] of the MLP keys (mom2.{l}, count.{l}); cached under $KEDIT_CACHE_DIR (default\n" +
            "~/.cache/kedit); float32 (default, upstream's): float32 products, float64 sums across batches.\n" +
            "--import reads ROME/MEMIT's data/stats/.../*.npz (mom2.mom2, mom2.count) for one layer (from the file name\n" +
            "unless --layer is given; --model checks the width).\n" +
            "--shard I/N computes only shard I's documents: document i (from 0, after the --samples cut) belongs to\n" +
            "shard floor(i/200) mod N; a shard resumes from PART.partial. --merge adds the parts' float64 sums in shard\n" +
            "order (any order given) into one statistics file, also cached; it refuses parts of other runs, missing\n" +
            "or duplicated shards and .partial checkpoints. deploy/slurm/kedit-stats.sh runs the shards as a Slurm array",
            ["kedit stats --model models/factworld --layers 0,1,2 --corpus models/factworld/data/train.txt --samples 3000 --out stats.safetensors",
             "kedit stats --import wikipedia_stats/transformer.h.17.mlp.c_proj_float32_mom2_100000.npz --layer 17 --out l17.safetensors",
             "kedit stats --model models/factworld --layers 0,1,2 --corpus models/factworld/data/train.txt --shard 0/4 --out part-0.safetensors",
             "kedit stats --merge part-0.safetensors,part-1.safetensors,part-2.safetensors,part-3.safetensors --out stats.safetensors"]),
        new("targets", "--model DIR --method memit|alphaedit --hparams FILE --requests FILE --shard I/N --out PART.safetensors\n" +
                       "[--limit N [--offset K]] [--template-seed S]",
            "MEMIT's (AlphaEdit's) target vectors z for shard I of N of one batch edit: whole compute_z batches of\n" +
            "the unsharded run, in order, so `edit --targets` with all N parts writes the unsharded edit's deltas.\n" +
            "Not for --sequential edits (later batches' targets depend on the earlier edits). deploy/slurm/kedit-targets.sh\n" +
            "runs the shards as a Slurm array and the edit after them",
            ["kedit targets --model models/factworld --method memit --hparams models/factworld/hparams.json \\\n" +
             "    --requests models/factworld/data/counterfact.json --limit 100 --shard 0/4 --out targets-0.safetensors",
             "kedit edit ... --limit 100 --targets targets-0.safetensors,targets-1.safetensors,targets-2.safetensors,targets-3.safetensors"]),
        new("edit", "--model DIR --method rome|memit|d4s|alphaedit --hparams FILE.json|FILE.yaml --requests FILE.json --out OUTDIR\n" +
                    "[--stats FILE | --corpus FILE [--samples N]] [--sequential --batch-size B] [--limit N [--offset K]]\n" +
                    "[--prune log|log2|log1.5|log1.2|linear] [--template-seed S] [--targets PART,PART,...] [--force]",
            "writes an edited model directory with deltas.safetensors and journal.json; hparams as kmeng01/memit's JSON or\n" +
            "EasyEdit's YAML; requests as CounterFact, zsRE, EasyEdit or KnowEdit records (--limit/--offset take a slice);\n" +
            "--targets: MEMIT/AlphaEdit's z from `kedit targets` parts instead of computing them",
            ["kedit edit --model models/factworld --method memit --hparams models/factworld/hparams.json \\\n" +
             "    --requests models/factworld/data/counterfact.json --limit 10 --corpus models/factworld/data/train.txt --out edited",
             "kedit edit ... --method d4s --sequential --batch-size 1 --prune log1.5"]),
        new("plan", "--model DIR --method rome|memit|d4s|alphaedit|prune|stats --hparams FILE [--requests FILE] [--layers L,...]\n" +
                    "[--sequential] [--batch-size B] [--device D] [--json]",
            "predicted peak host/device memory of an edit (or of stats), part by part; edit, stats and serve refuse a\n" +
            "plan that does not fit MemAvailable (or $KEDIT_MEMORY_BUDGET bytes) before any work, unless given --force",
            ["kedit plan --model models/factworld --method d4s --hparams models/factworld/hparams.json --sequential --json"]),
        new("rollback", "--journal OUTDIR --out DIR",
            "the original model again: its weight files byte for byte",
            ["kedit rollback --journal edited --out restored"]),
        new("apply", "--model DIR --deltas OUTDIR/deltas.safetensors --out DIR",
            "a saved edit (an edit output's deltas.safetensors) applied to the original model: the edited model\n" +
            "directory, in the input's layout (sharded input, the same shards); deltas of another model are refused",
            ["kedit apply --model models/factworld --deltas edited/deltas.safetensors --out edited-again"]),
        new("eval", "--model DIR --requests FILE.json --out report.json [--original DIR] [--corpus FILE] [--every K] [--limit N [--offset K]]\n" +
                    "[--snippets DIR] [--device cpu|ort|ort-cuda]",
            "both metric families: ROME/MEMIT's (CounterFact or zsRE; generation entropy; the reference score with\n" +
            "--snippets DIR holding ROME's attribute_snippets.json, idf.npy, tfidf_vocab.json) and EasyEdit's token-level\n" +
            "one (locality against --original); edited matrices' L1 norm and condition number; perplexity of --corpus.\n" +
            "ort: the scored forward passes of the model under test through ONNX Runtime (generated text, --original: engine)",
            ["kedit eval --model edited --original models/factworld --requests models/factworld/data/counterfact.json --limit 10 --out report.json"]),
        new("demo", "[--model DIR] [--edits N] [--quick] [--out DIR]",
            "the main job: sequential MEMIT, D4S, MEMIT+PRUNE, D4S+PRUNE on the default model,\n" +
            "a comparison table and an HTML report with plots (default model: models/factworld)",
            ["kedit demo --quick", "kedit demo --edits 400 --out my-demo"]),
        new("serve", "--model DIR [--method rome|memit|d4s|alphaedit] [--hparams FILE] [--stats FILE] [--state DIR] [--prune MODE] [--port 8080] [--device cpu|ort|ort-cuda] [--force]",
            "a local HTTP/JSON service on 127.0.0.1: POST /generate, POST /score, POST /edits, GET /edits,\n" +
            "DELETE /edits/{id}, GET /health, GET /openapi.json, GET /metrics. --model alone starts it; editing uses\n" +
            "--method (default memit), --hparams (default DIR/hparams.json) and --stats (default: cached statistics),\n" +
            "else edits answer 409 saying what is missing. --state DIR keeps the edits across restarts",
            ["kedit serve --model models/factworld --port 8080",
             "kedit serve --model models/factworld --method d4s --stats stats.safetensors --state serve-state"]),
        new("export", "--model DIR --out FILE.onnx [--dtype f32|f16] [--edited-layers L,...]",
            "the decoder as an ONNX graph (opset 17) with a KV cache; edited layers' MLP down\n" +
            "projections become graph inputs named after their safetensors tensors",
            ["kedit export --model models/factworld --out factworld.onnx --edited-layers 0,1,2"]),
        new("train", "--recipe models/NAME/recipe.json [--out DIR] [--resume] [--prepare-only]",
            "trains a GPT-2-architecture model on the CPU with the engine's own backward pass;\n" +
            "--resume continues from DIR/checkpoint, --prepare-only writes the corpus and tokenizer and stops",
            ["kedit train --recipe models/factworld/recipe.json --out /tmp/factworld"]),
    ];

    public static Command? Find(string name) => Commands.FirstOrDefault(c => c.Name == name);

    /// <summary>The product version: the assembly's informational version (set by build.sh pack), else its version.</summary>
    public static string Version
    {
        get
        {
            var asm = typeof(Help).Assembly;
            string v = asm.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
                       ?? asm.GetName().Version?.ToString() ?? "0.0.0";
            return $"kedit {v}";
        }
    }

    public static string Overview()
    {
        var w = new StringWriter();
        w.WriteLine("kedit: edit facts inside transformer language models");
        w.WriteLine();
        w.WriteLine("usage: kedit <command> [options]      kedit <command> --help      kedit --version");
        w.WriteLine();
        foreach (var c in Commands)
        {
            var lines = c.Synopsis.Split('\n');
            w.WriteLine($"  {c.Name,-9} {lines[0]}");
            foreach (var l in lines.Skip(1)) w.WriteLine($"            {l}");
            foreach (var l in c.Description.Split('\n')) w.WriteLine($"            {l}");
        }
        w.WriteLine();
        w.Write("Errors go to stderr; the exit code is 1 for bad input, 2 for bad usage.");
        return w.ToString();
    }

    public static string For(Command c)
    {
        var w = new StringWriter();
        var lines = c.Synopsis.Split('\n');
        // A synopsis line that starts with the command's name is a second form of it.
        w.WriteLine($"usage: kedit {c.Name} {lines[0]}");
        foreach (var l in lines.Skip(1))
            w.WriteLine(l.StartsWith(c.Name + " ", StringComparison.Ordinal) ? $"       kedit {l}" : $"         {l}");
        w.WriteLine();
        foreach (var l in c.Description.Split('\n')) w.WriteLine($"  {l}");
        w.WriteLine();
        w.WriteLine("examples:");
        foreach (var e in c.Examples) w.WriteLine($"  {e}");
        return w.ToString().TrimEnd();
    }

    /// <summary>What a usage error appends, on the same line, so the error stays one line: where the usage is.</summary>
    public static string SeeAlso(string name) => Find(name) is not null ? $" (usage: kedit {name} --help)" : "";
}
