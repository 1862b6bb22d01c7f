namespace Kedit.Bench;

public static class ForwardBench
{
    public static void Run(string[] args) => Console.WriteLine("forward bench: not written yet");
}
