using System.Numerics;
using ILGPU.Algorithms;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Scalar math shared by the host reference and the ILGPU kernels (a kernel may call these; they allocate
/// nothing). Activation codes: 0 = gelu_new (tanh approximation), 1 = exact gelu (erf), 2 = silu.
/// </summary>
public static class DeviceMath
{
    /// <summary>erf with ~1e-15 accuracy (series / continued fraction), for exact GELU.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 2.5)
        {
            double sum = x, term = x, x2 = x * x;
            for (int n = 1; n < 60; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum)) break;
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        // erfc continued fraction for large |x|.
        double t = 0;
        for (int k = 60; k >= 1; k--) t = k / 2.0 / (ax + t);
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + t);
        return x < 0 ? erfc - 1 : 1 - erfc;
    }

    /// <summary>act(v): gelu_new 0.5·v·(1 + tanh(√(2/π)(v + 0.044715v³))), gelu 0.5·v·(1 + erf(v/√2)), silu v·σ(v).</summary>
    public static float Activate(float v, int act)
    {
        if (act == 0) return 0.5f * v * (1f + XMath.Tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        if (act == 1) return (float)(0.5 * v * (1 + Erf(v * 0.7071067811865476)));
        return v / (1f + XMath.Exp(-v));
    }

    /// <summary>act'(x) for the same codes.</summary>
    public static float ActivateDerivative(float x, int act)
    {
        if (act == 0)
        {
            const float c = 0.7978845608028654f;
            float th = XMath.Tanh(c * (x + 0.044715f * x * x * x));
            return 0.5f * (1f + th) + 0.5f * x * (1f - th * th) * c * (1f + 3f * 0.044715f * x * x);
        }
        if (act == 1) return (float)(0.5 * (1 + Erf(x * 0.7071067811865476)) + x * XMath.Exp(-0.5 * x * x) * 0.3989422804014327);
        float s = 1f / (1f + XMath.Exp(-x));
        return s * (1f + x * (1f - s));
    }
}
