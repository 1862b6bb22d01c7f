using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

public class DeviceSmokeTests
{
    [SkippableFact]
    public void ProgramBuilds()
    {
        var be = OpenClFixture.Require();
        Assert.Contains("OpenCL", be.DeviceName);
    }
}
