using Kedit.Backends;
using Kedit.Editing;
using Kedit.Models;
using Kedit.Tests.Editing;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>
/// compute_z with the model on a device backend runs its backward tape on the device (IBackwardBackend);
/// its gradient, trace and δ match the CPU run on the fixture models.
/// </summary>
public abstract class DeviceComputeZTests<TDevice> where TDevice : IDeviceFixture
{
    [SkippableTheory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    [InlineData("gptj")]
    public void ComputeZOnTheDeviceMatchesTheCpu(string name)
    {
        TDevice.Require();
        using var fx = new EditFixture(name);
        var h = fx.HParams("memit");
        var settings = ZSettings.From(h, fx.Model.Config.Layers);
        var request = fx.Requests("expanded_memit")[0];
        int layer = h.Layers[^1];
        using var device = Transformer.Load(fx.Dir, TDevice.RequireFresh());
        Assert.IsAssignableFrom<IBackwardBackend>(device.Backend);

        var cpu = ComputeZ.Run(fx.Model, request, layer, HookPoint.BlockOutput, settings);
        var dev = ComputeZ.Run(device, request, layer, HookPoint.BlockOutput, settings);

        Compare.Close($"{name} grad0", dev.Grad0, cpu.Grad0.Select(v => (double)v).ToArray(), 1e-4);
        Assert.Equal(cpu.Trace.Count, dev.Trace.Count);
        for (int i = 0; i < cpu.Trace.Count; i++)
            Assert.True(Math.Abs(cpu.Trace[i].Loss - dev.Trace[i].Loss) <= 1e-4 * Math.Max(1, Math.Abs(cpu.Trace[i].Loss)),
                $"{name} iteration {i}: loss {dev.Trace[i].Loss} on the device vs {cpu.Trace[i].Loss} on the CPU");
        Compare.Close($"{name} delta", dev.Delta, cpu.Delta.Select(v => (double)v).ToArray(), 1e-3);
        Assert.True(ComputeZ.Norm(cpu.Delta) > 0, "the CPU run moved δ (the comparison is not vacuous)");
    }
}

public sealed class DeviceComputeZTestsOnIlgpuCpu : DeviceComputeZTests<IlgpuCpuDevice> { }
public sealed class DeviceComputeZTestsOnCuda : DeviceComputeZTests<IlgpuCudaDevice> { }
