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
