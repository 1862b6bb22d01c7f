namespace Kedit.Backends;

/// <summary>Creates the backend named by --device.</summary>
public static class Devices
{
    public static readonly string[] Names = { "cpu", "opencl", "cuda" };

    public static IBackend Create(string name) => name switch
    {
        "cpu" => CpuBackend.Instance,
        "opencl" or "cuda" => throw new KeditException($"device '{name}' is not available in this build yet (the accelerator backends are tracked in the kernels issue); use --device cpu"),
        _ => throw new KeditException($"unknown device '{name}' (expected {string.Join(", ", Names)})"),
    };
}
