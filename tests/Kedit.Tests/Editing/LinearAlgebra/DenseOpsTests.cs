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
    public void GemmRejectsMismatchedShapesAndAliasesNamingThem()
    {
        var e = Assert.Throws<ArgumentException>(() => DenseOps.Gemm(false, false, 1, new MatrixD(2, 3), new MatrixD(4, 2), 0, new MatrixD(2, 2)));
        Assert.StartsWith("inner dimensions differ: op(A) is 2×3, op(B) is 4×2", e.Message);
        Assert.Equal("b", e.ParamName);
        Assert.StartsWith("inner dimensions differ: op(A) is 3×2, op(B) is 4×2",
            Assert.Throws<ArgumentException>(() => DenseOps.Gemm(true, true, 1, new MatrixD(2, 3), new MatrixD(2, 4), 0, new MatrixD(3, 2))).Message);
        Assert.StartsWith("c must be 2×5, got 2×4",
            Assert.Throws<ArgumentException>(() => DenseOps.Gemm(false, true, 1, new MatrixD(2, 3), new MatrixD(5, 3), 0, new MatrixD(2, 4))).Message);
        var sq = new MatrixD(3, 3);
        Assert.StartsWith("C must not alias A or B", Assert.Throws<ArgumentException>(() => DenseOps.Gemm(false, false, 1, sq, new MatrixD(3, 3), 0, sq)).Message);
        Assert.StartsWith("C must not alias A or B", Assert.Throws<ArgumentException>(() => DenseOps.Gemm(false, false, 1, new MatrixD(3, 3), sq, 0, sq)).Message);
        Assert.Equal("a", Assert.Throws<ArgumentNullException>(() => DenseOps.Gemm(false, false, 1, null!, sq, 0, new MatrixD(3, 3))).ParamName);
        Assert.Equal("b", Assert.Throws<ArgumentNullException>(() => DenseOps.Gemm(false, false, 1, sq, null!, 0, new MatrixD(3, 3))).ParamName);
        Assert.Equal("c", Assert.Throws<ArgumentNullException>(() => DenseOps.Gemm(false, false, 1, sq, new MatrixD(3, 3), 0, null!)).ParamName);
    }

    [Fact]
    public void GemmWithAnEmptyInnerDimensionOnlyScalesC()
    {
        var c = new MatrixD(2, 3, new double[] { 1, 2, 3, 4, 5, 6 });
        DenseOps.Gemm(false, false, 7, new MatrixD(2, 0), new MatrixD(0, 3), -0.5, c);
        Assert.Equal(new double[] { -0.5, -1, -1.5, -2, -2.5, -3 }, c.Data);
        DenseOps.Gemm(true, true, 7, new MatrixD(0, 2), new MatrixD(3, 0), 2, c);
        Assert.Equal(new double[] { -1, -2, -3, -4, -5, -6 }, c.Data);
        var empty = new MatrixD(0, 3);
        DenseOps.Gemm(false, false, 1, new MatrixD(0, 2), new MatrixD(2, 3), 0, empty);   // m = 0: nothing to do
        Assert.Empty(empty.Data);
    }

    // Integer entries: every row sum is exact, so the products are compared for equality with plain loops.
    static MatrixD Ints(int rows, int cols)
    {
        var m = new MatrixD(rows, cols);
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) m[r, c] = (3 * r + 7 * c) % 9 - 4;
        return m;
    }

    [Theory]
    [InlineData(5, 3)]
    [InlineData(1, 40)]
    [InlineData(600, 2000)]   // 600·2·2000 flops ≥ 2e6: split over threads
    public void MatVecAndMatTVecMatchPlainLoops(int rows, int cols)
    {
        var a = Ints(rows, cols);
        var x = Enumerable.Range(0, cols).Select(c => (double)(c % 5 - 2)).ToArray();
        var y = Enumerable.Repeat(double.NaN, rows).ToArray();   // overwritten, never read
        DenseOps.MatVec(a, x, y);
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += a[r, c] * x[c];
            Assert.Equal(s, y[r]);
        }
        var u = Enumerable.Range(0, rows).Select(r => (double)(r % 4 - 1)).ToArray();   // every fourth weight is 0
        var v = Enumerable.Repeat(double.NaN, cols).ToArray();
        DenseOps.MatTVec(a, u, v);
        for (int c = 0; c < cols; c++)
        {
            double s = 0;
            for (int r = 0; r < rows; r++) s += a[r, c] * u[r];
            Assert.Equal(s, v[c]);
        }
    }

    [Fact]
    public void MatVecAndMatTVecRefuseMismatchedVectors()
    {
        var a = new MatrixD(2, 3);
        Assert.StartsWith("matrix-vector shapes differ: A is 2×3, x has 2, y has 2", Assert.Throws<ArgumentException>(() => DenseOps.MatVec(a, new double[2], new double[2])).Message);
        Assert.StartsWith("matrix-vector shapes differ: A is 2×3, x has 3, y has 3", Assert.Throws<ArgumentException>(() => DenseOps.MatVec(a, new double[3], new double[3])).Message);
        Assert.StartsWith("matrix-vector shapes differ: Aᵀ is 3×2, x has 3, y has 3", Assert.Throws<ArgumentException>(() => DenseOps.MatTVec(a, new double[3], new double[3])).Message);
        Assert.StartsWith("matrix-vector shapes differ: Aᵀ is 3×2, x has 2, y has 2", Assert.Throws<ArgumentException>(() => DenseOps.MatTVec(a, new double[2], new double[2])).Message);
        Assert.Throws<ArgumentNullException>(() => DenseOps.MatVec(null!, new double[3], new double[2]));
        Assert.Throws<ArgumentNullException>(() => DenseOps.MatTVec(null!, new double[2], new double[3]));
    }

    [Fact]
    public void ParallelRangesCoverEveryIndexOnceInContiguousChunks()
    {
        int saved = DenseOps.MaxThreads;
        Assert.Equal(Math.Max(1, Environment.ProcessorCount), saved);   // the default: every logical core (no other test sets it)
        try
        {
            DenseOps.MaxThreads = 0;
            Assert.Equal(1, DenseOps.MaxThreads);
            DenseOps.MaxThreads = -4;
            Assert.Equal(1, DenseOps.MaxThreads);
            DenseOps.MaxThreads = 3;
            Assert.Equal(3, DenseOps.MaxThreads);
            foreach (var (count, work, chunks) in new[] { (7, 1e6, 3), (2, 1e6, 2), (7, 1.0, 1), (1, 1e9, 1) })
            {
                var ranges = new List<(int, int)>();
                DenseOps.ParallelRanges(count, work, (i0, i1) => { lock (ranges) ranges.Add((i0, i1)); });
                ranges.Sort();
                Assert.Equal(chunks, ranges.Count);
                Assert.Equal(0, ranges[0].Item1);
                Assert.Equal(count, ranges[^1].Item2);
                for (int i = 0; i < ranges.Count; i++)
                {
                    Assert.True(ranges[i].Item2 > ranges[i].Item1, $"empty chunk {ranges[i]}");
                    if (i > 0) Assert.Equal(ranges[i - 1].Item2, ranges[i].Item1);
                }
                if (chunks == 3) Assert.Equal(new[] { (0, 2), (2, 4), (4, 7) }, ranges);
            }
            var none = 0;
            DenseOps.ParallelRanges(0, 1e9, (_, _) => none++);
            Assert.Equal(0, none);
            DenseOps.MaxThreads = 1;
            var single = new List<(int, int)>();
            DenseOps.ParallelRanges(100, 1e9, (i0, i1) => single.Add((i0, i1)));
            Assert.Equal(new[] { (0, 100) }, single);
        }
        finally { DenseOps.MaxThreads = saved; }
    }
}
