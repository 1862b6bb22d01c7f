namespace Kedit.Interop;

/// <summary>
/// A native API call returned a failure status. <see cref="Call"/> names the function, <see cref="Status"/>
/// is the raw code and <see cref="StatusName"/> its symbolic name (e.g. CL_OUT_OF_RESOURCES).
/// </summary>
public class NativeCallException : Exception
{
    public NativeCallException(string api, string call, int status, string statusName, string? detail = null)
        : base($"{api} call {call} failed with {statusName} ({status}){(detail is null ? "" : ": " + detail)}")
    {
        Api = api; Call = call; Status = status; StatusName = statusName;
    }

    public string Api { get; }
    public string Call { get; }
    public int Status { get; }
    public string StatusName { get; }
}

/// <summary>A native library (the OpenCL ICD loader) could not be loaded or lacks an entry point.</summary>
public sealed class NativeLibraryMissingException : Exception
{
    public NativeLibraryMissingException(string message) : base(message) { }
}
