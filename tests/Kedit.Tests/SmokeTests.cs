using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests;

public class SmokeTests
{
    [Fact]
    public void GemmComputesSmallProduct()
    {
        float[] a = { 1, 2, 3, 4 }, b = { 5, 6, 7, 8 }, c = new float[4];
        Gemm.Sgemm(false, false, 2, 2, 2, 1f, a, 2, b, 2, 0f, c, 2);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c);
    }
}
