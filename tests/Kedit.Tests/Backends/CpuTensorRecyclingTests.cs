using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Backends;

/// <summary>
/// The CPU backend recycles the arrays of disposed large tensors (fresh pages cost a fault each on first
/// write); a recycled tensor must look exactly like a new one, and arrays it does not own are never kept.
/// </summary>
public class CpuTensorRecyclingTests
{
    // Odd sizes no other test allocates, so parallel tests cannot take these arrays in between.
    const int Rows = 257, Cols = 263;

    [Fact]
    public void ADisposedLargeTensorsArrayIsReusedAndComesBackZeroed()
    {
        var be = CpuBackend.Instance;
        var first = (CpuTensor)be.Allocate(Rows, Cols);
        Array.Fill(first.Data, float.NaN);
        var array = first.Data;
        first.Dispose();
        first.Dispose();   // a second dispose must not hand the array out twice
        var second = (CpuTensor)be.Allocate(Rows, Cols);
        var third = (CpuTensor)be.Allocate(Rows, Cols);
        Assert.Same(array, second.Data);
        Assert.NotSame(second.Data, third.Data);
        Assert.All(second.Data, v => Assert.Equal(0f, v));
        second.Dispose(); third.Dispose();
    }

    [Fact]
    public void ArraysTheTensorDoesNotOwnAreNeverRecycled()
    {
        var external = new float[Rows * (Cols + 2)];
        new CpuTensor(Rows, Cols + 2, external).Dispose();
        var rented = (CpuTensor)CpuBackend.Instance.Allocate(Rows, Cols + 2);
        Assert.NotSame(external, rented.Data);
        rented.Dispose();
    }
}
