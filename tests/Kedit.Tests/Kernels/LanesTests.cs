using Kedit.Kernels.Ilgpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>The grid-stride range every ILGPU kernel walks: lanes launched, the stride between a lane's items, the row width.</summary>
public class LanesTests
{
    [Fact]
    public void FewerLanesThanItemsStrideByTheLaneCount()
    {
        var l = Lanes.Of(5, 3, 4);
        Assert.Equal((15L, 5, 4, 4), (l.Total, l.Width, l.Stride, l.Count));
        // Lane i visits i, i + 4, …: every item exactly once.
        var visits = Enumerable.Range(0, l.Count).SelectMany(i => Enumerable.Range(0, 15).Where(e => e >= i && (e - i) % l.Stride == 0)).OrderBy(e => e);
        Assert.Equal(Enumerable.Range(0, 15), visits);
    }

    [Fact]
    public void AGpuLaunchesALanePerItemAndAnEmptyRangeNone()
    {
        Assert.Equal(7, Lanes.Of(7, 1, int.MaxValue).Count);
        Assert.Equal(0, Lanes.Of(0, 9, 4).Count);
        Assert.Equal(0, Lanes.Of(9, 0, 4).Count);
        // A 1-D range past int's range: the stride is capped and the width (read only by 2-D kernels) clamped, not an overflow.
        var big = Lanes.Of(3_000_000_000L, 1, int.MaxValue);
        Assert.Equal((3_000_000_000L, int.MaxValue, int.MaxValue), (big.Total, big.Width, big.Stride));
    }

    [Fact]
    public void NegativeExtentsAndNoLanesAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Lanes.Of(-1, 2, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => Lanes.Of(2, 2, 0));
    }
}
