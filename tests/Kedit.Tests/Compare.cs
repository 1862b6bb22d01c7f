using Xunit;

namespace Kedit.Tests;

/// <summary>Tolerance checks in the fixtures' terms: relative L2 error and max absolute deviation.</summary>
public static class Compare
{
    public static double RelL2(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++) { double e = actual[i] - expected[i]; num += e * e; den += expected[i] * expected[i]; }
        return Math.Sqrt(num / Math.Max(den, 1e-300));
    }

    public static double MaxAbs(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double m = 0;
        for (int i = 0; i < expected.Length; i++) m = Math.Max(m, Math.Abs(actual[i] - expected[i]));
        return m;
    }

    public static void Close(string what, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double relL2, double maxAbs = double.PositiveInfinity)
    {
        double r = RelL2(actual, expected), m = MaxAbs(actual, expected);
        Assert.True(r <= relL2 && m <= maxAbs, $"{what}: rel_l2 {r:E2} (limit {relL2:E1}), max |Δ| {m:E2} (limit {maxAbs:E1})");
    }
}

public static class CompareDouble
{
    public static void Close(string what, ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double relL2)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++) { double e = actual[i] - expected[i]; num += e * e; den += expected[i] * expected[i]; }
        double r = Math.Sqrt(num / Math.Max(den, 1e-300));
        Assert.True(r <= relL2, $"{what}: rel_l2 {r:E2} (limit {relL2:E1})");
    }
}
