namespace Kedit.Bench;

public static class GemmBench
{
    public static void Run(string[] args) => Console.WriteLine("gemm bench: not written yet");
}
