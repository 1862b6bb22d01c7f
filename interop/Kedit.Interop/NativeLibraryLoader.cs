using System.Runtime.InteropServices;

namespace Kedit.Interop;

/// <summary>Loads a native library lazily by trying candidate names; reports a clear error when none loads.</summary>
public static class NativeLibraryLoader
{
    public static IntPtr Load(string what, params string[] candidates)
    {
        if (TryLoad(candidates, out var handle)) return handle;
        throw new DllNotFoundException($"{what} is not available: none of {string.Join(", ", candidates)} could be loaded");
    }

    /// <summary>Tries each candidate name in order; false when none loads.</summary>
    public static bool TryLoad(IEnumerable<string> candidates, out IntPtr handle)
    {
        foreach (var name in candidates)
            if (NativeLibrary.TryLoad(name, out handle))
                return true;
        handle = IntPtr.Zero;
        return false;
    }

    /// <summary>The address of an exported function; throws naming the library and symbol when it is absent.</summary>
    public static IntPtr Export(IntPtr library, string libraryName, string symbol)
    {
        if (NativeLibrary.TryGetExport(library, symbol, out var address)) return address;
        throw new NativeLibraryMissingException($"{libraryName} does not export {symbol} (the installed driver is too old or not a real {libraryName})");
    }
}

/// <summary>
/// A native API table loaded once, on first use, remembering why loading failed so every later
/// call reports the same clear reason. The loader throws <see cref="NativeLibraryMissingException"/>.
/// </summary>
public sealed class LazyApi<T> where T : class
{
    readonly Func<T> _load;
    readonly object _gate = new();
    T? _api;
    string? _error;

    public LazyApi(Func<T> load) => _load = load;

    public bool IsAvailable(out string reason)
    {
        lock (_gate)
        {
            Ensure();
            reason = _error ?? "";
            return _api != null;
        }
    }

    /// <summary>The table, or a NativeLibraryMissingException saying why it is not there.</summary>
    public T Value
    {
        get
        {
            lock (_gate)
            {
                Ensure();
                return _api ?? throw new NativeLibraryMissingException(_error!);
            }
        }
    }

    /// <summary>The table if it has been loaded already (never triggers a load).</summary>
    public T? IfLoaded => _api;

    void Ensure()
    {
        if (_api != null || _error != null) return;
        try { _api = _load(); }
        catch (NativeLibraryMissingException e) { _error = e.Message; }
    }
}

