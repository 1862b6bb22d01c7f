using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Elementwise ops and their backwards (references: <c>CpuBackend.Activate</c>, <c>GatedActivation</c>, <c>Add</c>,
/// <c>CpuBackwardOps</c>); activation codes as in <see cref="DeviceMath"/>.
/// </summary>
public static class ElementwiseKernels
{
    /// <summary>x = act(x) in place.</summary>
    public static void Activate(Index1D i, int act, ArrayView<float> x) => x[i] = DeviceMath.Activate(x[i], act);

    /// <summary>y[r, c] = act(gateUp[r, c])·gateUp[r, f + c] over fused [gate | up] rows of width 2f (SwiGLU for silu).</summary>
    public static void GatedActivation(Index2D i, int f, int act, ArrayView<float> gateUp, ArrayView<float> y)
    {
        int c = i.X, r = i.Y;
        long o = (long)r * 2 * f + c;
        y[(long)r * f + c] = DeviceMath.Activate(gateUp[o], act) * gateUp[o + f];
    }

    /// <summary>acc += x.</summary>
    public static void Add(Index1D i, ArrayView<float> acc, ArrayView<float> x) => acc[i] += x[i];

    /// <summary>d *= act'(u) for the pre-activation u.</summary>
    public static void ActivateBackward(Index1D i, int act, ArrayView<float> u, ArrayView<float> d) => d[i] *= DeviceMath.ActivateDerivative(u[i], act);

    /// <summary>d[gate | up] = [dKey·u·act'(g) | dKey·act(g)] for key = act(g) ⊙ u.</summary>
    public static void GatedActivationBackward(Index2D i, int f, int act, ArrayView<float> gateUp, ArrayView<float> dKey, ArrayView<float> dGateUp)
    {
        int c = i.X, r = i.Y;
        long o = (long)r * 2 * f + c;
        float g = gateUp[o], u = gateUp[o + f], dk = dKey[(long)r * f + c];
        dGateUp[o] = dk * u * DeviceMath.ActivateDerivative(g, act);
        dGateUp[o + f] = dk * DeviceMath.Activate(g, act);
    }
}
