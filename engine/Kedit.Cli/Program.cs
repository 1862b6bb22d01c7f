namespace Kedit.Cli;

public static class Program
{
    /// <summary>Set to 1 to print the process's peak resident set (VmHWM) to stderr on exit: what kedit plan predicts.</summary>
    public const string ReportPeakVariable = "KEDIT_REPORT_PEAK";

    public static int Main(string[] args)
    {
        int rc = Cli.Run(args);
        if (Environment.GetEnvironmentVariable(ReportPeakVariable) == "1" && File.Exists("/proc/self/status"))
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:"))
                    Console.Error.WriteLine($"kedit: peak resident {long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024} bytes");
        return rc;
    }
}
