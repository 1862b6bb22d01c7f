// kedit-bench: prints measured ratios (ours vs the machine's measured peak or a baseline), never asserts timings.
// Usage: kedit-bench [all|gemm|forward|stats|edit|latency|ort|device|stories|stories-data|fuzz] ...
// (latency is left out of all: it is the service-facing view of issue #6, run as `latency [quick] [n=N]`.)
namespace Kedit.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        string what = args.Length > 0 ? args[0] : "all";
        var rest = args.Skip(1).ToArray();
        switch (what)
        {
            case "gemm": GemmBench.Run(rest); break;
            case "forward": ForwardBench.Run(rest); break;
            case "stats": StatsBench.Run(rest); break;
            case "device": DeviceBench.Run(rest); break;
            case "edit": EditBench.Run(rest); break;
            case "latency": LatencyBench.Run(rest); break;
            case "ort": OrtBench.Run(rest); break;
            case "memory": MemoryBench.Run(rest); break;
            case "memory-table": MemoryBench.Table(); break;
            case "stories-data": StoriesExperiment.MakeData(rest); break;
            case "stories": StoriesExperiment.Run(rest); break;
            case "fuzz": return FuzzBench.Run(rest);
            case "all": GemmBench.Run(rest); ForwardBench.Run(rest); StatsBench.Run(rest); EditBench.Run(rest); StoriesExperiment.Run(rest); break;
            default: Console.Error.WriteLine($"unknown benchmark '{what}' (expected all, gemm, forward, stats, edit, latency, ort, memory, device, stories, stories-data, fuzz)"); return 2;
        }
        return 0;
    }
}
