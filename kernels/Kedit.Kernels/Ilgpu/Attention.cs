using ILGPU;
using ILGPU.Algorithms;

namespace Kedit.Kernels.Ilgpu;

/// <summary>Shapes of the attention kernels: fused qkv rows [q heads | k heads | v heads] of width Cols.</summary>
public struct AttentionArgs
{
    public int Heads, KvHeads, HeadDim, Cols, NewTokens, Past, Capacity, Window;
    public float Scale;
}

/// <summary>
/// Causal masked attention over a key/value cache, forward and backward (references: <c>CpuBackend.Attention</c>,
/// <c>CpuBackwardOps.AttentionBackward</c>). Key j is visible to query slot i when j ≤ i, i − j &lt; Window and its
/// keyValid flag is set; query head h reads kv head h / (Heads / KvHeads). A query that sees no key gets zeros.
/// An item per (row, head) of a grid-stride range (<see cref="Lanes"/>) with an online softmax, accumulating straight into its output row, so no
/// per-thread array is needed; results are deterministic (no atomics).
/// </summary>
public static class AttentionKernels
{
    /// <summary>Copies this call's k and v rows into their cache slots: row b·newTokens + t goes to slot b·capacity + past + t.</summary>
    public static void KvStore(Index1D lane, Lanes lanes, int cols, int qd, int kvd, int newTokens, int past, int capacity,
        ArrayView<float> qkv, ArrayView<float> keyCache, ArrayView<float> valueCache)
    {
        for (long e = lane; e < lanes.Total; e += lanes.Stride)
        {
            int c = (int)(e % kvd), row = (int)(e / kvd);
            long slot = (long)(row / newTokens) * capacity + past + row % newTokens;
            keyCache[slot * kvd + c] = qkv[(long)row * cols + qd + c];
            valueCache[slot * kvd + c] = qkv[(long)row * cols + qd + kvd + c];
        }
    }

    public static void Attention(Index1D lane, Lanes lanes, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> keyCache, ArrayView<float> valueCache,
        ArrayView<int> keyValid, ArrayView<float> output)
    {
        for (int g = lane; g < lanes.Total; g += lanes.Stride)
        {
            int row = g / s.Heads, h = g % s.Heads, hd = s.HeadDim;
            int b = row / s.NewTokens, qSlot = s.Past + row % s.NewTokens;
            int kvh = h / (s.Heads / s.KvHeads), kvd = s.KvHeads * hd;
            long q = (long)row * s.Cols + (long)h * hd, o = (long)row * s.Heads * hd + (long)h * hd;
            for (int t = 0; t < hd; t++) output[o + t] = 0f;
            float m = float.NegativeInfinity, l = 0f;
            for (int j = XMath.Max(0, qSlot - s.Window + 1); j <= qSlot; j++)
            {
                long slot = (long)b * s.Capacity + j;
                if (keyValid[slot] == 0) continue;
                long k = slot * kvd + (long)kvh * hd;
                float dot = 0f;
                for (int d = 0; d < hd; d++) dot += qkv[q + d] * keyCache[k + d];
                float sc = dot * s.Scale, mNew = XMath.Max(m, sc);
                float factor = m == float.NegativeInfinity ? 0f : XMath.Exp(m - mNew), e = XMath.Exp(sc - mNew);
                l = l * factor + e;
                for (int t = 0; t < hd; t++) output[o + t] = output[o + t] * factor + e * valueCache[k + t];
                m = mNew;
            }
            if (m != float.NegativeInfinity)
                for (int t = 0; t < hd; t++) output[o + t] /= l;
        }
    }

    // ---- backward (no cache: sequence b's keys are its own rows b·T … b·T+T−1; NewTokens = T) ----------

    /// <summary>Per (row, head): lse = log-sum-exp of the visible scores, dsum = Σ_j p_j·(dO·v_j).</summary>
    public static void AttentionBackwardStats(Index1D lane, Lanes lanes, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid,
        ArrayView<float> lse, ArrayView<float> dsum)
    {
        for (int g = lane; g < lanes.Total; g += lanes.Stride) StatsOf(g, s, qkv, dOut, keyValid, lse, dsum);
    }

