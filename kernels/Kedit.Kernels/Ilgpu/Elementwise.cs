using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Elementwise ops and their backwards (references: <c>CpuBackend.Activate</c>, <c>GatedActivation</c>, <c>Add</c>,
/// <c>CpuBackwardOps</c>); activation codes as in <see cref="DeviceMath"/>. Grid-stride over the elements (<see cref="Lanes"/>).
/// </summary>
public static class ElementwiseKernels
{
    /// <summary>x = act(x) in place.</summary>
    public static void Activate(Index1D lane, Lanes n, int act, ArrayView<float> x)
    {
        for (long i = lane; i < n.Total; i += n.Stride) x[i] = DeviceMath.Activate(x[i], act);
    }

    /// <summary>y[r, c] = act(gateUp[r, c])·gateUp[r, f + c] over fused [gate | up] rows of width 2f (SwiGLU for silu).</summary>
    public static void GatedActivation(Index1D lane, Lanes n, int f, int act, ArrayView<float> gateUp, ArrayView<float> y)
    {
        for (long e = lane; e < n.Total; e += n.Stride)
        {
            long c = e % f, r = e / f, o = r * 2 * f + c;
            y[e] = DeviceMath.Activate(gateUp[o], act) * gateUp[o + f];
        }
    }

    /// <summary>acc += x.</summary>
    public static void Add(Index1D lane, Lanes n, ArrayView<float> acc, ArrayView<float> x)
    {
        for (long i = lane; i < n.Total; i += n.Stride) acc[i] += x[i];
    }

    /// <summary>d *= act'(u) for the pre-activation u.</summary>
    public static void ActivateBackward(Index1D lane, Lanes n, int act, ArrayView<float> u, ArrayView<float> d)
    {
        for (long i = lane; i < n.Total; i += n.Stride) d[i] *= DeviceMath.ActivateDerivative(u[i], act);
    }

    /// <summary>d[gate | up] = [dKey·u·act'(g) | dKey·act(g)] for key = act(g) ⊙ u.</summary>
    public static void GatedActivationBackward(Index1D lane, Lanes n, int f, int act, ArrayView<float> gateUp, ArrayView<float> dKey, ArrayView<float> dGateUp)
    {
        for (long e = lane; e < n.Total; e += n.Stride)
        {
            long c = e % f, r = e / f, o = r * 2 * f + c;
            float g = gateUp[o], u = gateUp[o + f], dk = dKey[e];
            dGateUp[o] = dk * u * DeviceMath.ActivateDerivative(g, act);
            dGateUp[o + f] = dk * DeviceMath.Activate(g, act);
        }
    }
}
