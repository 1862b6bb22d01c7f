using Kedit.Editing.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using Xunit;

namespace Kedit.Tests.Editing.LinearAlgebra;

/// <summary>Random matrices and MathNet conversions for the linear-algebra tests.</summary>
internal static class LinAlgTestUtil
{
    public static MatrixD Random(Random rng, int rows, int cols, double scale = 1.0)
    {
        var m = new MatrixD(rows, cols);
        for (int i = 0; i < m.Data.Length; i++) m.Data[i] = scale * (2 * rng.NextDouble() - 1);
        return m;
    }

    /// <summary>A Gaussian-like random matrix (sum of uniforms), better spread than plain uniforms.</summary>
    public static MatrixD Gaussian(Random rng, int rows, int cols, double scale = 1.0)
    {
        var m = new MatrixD(rows, cols);
        for (int i = 0; i < m.Data.Length; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            m.Data[i] = scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        return m;
    }

    /// <summary>
    /// An SPD "covariance" X Xᵀ / s whose row scales span <paramref name="decades"/> decades (eigenvalues
    /// about twice as many): 1 gives a mild condition number, 3 an ill-conditioned one like C.
    /// </summary>
    public static MatrixD Spd(Random rng, int n, int samples = 0, double decades = 1.0)
    {
        if (samples == 0) samples = 2 * n + 5;
        var x = Gaussian(rng, n, samples);
        // make some directions much weaker than others
        for (int i = 0; i < n; i++)
        {
            double s = Math.Pow(10, -decades * i / n);
            var row = x.Row(i);
            for (int j = 0; j < row.Length; j++) row[j] *= s;
        }
        var c = MatrixD.Multiply(x, x, false, true);
        c.Scale(1.0 / samples);
        return c;
    }

    public static Matrix<double> ToMathNet(MatrixD m)
        => Matrix<double>.Build.Dense(m.Rows, m.Cols, (i, j) => m[i, j]);

    public static MatrixD FromMathNet(Matrix<double> m)
    {
        var r = new MatrixD(m.RowCount, m.ColumnCount);
        for (int i = 0; i < m.RowCount; i++)
            for (int j = 0; j < m.ColumnCount; j++) r[i, j] = m[i, j];
        return r;
    }

    public static double RelFro(MatrixD actual, Matrix<double> expected)
    {
        Assert.Equal(expected.RowCount, actual.Rows);
        Assert.Equal(expected.ColumnCount, actual.Cols);
        double num = 0, den = 0;
        for (int i = 0; i < actual.Rows; i++)
            for (int j = 0; j < actual.Cols; j++)
            {
                double d = actual[i, j] - expected[i, j];
                num += d * d; den += expected[i, j] * expected[i, j];
            }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    public static double RelFro(MatrixD actual, MatrixD expected) => RelFro(actual, ToMathNet(expected));

    public static void AssertRel(double relErr, double tol, string what)
        => Assert.True(relErr < tol, $"{what}: relative error {relErr:E3} ≥ {tol:E1}");
}
