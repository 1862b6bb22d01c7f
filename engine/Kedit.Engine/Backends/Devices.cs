namespace Kedit.Backends;

/// <summary>Creates the backend named by --device.</summary>
public static class Devices
{
    public static readonly string[] Names = { "cpu", "opencl", "cuda" };

    public static IBackend Create(string name) => name switch
    {
        "cpu" => CpuBackend.Instance,
        "opencl" => OpenClBackend.Create(),
        "cuda" => CudaBackend.Create(),
        _ => throw new KeditException($"unknown device '{name}' (expected {string.Join(", ", Names)})"),
    };
}
