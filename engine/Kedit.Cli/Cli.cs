namespace Kedit.Cli;

public static class Cli
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("kedit: no commands yet");
        return 2;
    }
}