    static void StatsOf(int g, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid, ArrayView<float> lse, ArrayView<float> dsum)
    {
        int T = s.NewTokens, hd = s.HeadDim, row = g / s.Heads, h = g % s.Heads, b = row / T, i = row % T;
        int qd = s.Heads * hd, kvd = s.KvHeads * hd, kvh = h / (s.Heads / s.KvHeads);
        long q = (long)row * s.Cols + (long)h * hd, go = (long)row * qd + (long)h * hd;
        float m = float.NegativeInfinity, l = 0f;
        int first = XMath.Max(0, i - s.Window + 1);
        for (int j = first; j <= i; j++)
        {
            if (keyValid[(long)b * T + j] == 0) continue;
            float sc = Dot(qkv, q, qkv, ((long)b * T + j) * s.Cols + qd + (long)kvh * hd, hd) * s.Scale, mNew = XMath.Max(m, sc);
            l = (m == float.NegativeInfinity ? 0f : l * XMath.Exp(m - mNew)) + XMath.Exp(sc - mNew);
            m = mNew;
        }
        if (m == float.NegativeInfinity) { lse[g] = float.NegativeInfinity; dsum[g] = 0f; return; }
        float L = m + XMath.Log(l), acc = 0f;
        for (int j = first; j <= i; j++)
        {
            if (keyValid[(long)b * T + j] == 0) continue;
            long k = ((long)b * T + j) * s.Cols + qd + (long)kvh * hd;
            float p = XMath.Exp(Dot(qkv, q, qkv, k, hd) * s.Scale - L);
            acc += p * Dot(dOut, go, qkv, k + kvd, hd);
        }
        lse[g] = L;
        dsum[g] = acc;
    }

    /// <summary>Per (row, head): dq = scale·Σ_j p_j·(dp_j − D)·k_j, written over the q slot of dQkv.</summary>
    public static void AttentionBackwardDq(Index1D lane, Lanes lanes, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid,
        ArrayView<float> lse, ArrayView<float> dsum, ArrayView<float> dQkv)
    {
        for (int g = lane; g < lanes.Total; g += lanes.Stride) DqOf(g, s, qkv, dOut, keyValid, lse, dsum, dQkv);
    }

    static void DqOf(int g, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid, ArrayView<float> lse, ArrayView<float> dsum, ArrayView<float> dQkv)
    {
        int T = s.NewTokens, hd = s.HeadDim, row = g / s.Heads, h = g % s.Heads, b = row / T, i = row % T;
        int qd = s.Heads * hd, kvd = s.KvHeads * hd, kvh = h / (s.Heads / s.KvHeads);
        long q = (long)row * s.Cols + (long)h * hd, go = (long)row * qd + (long)h * hd;
        for (int t = 0; t < hd; t++) dQkv[q + t] = 0f;
        float L = lse[g], D = dsum[g];
        if (L == float.NegativeInfinity) return;
        for (int j = XMath.Max(0, i - s.Window + 1); j <= i; j++)
        {
            if (keyValid[(long)b * T + j] == 0) continue;
            long k = ((long)b * T + j) * s.Cols + qd + (long)kvh * hd;
            float p = XMath.Exp(Dot(qkv, q, qkv, k, hd) * s.Scale - L);
            float d = p * (Dot(dOut, go, qkv, k + kvd, hd) - D) * s.Scale;
            for (int t = 0; t < hd; t++) dQkv[q + t] += d * qkv[k + t];
        }
    }

    /// <summary>Per (key row, kv head), over the heads of its group and the queries i ≥ j that see it: dv = Σ p·dO_i, dk = scale·Σ p·(dp − D_i)·q_i.</summary>
    public static void AttentionBackwardDkv(Index1D lane, Lanes lanes, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid,
        ArrayView<float> lse, ArrayView<float> dsum, ArrayView<float> dQkv)
    {
        for (int g = lane; g < lanes.Total; g += lanes.Stride) DkvOf(g, s, qkv, dOut, keyValid, lse, dsum, dQkv);
    }

    static void DkvOf(int g, AttentionArgs s, ArrayView<float> qkv, ArrayView<float> dOut, ArrayView<int> keyValid, ArrayView<float> lse, ArrayView<float> dsum, ArrayView<float> dQkv)
    {
        int T = s.NewTokens, hd = s.HeadDim, row = g / s.KvHeads, kvh = g % s.KvHeads, b = row / T, j = row % T, group = s.Heads / s.KvHeads;
        int qd = s.Heads * hd, kvd = s.KvHeads * hd;
        long k = (long)row * s.Cols + qd + (long)kvh * hd, v = k + kvd;
        for (int t = 0; t < hd; t++) { dQkv[k + t] = 0f; dQkv[v + t] = 0f; }
        if (keyValid[(long)b * T + j] == 0) return;
        int end = T - j <= s.Window ? T : j + s.Window;   // written so that j + Window cannot overflow
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int i = j; i < end; i++)
            {
                long qi = (long)b * T + i;
                float L = lse[qi * s.Heads + h];
                if (L == float.NegativeInfinity) continue;
                long q = qi * s.Cols + (long)h * hd, go = qi * qd + (long)h * hd;
                float p = XMath.Exp(Dot(qkv, k, qkv, q, hd) * s.Scale - L);
                float d = p * (Dot(qkv, v, dOut, go, hd) - dsum[qi * s.Heads + h]) * s.Scale;
                for (int t = 0; t < hd; t++)
                {
                    dQkv[v + t] += p * dOut[go + t];
                    dQkv[k + t] += d * qkv[q + t];
                }
            }
    }

    static float Dot(ArrayView<float> a, long ao, ArrayView<float> b, long bo, int n)
    {
        float s = 0f;
        for (int d = 0; d < n; d++) s += a[ao + d] * b[bo + d];
        return s;
    }
}
