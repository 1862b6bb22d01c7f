using ILGPU;
using ILGPU.Algorithms;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// LayerNorm and RMSNorm over rows [rows, n], forward and backward (references: <c>CpuBackend.LayerNorm</c>,
/// <c>CpuBackend.RmsNorm</c>, <c>CpuBackwardOps</c>). An item per row of a grid-stride range (<see cref="Lanes"/>), two passes (mean, then the centred
/// sum of squares) like the reference; the backward records each row's statistics (layernorm: mean and inv,
/// rmsnorm: inv) for the parameter-gradient kernels, which sum columns over rows in order (no atomics).
/// </summary>
public static class NormKernels
{
    /// <summary>The row's mean (first of the reference's two passes).</summary>
    static float Mean(ArrayView<float> x, long o, int n)
    {
        float s = 0f;
        for (int c = 0; c < n; c++) s += x[o + c];
        return s / n;
    }

    /// <summary>1/√(var + eps) from the centred sum of squares (the second pass).</summary>
    static float InverseStd(ArrayView<float> x, long o, int n, float mean, float eps)
    {
        float q = 0f;
        for (int c = 0; c < n; c++) { float v = x[o + c] - mean; q += v * v; }
        return 1f / XMath.Sqrt(q / n + eps);
    }

    /// <summary>y = (x − mean)·inv·γ (+ β), inv = 1/√(var + eps).</summary>
    public static void LayerNorm(Index1D lane, Lanes lanes, int n, ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, int hasBeta, float eps, ArrayView<float> y)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            long o = (long)r * n;
            float mean = Mean(x, o, n), inv = InverseStd(x, o, n, mean, eps);
            for (int c = 0; c < n; c++)
            {
                float v = (x[o + c] - mean) * inv * gamma[c];
                if (hasBeta != 0) v += beta[c];
                y[o + c] = v;
            }
        }
    }

    /// <summary>y = x·inv·γ, inv = 1/√(mean x² + eps).</summary>
    public static void RmsNorm(Index1D lane, Lanes lanes, int n, ArrayView<float> x, ArrayView<float> gamma, float eps, ArrayView<float> y)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            long o = (long)r * n;
            float q = 0f;
            for (int c = 0; c < n; c++) q += x[o + c] * x[o + c];
            float inv = 1f / XMath.Sqrt(q / n + eps);
            for (int c = 0; c < n; c++) y[o + c] = x[o + c] * inv * gamma[c];
        }
    }

    /// <summary>dx += inv·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − mean)·inv; stats[2r], stats[2r+1] = mean, inv.</summary>
    public static void LayerNormBackward(Index1D lane, Lanes lanes, int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> gamma, float eps, ArrayView<float> dx, ArrayView<float> stats)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            long o = (long)r * n;
            float mean = Mean(x, o, n), inv = InverseStd(x, o, n, mean, eps);
            float sg = 0f, sgx = 0f;
            for (int c = 0; c < n; c++)
            {
                float g = dy[o + c] * gamma[c];
                sg += g;
                sgx += g * ((x[o + c] - mean) * inv);
            }
            float meanG = sg / n, meanGX = sgx / n;
            for (int c = 0; c < n; c++)
            {
                float xhat = (x[o + c] - mean) * inv;
                dx[o + c] += inv * (dy[o + c] * gamma[c] - meanG - xhat * meanGX);
            }
            stats[2L * r] = mean;
            stats[2L * r + 1] = inv;
        }
    }

    /// <summary>dγ[c] += Σ_r dy·x̂, dβ[c] += Σ_r dy, from <see cref="LayerNormBackward"/>'s statistics; an item per column.</summary>
    public static void LayerNormBackwardParams(Index1D lane, Lanes lanes, int rows, int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> stats,
        ArrayView<float> dGamma, int hasGamma, ArrayView<float> dBeta, int hasBeta)
    {
        for (int c = lane; c < lanes.Total; c += lanes.Stride)
        {
            float gs = 0f, bs = 0f;
            for (int r = 0; r < rows; r++)
            {
                float d = dy[(long)r * n + c];
                gs += d * ((x[(long)r * n + c] - stats[2L * r]) * stats[2L * r + 1]);
                bs += d;
            }
            if (hasGamma != 0) dGamma[c] += gs;
            if (hasBeta != 0) dBeta[c] += bs;
        }
    }

    /// <summary>dx += inv·g − (g·x)·inv³/n·x, g = dy·γ; stats[r] = inv.</summary>
    public static void RmsNormBackward(Index1D lane, Lanes lanes, int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> gamma, float eps, ArrayView<float> dx, ArrayView<float> stats)
    {
        for (int r = lane; r < lanes.Total; r += lanes.Stride)
        {
            long o = (long)r * n;
            float q = 0f;
            for (int c = 0; c < n; c++) q += x[o + c] * x[o + c];
            float inv = 1f / XMath.Sqrt(q / n + eps);
            float gx = 0f;
            for (int c = 0; c < n; c++) gx += dy[o + c] * gamma[c] * x[o + c];
            float k = gx * inv * inv * inv / n;
            for (int c = 0; c < n; c++) dx[o + c] += inv * (dy[o + c] * gamma[c]) - k * x[o + c];
            stats[r] = inv;
        }
    }

    /// <summary>dγ[c] += Σ_r dy·x·inv_r; an item per column.</summary>
    public static void RmsNormBackwardParams(Index1D lane, Lanes lanes, int rows, int n, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> stats, ArrayView<float> dGamma)
    {
        for (int c = lane; c < lanes.Total; c += lanes.Stride)
        {
            float gs = 0f;
            for (int r = 0; r < rows; r++) gs += dy[(long)r * n + c] * x[(long)r * n + c] * stats[r];
            dGamma[c] += gs;
        }
    }
}
