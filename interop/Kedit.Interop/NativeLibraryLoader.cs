using System.Runtime.InteropServices;

namespace Kedit.Interop;

/// <summary>Loads a native library lazily by trying candidate names; reports a clear error when none loads.</summary>
public static class NativeLibraryLoader
{
    public static IntPtr Load(string what, params string[] candidates)
    {
        foreach (var name in candidates)
            if (NativeLibrary.TryLoad(name, out var handle))
                return handle;
        throw new DllNotFoundException($"{what} is not available: none of {string.Join(", ", candidates)} could be loaded");
    }
}
