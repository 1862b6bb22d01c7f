namespace Kedit;

/// <summary>A one-line progress display on a text writer (stderr), throttled.</summary>
public sealed class ProgressBar(TextWriter? w, string label, int? total)
{
    readonly System.Diagnostics.Stopwatch _sw = System.Diagnostics.Stopwatch.StartNew();
    double _last = -1;
    // On a terminal the line is redrawn in place; into a file or pipe, a full line every few seconds.
    readonly bool _interactive = w != null && ReferenceEquals(w, Console.Error) && !Console.IsErrorRedirected;

    public void Report(int done, string detail = "")
    {
        if (w == null) return;
        double t = _sw.Elapsed.TotalSeconds;
        if (t - _last < (_interactive ? 0.25 : 5.0) && (total == null || done < total) && _last >= 0) return;
        _last = t;
        string bar = "";
        if (total is int n && n > 0)
        {
            int filled = (int)(20.0 * Math.Min(done, n) / n);
            bar = $"[{new string('#', filled)}{new string('.', 20 - filled)}] {done}/{n} ";
        }
        else bar = $"{done} ";
        string line = $"{label}: {bar}{detail} {t:F1}s";
        if (_interactive) w.Write($"\r{line}   "); else w.WriteLine(line);
    }

    public void Done(string summary)
    {
        if (w == null) return;
        string line = $"{label}: {summary} in {_sw.Elapsed.TotalSeconds:F1}s";
        w.WriteLine(_interactive ? $"\r{line}{new string(' ', 20)}" : line);
    }
}

/// <summary>IProgress that reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
public sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
