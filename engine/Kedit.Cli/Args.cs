namespace Kedit.Cli;

/// <summary>A usage error: wrong or missing command-line arguments (exit code 2).</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Minimal "--name value" / "--flag" parser. Every option a command reads must be declared, so a
/// misspelt option is an error rather than silently ignored.
/// </summary>
public sealed class Args
{
    readonly Dictionary<string, string?> _values = new();
    readonly HashSet<string> _read = new();
    readonly string _command;

    public Args(string command, IEnumerable<string> argv, IReadOnlySet<string> flags)
    {
        _command = command;
        var list = argv.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--") || a.Length < 3) throw new UsageException($"{command}: unexpected argument '{a}'");
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            else if (!flags.Contains(name))
            {
                if (i + 1 >= list.Count) throw new UsageException($"{command}: option --{name} needs a value");
                value = list[++i];
            }
            if (_values.ContainsKey(name)) throw new UsageException($"{command}: option --{name} given twice");
            _values[name] = value;
        }
    }

    public bool Has(string name) { _read.Add(name); return _values.ContainsKey(name); }
    public bool Flag(string name) => Has(name);

    public string? Opt(string name) { _read.Add(name); return _values.TryGetValue(name, out var v) ? v : null; }

    /// <summary>The model directory an option names: a directory, or a hub id found in the local Hugging Face cache.</summary>
    public string ModelDir(string name = "model") => Kedit.IO.ModelLocator.Resolve(Req(name));

    public string Req(string name) => Opt(name) ?? throw new UsageException($"{_command}: --{name} is required");

    public int Int(string name, int dflt)
    {
        var v = Opt(name);
        if (v == null) return dflt;
        return int.TryParse(v, out int i) ? i : throw new UsageException($"{_command}: --{name} must be an integer, got '{v}'");
    }

    public float Float(string name, float dflt)
    {
        var v = Opt(name);
        if (v == null) return dflt;
        return float.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float f) && float.IsFinite(f)
            ? f : throw new UsageException($"{_command}: --{name} must be a finite number, got '{v}'");
    }

    /// <summary>A comma-separated list of integers; an empty list is refused.</summary>
    public static int[] ParseIds(string text, string option)
    {
        try
        {
            var ids = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => int.Parse(s, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            return ids.Length > 0 ? ids : throw new UsageException($"--{option} must list at least one integer, got '{text}'");
        }
        catch (FormatException) { throw new UsageException($"--{option} must be a comma-separated list of integers, got '{text}'"); }
        catch (OverflowException) { throw new UsageException($"--{option} holds a number out of range: '{text}'"); }
    }

    /// <summary>Rejects options that the command never read (typos, options of other commands).</summary>
    public void EnsureAllUsed()
    {
        var unknown = _values.Keys.Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"{_command}: unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => "--" + u))}");
    }
}
