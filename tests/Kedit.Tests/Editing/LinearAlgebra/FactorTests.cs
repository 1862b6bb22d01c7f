using Kedit.Editing.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using Xunit;
using static Kedit.Tests.Editing.LinearAlgebra.LinAlgTestUtil;

namespace Kedit.Tests.Editing.LinearAlgebra;

public class FactorTests
{
    [Theory]
    [InlineData(37)]
    [InlineData(300)]
    [InlineData(530)]   // more than two 256-blocks: panel and trailing updates across blocks
    public void CholeskyMatchesMathNet(int n)
    {
        var rng = new Random(n);
        var a = Spd(rng, n, decades: 3);
        var f = CholeskyFactor.Factor(a);
        var refL = ToMathNet(a).Cholesky().Factor;
        AssertRel(RelFro(f.Lower(), refL), 1e-10, "L");
        // L Lᵀ reproduces A
        var l = f.Lower();
        AssertRel(RelFro(MatrixD.Multiply(l, l, false, true), a), 1e-14, "L Lᵀ");
        Assert.Equal(ToMathNet(a).Cholesky().DeterminantLn, f.LogDeterminant(), 8);
    }

    [Theory]
    [InlineData(37, 3)]
    [InlineData(300, 13)]
    [InlineData(530, 2)]
    [InlineData(290, 40)]   // enough rows for the row-parallel triangular blocks
    public void CholeskySolvesColumnsAndRows(int n, int k)
    {
        var rng = new Random(n + k);
        var a = Spd(rng, n, decades: 3);
        var b = Random(rng, n, k);
        var f = CholeskyFactor.Factor(a);
        var expected = ToMathNet(a).Solve(ToMathNet(b));
        AssertRel(RelFro(f.Solve(b), expected), 1e-9, "columns");
        var rows = b.Transpose();
        f.SolveRowsInPlace(rows);
        AssertRel(RelFro(rows, expected.Transpose()), 1e-9, "rows");
        // residual of the solve relative to b: backward-stable regardless of conditioning
        var res = MatrixD.Subtract(MatrixD.Multiply(a, f.Solve(b)), b);
        Assert.True(res.FrobeniusNorm() < 1e-12 * b.FrobeniusNorm() * Math.Max(1, a.FrobeniusNorm()), "residual");
    }

    [Fact]
    public void CholeskyReportsTheFirstNonPositivePivot()
    {
        var rng = new Random(5);
        var a = Spd(rng, 40);
        // make the leading 11×11 block indefinite: pivot 10 fails, earlier ones succeed
        a[10, 10] = -1.0;
        Assert.False(CholeskyFactor.TryFactor(a, out var f, out int pivot, out double value));
        Assert.Null(f);
        Assert.Equal(10, pivot);
        Assert.True(value < 0);
        var ex = Assert.Throws<NotPositiveDefiniteException>(() => CholeskyFactor.Factor(a, "λ·C of layer 3"));
        Assert.Contains("λ·C of layer 3", ex.Message);
        Assert.Equal(10, ex.PivotIndex);
        Assert.IsAssignableFrom<KeditException>(ex);
    }

    [Theory]
    [InlineData(20, 7)]
    [InlineData(300, 270)]   // the zero pivot in the second 256-block: after a blocked trailing update
    public void CholeskyRejectsSingularPsdMatrix(int n, int zeroPivot)
    {
        // A = L Lᵀ with L lower triangular, entries −1/0/1 below a diagonal of powers of two and one zero
        // on it: positive semidefinite of rank n − 1, and every step of the factorisation is exact in
        // float64 (dyadic values, exact square roots), so pivot zeroPivot is exactly 0, never a rounding.
        var rng = new Random(n);
        var l = new MatrixD(n, n);
        for (int i = 0; i < n; i++)
        {
            l[i, i] = i == zeroPivot ? 0 : 1 << rng.Next(3);
            for (int j = 0; j < i; j++) l[i, j] = rng.Next(3) - 1;
        }
        var a = MatrixD.Multiply(l, l, false, true);
        Assert.False(CholeskyFactor.TryFactor(a, out var f, out int pivot, out double value), "a singular matrix was factored");
        Assert.Null(f);
        Assert.Equal(zeroPivot, pivot);
        Assert.Equal(0.0, value);
        var e = Assert.Throws<NotPositiveDefiniteException>(() => CholeskyFactor.Factor(a, "λ·C of layer 3"));
        Assert.Equal(zeroPivot, e.PivotIndex);
        Assert.Contains($"λ·C of layer 3 is not positive definite: Cholesky pivot {zeroPivot}", e.Message);
        // The same matrix with the zero lifted is factored, into L itself (the construction is exact).
        l[zeroPivot, zeroPivot] = 1;
        var lifted = CholeskyFactor.Factor(MatrixD.Multiply(l, l, false, true));
        Assert.Equal(l.Data, lifted.Lower().Data);
    }

    [Theory]
    [InlineData(1, 37)]
    [InlineData(4, 300)]
    public void RankOneUpdatesMatchRefactorisation(int k, int n)
    {
        var rng = new Random(k * 7 + n);
        var a = Spd(rng, n, decades: 3);
        var x = Random(rng, k, n);
        var f = CholeskyFactor.Factor(a);
        f.RankOneUpdates(x);
        var updated = MatrixD.Add(a, MatrixD.Multiply(x, x, true, false));
        var refL = ToMathNet(updated).Cholesky().Factor;
        AssertRel(RelFro(f.Lower(), refL), 1e-10, "updated factor");
    }

    [Theory]
    [InlineData(37, 3)]
    [InlineData(300, 5)]
    public void LuSolvesGeneralSystems(int n, int k)
    {
        var rng = new Random(n * 3 + k);
        var a = Random(rng, n, n);
        var b = Random(rng, n, k);
        var lu = LuFactor.Factor(a);
        var expected = ToMathNet(a).Solve(ToMathNet(b));
        AssertRel(RelFro(lu.Solve(b), expected), 1e-9, "LU columns");
        var rows = b.Transpose();
        lu.SolveRowsInPlace(rows);
        AssertRel(RelFro(rows, expected.Transpose()), 1e-9, "LU rows");
    }

    [Fact]
    public void LuHandlesIndefiniteSymmetricMatrixThatCholeskyRejects()
    {
        var rng = new Random(8);
        var a = Spd(rng, 30);
        a[3, 3] = -2.0;
        Assert.False(CholeskyFactor.TryFactor(a, out _, out _, out _));
        var b = Random(rng, 30, 2);
        var x = LuFactor.Factor(a).Solve(b);
        AssertRel(RelFro(x, ToMathNet(a).Solve(ToMathNet(b))), 1e-9, "LU");
    }

    [Fact]
    public void LuReportsSingularMatrix()
    {
        var a = new MatrixD(3, 3, new double[] { 1, 2, 3, 2, 4, 6, 0, 0, 0 });
        var ex = Assert.Throws<SingularMatrixException>(() => LuFactor.Factor(a, "test matrix"));
        Assert.Contains("test matrix", ex.Message);
    }
}
