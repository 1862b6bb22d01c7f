namespace Kedit;

/// <summary>
/// A user-facing error (bad file, bad field, bad argument). The message names the file, tensor or
/// field at fault; the CLI prints it without a stack trace and exits non-zero.
/// </summary>
public class KeditException : Exception
{
    public KeditException(string message) : base(message) { }
    public KeditException(string message, Exception inner) : base(message, inner) { }
}
