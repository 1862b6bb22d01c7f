using ILGPU;

namespace Kedit.Kernels.Ilgpu;

/// <summary>Token (and learned position) embedding, forward and backward (references: <c>CpuBackend.Embed</c>, <c>CpuBackwardOps</c>). Ids are range-checked on the host.</summary>
public static class EmbeddingKernels
{
    /// <summary>x[r, :] = table[ids[r], :] (+ positionTable[positions[r], :]); a 16-bit table widened as it is read (as the GEMM's B).</summary>
    public static void Embed<TT, TLoad>(Index1D lane, Lanes n, int d, ArrayView<int> ids, ArrayView<TT> table, ArrayView<int> positions, ArrayView<float> positionTable, int hasPositions, ArrayView<float> x)
        where TT : unmanaged where TLoad : struct, IOperands<float, TT, float>
    {
        for (long e = lane; e < n.Total; e += n.Stride)
        {
            long c = e % d, r = e / d;
            float v = default(TLoad).B(table[(long)ids[r] * d + c]);
            if (hasPositions != 0) v += positionTable[(long)positions[r] * d + c];
            x[e] = v;
        }
    }

    /// <summary>dTable[ids[r], c] += dx[r, c] for ids ≥ 0 (negative ids are padding); an item per column visits rows in order.</summary>
    public static void EmbedBackward(Index1D lane, Lanes n, int rows, int d, ArrayView<int> ids, ArrayView<float> dx, ArrayView<float> dTable)
    {
        for (long c = lane; c < n.Total; c += n.Stride)
            for (int r = 0; r < rows; r++)
            {
                int id = ids[r];
                if (id >= 0) dTable[(long)id * d + c] += dx[(long)r * d + c];
            }
    }
}
