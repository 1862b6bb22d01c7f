using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// Rotary position embedding of the q and k heads of fused qkv rows, in place (reference: <c>CpuBackend.Rope</c>).
/// Item (i, r·nHeads + h) of the grid-stride range turns pair i of head h in row r by the angle of positions[r] (sign +1) or back by it
/// (sign −1: the backward, the rotation being orthogonal). Layout 1: interleaved pairs (2i, 2i+1) (GPT-J);
/// layout 2: rotate-half pairs (i, i + half) (Llama).
/// </summary>
public static class RopeKernels
{
    public static void Rope(Index1D lane, Lanes n, int cols, int nHeads, int headDim, int half, int layout, float sign,
        ArrayView<int> positions, ArrayView<float> cosTable, ArrayView<float> sinTable, ArrayView<float> qkv)
    {
        for (long e = lane; e < n.Total; e += n.Stride)
        {
            int i = (int)(e % half), rh = (int)(e / half), r = rh / nHeads, h = rh % nHeads;
            long x = (long)r * cols + (long)h * headDim;
            float c = cosTable[(long)positions[r] * half + i], s = sign * sinTable[(long)positions[r] * half + i];
            long ia = x + (layout == 1 ? 2 * i : i), ib = x + (layout == 1 ? 2 * i + 1 : i + half);
            float a = qkv[ia], b = qkv[ib];
            qkv[ia] = a * c - b * s;
            qkv[ib] = b * c + a * s;
        }
    }
}
