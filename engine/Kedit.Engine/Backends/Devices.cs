namespace Kedit.Backends;

/// <summary>Creates the backend named by --device.</summary>
public static class Devices
{
    public static readonly string[] Names = { "cpu", "opencl", "cuda", "ilgpu-cpu" };

    public static IBackend Create(string name) => name switch
    {
        "cpu" => CpuBackend.Instance,
        "opencl" => IlgpuBackend.CreateOpenCl(),
        "cuda" => IlgpuBackend.CreateCuda(),
        "ilgpu-cpu" => IlgpuBackend.CreateCpu(),
        _ => throw new KeditException($"unknown device '{name}' (expected {string.Join(", ", Names)})"),
    };
}
