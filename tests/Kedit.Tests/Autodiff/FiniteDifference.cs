using Xunit;

namespace Kedit.Tests.Autodiff;

/// <summary>
/// A parameter's analytic gradient against central finite differences of its loss, in float32 (the
/// forward has no float64 path). Three probes, each a unit direction u with the step h·u sized to the
/// parameter (0.3 % of its norm), Richardson-extrapolated (error O(h⁴)):
/// along the gradient itself (g·u = ‖g‖, the strongest signal: a gradient scaled by s is off by s−1);
/// and two random directions inside the gradient's orthant (uᵢ = rᵢ·sign gᵢ, rᵢ uniform), whose
/// derivative Σ rᵢ|gᵢ| is never small, so a sign error or a wrong part of g shows as a relative error
/// (along an unrestricted random direction the derivative is about ‖g‖/√n, below what float32 resolves
/// at a 1 % tolerance).
/// The tolerance is relative to the checked value, plus the float32 rounding floor of the loss
/// difference (ε₃₂·|L|·8/h), which the caller's loss scale sets.
/// </summary>
public static class FiniteDifference
{
    readonly record struct Probe(string Direction, double Analytic, double Numeric, double Limit);

    static List<Probe> Probes(float[] p, float[] g, Func<double> loss, Random rng)
    {
        double gNorm = Norm(g), pNorm = Norm(p);
        var probes = new List<Probe>();
        if (gNorm == 0) return probes;
        double h = 3e-3 * Math.Max(pNorm, 1e-2);
        double l0 = Math.Abs(loss());
        for (int trial = 0; trial < 3; trial++)
        {
            var u = trial == 0 ? g.Select(v => (double)v).ToArray() : g.Select(v => Math.Sign(v) * rng.NextDouble()).ToArray();
            double un = Math.Sqrt(u.Sum(v => v * v));
            for (int i = 0; i < u.Length; i++) u[i] /= un;
            double analytic = 0;
            for (int i = 0; i < u.Length; i++) analytic += g[i] * u[i];
            double coarse = Central(p, u, h, loss), fine = Central(p, u, h / 2, loss);
            double numeric = (4 * fine - coarse) / 3;
            double floor = 8 * 6e-8 * Math.Max(l0, 1) / h;
            probes.Add(new(trial == 0 ? "gradient" : $"orthant {trial}", analytic, numeric, 1e-2 * Math.Abs(numeric) + floor));
        }
        return probes;
    }

    /// <summary>Asserts every probe within its limit, naming the parameter and the direction.</summary>
    public static void Check(string what, float[] p, float[] g, Func<double> loss, Random rng)
    {
        Assert.True(Norm(g) > 0, $"{what}: the gradient is zero");
        foreach (var pr in Probes(p, g, loss, rng))
            Assert.True(Math.Abs(pr.Numeric - pr.Analytic) <= pr.Limit,
                $"{what} along {pr.Direction}: analytic {pr.Analytic:G6} vs finite difference {pr.Numeric:G6} (|Δ| {Math.Abs(pr.Numeric - pr.Analytic):E2}, limit {pr.Limit:E2})");
    }

    static double Central(float[] p, double[] u, double h, Func<double> loss)
    {
        var orig = (float[])p.Clone();
        try
        {
            for (int i = 0; i < p.Length; i++) p[i] = (float)(orig[i] + h * u[i]);
            double plus = loss();
            for (int i = 0; i < p.Length; i++) p[i] = (float)(orig[i] - h * u[i]);
            double minus = loss();
            return (plus - minus) / (2 * h);
        }
        finally { orig.CopyTo(p, 0); }
    }

    static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));
}
