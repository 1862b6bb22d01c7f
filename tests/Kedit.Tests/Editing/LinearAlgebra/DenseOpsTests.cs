using Kedit.Editing.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

public class DenseOpsTests
{
    [Theory]
    [InlineData(false, false, 13, 37, 5)]
    [InlineData(true, false, 13, 37, 5)]
    [InlineData(false, true, 17, 9, 300)]
    [InlineData(true, true, 1, 23, 7)]
    [InlineData(false, false, 131, 203, 301)]   // several blocks and parallel split over n
    [InlineData(true, true, 290, 35, 260)]      // parallel split over m, transposed packing
    public void GemmMatchesMathNet(bool ta, bool tb, int m, int n, int k)
    {
        var rng = new Random(m * 1000 + n + k);
        var a = ta ? Random(rng, k, m) : Random(rng, m, k);
        var b = tb ? Random(rng, n, k) : Random(rng, k, n);
        var c = Random(rng, m, n);
        var expected = 0.7 * (ta ? ToMathNet(a).Transpose() : ToMathNet(a)) * (tb ? ToMathNet(b).Transpose() : ToMathNet(b))
                       - 0.5 * ToMathNet(c);
        DenseOps.Gemm(ta, tb, 0.7, a, b, -0.5, c);
        AssertRel(RelFro(c, expected), 1e-14, "gemm");
    }

    [Fact]
    public void GemmWithZeroBetaIgnoresNaNInOutput()
    {
        var rng = new Random(3);
        var a = Random(rng, 4, 3); var b = Random(rng, 3, 5);
        var c = new MatrixD(4, 5);
        Array.Fill(c.Data, double.NaN);
        DenseOps.Gemm(false, false, 1.0, a, b, 0.0, c);
        AssertRel(RelFro(c, ToMathNet(a) * ToMathNet(b)), 1e-15, "gemm beta=0");
    }

    [Fact]
    public void GemmRejectsMismatchedShapes()
    {
        Assert.Throws<ArgumentException>(() => DenseOps.Gemm(false, false, 1, new MatrixD(2, 3), new MatrixD(4, 2), 0, new MatrixD(2, 2)));
    }
}
