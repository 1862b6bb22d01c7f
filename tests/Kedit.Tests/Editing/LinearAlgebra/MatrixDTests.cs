using Kedit.Editing.LinearAlgebra;
using Xunit;

namespace Kedit.Tests.Editing.LinearAlgebra;

/// <summary>
/// MatrixD and the level-1 VectorOps on small integer-valued inputs, so every expected value is exact and written
/// out (or computed by a plain loop in the test); each argument refusal with its text.
/// </summary>
public class MatrixDTests
{
    // (r, c) ↦ 10r + c: every entry names its own position.
    static MatrixD Positions(int rows, int cols)
    {
        var m = new MatrixD(rows, cols);
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) m.Data[r * cols + c] = 10 * r + c;
        return m;
    }

    [Fact]
    public void ShapesAndStorageAreRowMajorAndChecked()
    {
        var m = new MatrixD(2, 3, new double[] { 1, 2, 3, 4, 5, 6 });
        Assert.Equal((2, 3), (m.Rows, m.Cols));
        Assert.Equal(6.0, m[1, 2]);
        Assert.Equal(4.0, m[1, 0]);
        m[0, 2] = -7;
        Assert.Equal(-7.0, m.Data[2]);
        Assert.Equal(new double[] { 4, 5, 6 }, m.Row(1).ToArray());
        Assert.Equal("MatrixD 2×3", m.ToString());
        Assert.Empty(new MatrixD(0, 4).Data);
        Assert.Equal((0, 3), (new MatrixD(0, 3, new double[0]).Rows, new MatrixD(0, 3, new double[0]).Cols));   // empty shapes are shapes
        Assert.Equal((2, 0), (new MatrixD(2, 0, new double[0]).Rows, new MatrixD(2, 0, new double[0]).Cols));

        Assert.Contains("matrix shape -1×2 is negative", Assert.Throws<ArgumentOutOfRangeException>(() => new MatrixD(-1, 2)).Message);
        Assert.Contains("matrix shape 2×-1 is negative", Assert.Throws<ArgumentOutOfRangeException>(() => new MatrixD(2, -1)).Message);
        Assert.Contains("matrix shape 3×-2 is negative", Assert.Throws<ArgumentOutOfRangeException>(() => new MatrixD(3, -2, new double[0])).Message);
        Assert.Contains("matrix shape -3×2 is negative", Assert.Throws<ArgumentOutOfRangeException>(() => new MatrixD(-3, 2, new double[0])).Message);
        Assert.Equal("data", Assert.Throws<ArgumentNullException>(() => new MatrixD(1, 1, null!)).ParamName);
        var e = Assert.Throws<ArgumentException>(() => new MatrixD(2, 3, new double[5]));
        Assert.StartsWith("array of length 5 cannot hold a 2×3 matrix", e.Message);
        Assert.Equal("data", e.ParamName);
        Assert.StartsWith("array of length 7 cannot hold a 2×3 matrix", Assert.Throws<ArgumentException>(() => new MatrixD(2, 3, new double[7])).Message);
    }

    [Fact]
    public void IdentityFromSingleCloneAndScaling()
    {
        var i3 = MatrixD.Identity(3);
        Assert.Equal(new double[] { 1, 0, 0, 0, 1, 0, 0, 0, 1 }, i3.Data);
        Assert.Empty(MatrixD.Identity(0).Data);

        var f = MatrixD.FromSingle(2, 2, new float[] { 0.5f, -1.25f, 3f, 1e-3f });
        Assert.Equal(new double[] { 0.5, -1.25, 3, (double)1e-3f }, f.Data);
        Assert.StartsWith("span of length 3 cannot hold a 2×2 matrix", Assert.Throws<ArgumentException>(() => MatrixD.FromSingle(2, 2, new float[3])).Message);
        Assert.StartsWith("span of length 5 cannot hold a 2×2 matrix", Assert.Throws<ArgumentException>(() => MatrixD.FromSingle(2, 2, new float[5])).Message);

        var a = Positions(2, 3);
        var c = a.Clone();
        c[0, 0] = 99;
        Assert.Equal(0.0, a[0, 0]);                 // a deep copy
        Assert.Equal((2, 3), (c.Rows, c.Cols));
        Assert.Equal(a.Data[1..], c.Data[1..]);

        a.Scale(-2);
        Assert.Equal(new double[] { 0, -2, -4, -20, -22, -24 }, a.Data);
        a.AddScaled(0.5, Positions(2, 3));
        Assert.Equal(new double[] { 0, -1.5, -3, -15, -16.5, -18 }, a.Data);
        var bad = Assert.Throws<ArgumentException>(() => a.AddScaled(1, new MatrixD(3, 2)));
        Assert.StartsWith("shape mismatch: 2×3 vs 3×2", bad.Message);
        Assert.Equal("other", bad.ParamName);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 70)]     // several 32-column blocks, a short last one
    [InlineData(70, 3)]
    [InlineData(33, 64)]
    public void TransposeMovesEveryEntry(int rows, int cols)
    {
        var t = Positions(rows, cols).Transpose();
        Assert.Equal((cols, rows), (t.Rows, t.Cols));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) Assert.Equal(10.0 * r + c, t[c, r]);
    }

    [Fact]
    public void ElementwiseSumsDifferencesAndNorm()
    {
        var a = Positions(2, 3);
        var b = new MatrixD(2, 3, new double[] { 1, 1, 2, 3, 5, 8 });
        Assert.Equal(new double[] { 1, 2, 4, 13, 16, 20 }, MatrixD.Add(a, b).Data);
        Assert.Equal(new double[] { -1, 0, 0, 7, 6, 4 }, MatrixD.Subtract(a, b).Data);
        Assert.StartsWith("shape mismatch: 2×3 vs 2×2", Assert.Throws<ArgumentException>(() => MatrixD.Add(a, new MatrixD(2, 2))).Message);
        Assert.StartsWith("shape mismatch: 2×3 vs 3×3", Assert.Throws<ArgumentException>(() => MatrixD.Subtract(a, new MatrixD(3, 3))).Message);
        Assert.Equal(13.0, new MatrixD(1, 2, new double[] { 5, -12 }).FrobeniusNorm());
    }

    [Fact]
    public void MultiplyTakesEachOperandsTransposeAsAsked()
    {
        var a = new MatrixD(2, 3, new double[] { 1, 2, 3, 4, 5, 6 });
        var b = new MatrixD(3, 2, new double[] { 1, 0, 0, 1, 2, -1 });
        Assert.Equal(new double[] { 7, -1, 16, -1 }, MatrixD.Multiply(a, b).Data);                         // a b
        Assert.Equal(new double[] { 14, 32, 32, 77 }, MatrixD.Multiply(a, a, false, true).Data);            // a aᵀ
        var ata = MatrixD.Multiply(a, a, true, false);                                                      // aᵀ a, 3×3
        Assert.Equal(new double[] { 17, 22, 27, 22, 29, 36, 27, 36, 45 }, ata.Data);
        Assert.Equal(new double[] { 7, 16, -1, -1 }, MatrixD.Multiply(b, a, true, true).Data);            // bᵀ aᵀ = (a b)ᵀ
    }

    [Fact]
    public void BlockCopiesTheSubMatrixAndRefusesOutsideIt()
    {
        var m = Positions(4, 5);
        var b = m.Block(1, 2, 2, 3);
        Assert.Equal((2, 3), (b.Rows, b.Cols));
        Assert.Equal(new double[] { 12, 13, 14, 22, 23, 24 }, b.Data);
        Assert.Equal(m.Data, m.Block(0, 0, 4, 5).Data);
        Assert.Empty(m.Block(4, 5, 0, 0).Data);
        foreach (var (r0, c0, rows, cols) in new[] { (-1, 0, 1, 1), (0, -1, 1, 1), (0, 0, -1, 1), (0, 0, 1, -1), (3, 0, 2, 1), (0, 4, 1, 2) })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.Block(r0, c0, rows, cols));
            Assert.Contains($"block ({r0},{c0}) {rows}×{cols} is outside a 4×5 matrix", e.Message);
        }
    }

    [Fact]
    public void ConcatColumnsPlacesPartsSideBySide()
    {
        var m = MatrixD.ConcatColumns(new[] { Positions(2, 1), new MatrixD(2, 0), Positions(2, 2) }, 2);
        Assert.Equal((2, 3), (m.Rows, m.Cols));
        Assert.Equal(new double[] { 0, 0, 1, 10, 10, 11 }, m.Data);
        var e = Assert.Throws<ArgumentException>(() => MatrixD.ConcatColumns(new[] { Positions(2, 1), Positions(3, 1) }, 2));
        Assert.StartsWith("cannot place a 3-row matrix among 2-row columns", e.Message);
        Assert.Equal("parts", e.ParamName);
    }

    [Fact]
    public void RequireShapeNamesTheArgument()
    {
        MatrixD.RequireShape(new MatrixD(2, 3), 2, 3, "c");
        Assert.Equal("c", Assert.Throws<ArgumentNullException>(() => MatrixD.RequireShape(null!, 2, 3, "c")).ParamName);
        foreach (var (rows, cols) in new[] { (3, 3), (2, 4) })
        {
            var e = Assert.Throws<ArgumentException>(() => MatrixD.RequireShape(new MatrixD(rows, cols), 2, 3, "c"));
            Assert.StartsWith($"c must be 2×3, got {rows}×{cols}", e.Message);
            Assert.Equal("c", e.ParamName);
        }
        Assert.Throws<ArgumentException>(() => MatrixD.RequireSameShape(new MatrixD(2, 3), new MatrixD(2, 4), "b"));
        Assert.Throws<ArgumentException>(() => MatrixD.RequireSameShape(new MatrixD(2, 3), new MatrixD(1, 3), "b"));
    }

    // Every length through the 16-wide, 8-wide, 4-wide and scalar tails of the kernels.
    public static IEnumerable<object[]> Lengths() => Enumerable.Range(0, 41).Select(n => new object[] { n });

    [Theory]
    [MemberData(nameof(Lengths))]
    public void DotAxpyAndScaleMatchPlainLoops(int n)
    {
        // Small integers: every product and partial sum is exact, whatever the order of the sums.
        var x = Enumerable.Range(0, n).Select(i => (double)((i * 7) % 11 - 5)).ToArray();
        var y = Enumerable.Range(0, n).Select(i => (double)((i * 5) % 13 - 6)).ToArray();
        double dot = 0;
        for (int i = 0; i < n; i++) dot += x[i] * y[i];
        Assert.Equal(dot, VectorOps.Dot(x, y));
        Assert.Equal(dot, VectorOps.Dot(x, y.Append(1e300).ToArray()));   // a longer y: its tail is not read

        var z = y.Append(123.0).ToArray();
        VectorOps.Axpy(-3, x, z);
        for (int i = 0; i < n; i++) Assert.Equal(y[i] - 3 * x[i], z[i]);
        Assert.Equal(123.0, z[n]);                                           // past x: untouched

        var s = x.ToArray();
        VectorOps.Scale(-2.5, s);
        for (int i = 0; i < n; i++) Assert.Equal(-2.5 * x[i], s[i]);

        double ss = 0;
        foreach (var v in x) ss += v * v;
        Assert.Equal(Math.Sqrt(ss), VectorOps.Norm2(x));
    }

    [Fact]
    public void ShorterSecondVectorsAreRefused()
    {
        Assert.Equal("vector lengths differ", Assert.Throws<ArgumentException>(() => VectorOps.Dot(new double[3], new double[2])).Message);
        Assert.Equal("vector lengths differ", Assert.Throws<ArgumentException>(() => VectorOps.Axpy(1, new double[3], new double[2])).Message);
    }

    [Theory]
    [InlineData(1e200)]    // the plain sum of squares overflows
    [InlineData(1e-200)]   // … or underflows to 0
    [InlineData(1e-145)]   // squares near 1e-290: below the rescaling threshold, still normal numbers
    [InlineData(1e145)]    // squares near 1e290: above it, still finite
    public void Norm2RescalesOutsideTheSafeRange(double scale)
    {
        // (3, 4, 12)·scale has norm 13·scale exactly in real arithmetic; the rescaled sum keeps that to rounding.
        var x = new[] { 3 * scale, -4 * scale, 12 * scale, 0 };
        Assert.Equal(13 * scale, VectorOps.Norm2(x), 13 * scale * 1e-15);
    }

    [Fact]
    public void Norm2OfZeroInfiniteAndNaNVectors()
    {
        Assert.Equal(0.0, VectorOps.Norm2(new double[5]));
        Assert.Equal(0.0, VectorOps.Norm2(ReadOnlySpan<double>.Empty));
        Assert.Equal(double.PositiveInfinity, VectorOps.Norm2(new[] { 1.0, double.NegativeInfinity }));
        Assert.True(double.IsNaN(VectorOps.Norm2(new[] { 1.0, double.NaN })));
        Assert.Equal(5e-300, VectorOps.Norm2(new[] { 3e-300, 4e-300 }), 5e-300 * 1e-15);
    }
}
