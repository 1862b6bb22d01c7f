using Kedit.Evaluation;
using Xunit;

namespace Kedit.Tests.Demo;

/// <summary>The report's axes: round ticks that cover the data, percentages on 0–100.</summary>
public class HtmlReportTests
{
    // m × 10ᵏ for a mantissa in the given set.
    static bool Round(double t, double[] mantissas)
    {
        if (t == 0) return true;
        double m = Math.Abs(t) / Math.Pow(10, Math.Floor(Math.Log10(Math.Abs(t)) + 1e-12));
        return mantissas.Any(r => Math.Abs(m - r) < 1e-9);
    }

    [Theory]
    [InlineData(0, 60, 0, 60)]
    [InlineData(0.0424, 0.2081, 0, 0.25)]
    [InlineData(0, 300, 0, 300)]
    [InlineData(5, 5, 4.4, 5.6)]
    public void LinearTicksAreRoundAndCoverTheData(double lo, double hi, double first, double last)
    {
        var t = HtmlReport.LinearTicks(lo, hi);
        double step = t[1] - t[0];
        Assert.True(Round(step, new[] { 1, 2, 2.5, 5 }), $"step {step} is not round");
        Assert.All(t, x => Assert.True(Math.Abs(x / step - Math.Round(x / step)) < 1e-9, $"{x} is not a multiple of {step}"));
        Assert.Equal(first, t[0], 9);
        Assert.Equal(last, t[^1], 9);
        Assert.InRange(t.Length, 3, 8);
        var steps = t.Zip(t.Skip(1), (a, b) => b - a).ToList();
        Assert.All(steps, s => Assert.Equal(steps[0], s, 9));
    }

    [Theory]
    [InlineData(4.61, 7.38, new[] { 4.0, 5, 7, 10 })]
    [InlineData(19.4, 556.4, new[] { 10.0, 20, 50, 100, 200, 500, 1000 })]
    public void LogTicksAreRoundAndCoverTheData(double lo, double hi, double[] expected)
    {
        var t = HtmlReport.LogTicks(lo, hi);
        Assert.Equal(expected.Length, t.Length);
        for (int i = 0; i < t.Length; i++) Assert.Equal(expected[i], t[i], 9);
    }

    [Fact]
    public void PercentChartsSpanZeroToHundredAndSeriesDiffer()
    {
        var series = new[] { "a", "b", "c", "d" }.Select(n => new HtmlReport.Series(n, new[] { (0.0, 40.0), (20.0, 40.0) })).ToList();
        string svg = HtmlReport.Svg(new HtmlReport.Chart("t", "efficacy %", series, HtmlReport.Axis.Percent));
        Assert.Contains(">0</text>", svg);
        Assert.Contains(">100</text>", svg);
        Assert.DoesNotContain(">120</text>", svg);
        // Four identical series: four dash patterns (one solid) and four marker shapes keep them apart.
        Assert.Equal(3, svg.Split("<polyline").Skip(1).Count(p => p[..p.IndexOf("/>")].Contains("stroke-dasharray")));
        Assert.Contains("<circle", svg); Assert.Contains("<rect x=", svg); Assert.Contains("<polygon", svg);
    }
}
