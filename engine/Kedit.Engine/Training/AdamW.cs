using System.Numerics.Tensors;

namespace Kedit.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter): Adam moments with bias correction, and weight decay applied
/// directly to the weights (decoupled), only to parameters marked <see cref="NamedParameter.Decay"/>.
/// </summary>
public sealed class AdamW
{
    readonly IReadOnlyList<NamedParameter> _parameters;
    readonly double _beta1, _beta2, _eps, _weightDecay;

    public AdamW(IReadOnlyList<NamedParameter> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        _parameters = parameters; _beta1 = beta1; _beta2 = beta2; _eps = eps; _weightDecay = weightDecay;
        M = parameters.Select(p => new float[p.Values.Length]).ToArray();
        V = parameters.Select(p => new float[p.Values.Length]).ToArray();
    }

    /// <summary>First moments, one per parameter (same order).</summary>
    public float[][] M { get; }
    /// <summary>Second moments, one per parameter (same order).</summary>
    public float[][] V { get; }
    /// <summary>Updates taken so far (the bias correction uses it).</summary>
    public int StepsTaken { get; set; }

    /// <summary>One update with gradients <paramref name="grads"/>[i] for parameter i, scaled by <paramref name="gradScale"/> (clipping).</summary>
    public void Step(IReadOnlyList<float[]> grads, double learningRate, double gradScale = 1.0)
    {
        StepsTaken++;
        double c1 = 1 - Math.Pow(_beta1, StepsTaken), c2 = 1 - Math.Pow(_beta2, StepsTaken);
        float b1 = (float)_beta1, b2 = (float)_beta2, scale = (float)gradScale;
        float stepSize = (float)(learningRate / c1), invC2 = (float)(1 / c2), eps = (float)_eps;
        Parallel.For(0, _parameters.Count, i =>
        {
            var p = _parameters[i].Values; var g = grads[i]; var m = M[i]; var v = V[i];
            float decay = _parameters[i].Decay ? (float)(1 - learningRate * _weightDecay) : 1f;
            for (int k = 0; k < p.Length; k++)
            {
                float gk = g[k] * scale;
                m[k] = b1 * m[k] + (1 - b1) * gk;
                v[k] = b2 * v[k] + (1 - b2) * gk * gk;
                p[k] = p[k] * decay - stepSize * m[k] / (MathF.Sqrt(v[k] * invC2) + eps);
            }
        });
    }

    /// <summary>Global L2 norm of a set of gradients (accumulated in double).</summary>
    public static double GlobalNorm(IEnumerable<float[]> grads)
    {
        double s = 0;
        foreach (var g in grads) s += TensorPrimitives.Dot(g, g);
        return Math.Sqrt(s);
    }
}
