using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

public class DeviceSmokeTests
{
    [SkippableFact]
    public void ProgramBuildsOnTheChosenDeviceAndTheDeviceIsListed()
    {
        var be = OpenClFixture.Require();
        Assert.StartsWith("OpenCL device #", be.DeviceName);
        var listed = OpenClBackend.ListDevices();
        Assert.NotEmpty(listed);
        Assert.Contains(listed, d => be.DeviceName.EndsWith(d));
        Assert.Equal("opencl", be.Name);
    }
}
