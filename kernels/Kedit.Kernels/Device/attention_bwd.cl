/* Causal masked attention backward over fused qkv rows [q heads | k heads | v heads] with no cache
   (the backward tape's case): sequence b's keys are its own rows b·T … b·T+T−1, key j is visible to
   query i when j <= i, i − j < window and keyValid[b·T + j] != 0, query head h uses kv head h / (heads / kvHeads).
   Three passes, none with atomics, so results are deterministic:
     attention_bwd_stats  a work-group per (row, head): L = log-sum-exp of the visible scores and
                          D = Σ_j p_j·(dO·v_j) (the softmax backward's inner product);
     attention_bwd_dq     a work-group per (row, head): dq = scale·Σ_j p_j·(dp_j − D)·k_j;
     attention_bwd_dkv    a work-group per (key row, kv head), summing over the heads of its group and
                          the queries i >= j: dv = Σ p_ij·dO_i, dk = scale·Σ p_ij·(dp_ij − D_i)·q_i.
   Keys (or queries) are visited in chunks of RWG, one per work-item; headDim <= RWG.
   A query that sees no key (padding) has L = −∞ and gets zero gradients, as in the CPU reference. */

/* OpenCL C spells the float logarithm log (the dialect headers map the other math names). */
#if defined(__OPENCL_VERSION__) && !defined(logf)
#define logf(x) log(x)
#endif

DEVICE_FN float attn_dot_local(LOCAL_PTR const float* a, GLOBAL const float* b, int n)
{
    float s = 0.0f;
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

KERNEL void attention_bwd_stats(int heads, int kvHeads, int headDim, int T, GLOBAL const float* qkv, GLOBAL const float* dOut,
                                GLOBAL const int* keyValid, float scale, int window, GLOBAL float* lse, GLOBAL float* dsum)
{
    LOCAL float q[RWG];
    LOCAL float go[RWG];
    LOCAL float scratch[RWG];
    int g = GROUP(0), t = LID(0);
    int row = g / heads, h = g % heads, b = row / T, i = row % T;
    int qd = heads * headDim, kvd = kvHeads * headDim, cols = qd + 2 * kvd, kvh = h / (heads / kvHeads);
    if (t < headDim)
    {
        q[t] = qkv[(I64)row * cols + (I64)h * headDim + t];
        go[t] = dOut[(I64)row * qd + (I64)h * headDim + t];
    }
    BARRIER();
    /* Pass 1: running max m and sum l of exp(s − m). */
    float m = -INFINITY_F, l = 0.0f;
    for (int j0 = max(0, i - window + 1); j0 <= i; j0 += RWG)
    {
        int j = j0 + t;
        float s = -INFINITY_F;
        if (j <= i && keyValid[(I64)b * T + j] != 0)
            s = attn_dot_local(q, qkv + ((I64)b * T + j) * cols + qd + (I64)kvh * headDim, headDim) * scale;
        float mNew = fmaxf(m, group_max(s, scratch));
        if (mNew == -INFINITY_F) continue; /* nothing visible yet: uniform across the group */
        float e = s == -INFINITY_F ? 0.0f : expf(s - mNew);
        float chunk = group_sum(e, scratch);
        l = (m == -INFINITY_F ? 0.0f : l * expf(m - mNew)) + chunk;
        m = mNew;
    }
    if (m == -INFINITY_F)
    {
        if (t == 0) { lse[g] = -INFINITY_F; dsum[g] = 0.0f; }
        return; /* uniform across the group */
    }
    float L = m + logf(l);
    /* Pass 2: D = Σ_j p_j·dp_j with dp_j = dO·v_j. */
    float acc = 0.0f;
    for (int j0 = max(0, i - window + 1); j0 <= i; j0 += RWG)
    {
        int j = j0 + t;
        if (j <= i && keyValid[(I64)b * T + j] != 0)
        {
            GLOBAL const float* k = qkv + ((I64)b * T + j) * cols + qd + (I64)kvh * headDim;
            float p = expf(attn_dot_local(q, k, headDim) * scale - L);
            acc += p * attn_dot_local(go, k + kvd, headDim);
        }
    }
    float D = group_sum(acc, scratch);
    if (t == 0) { lse[g] = L; dsum[g] = D; }
}

KERNEL void attention_bwd_dq(int heads, int kvHeads, int headDim, int T, GLOBAL const float* qkv, GLOBAL const float* dOut,
                             GLOBAL const int* keyValid, float scale, int window, GLOBAL const float* lse, GLOBAL const float* dsum, GLOBAL float* dQkv)
{
    LOCAL float q[RWG];
    LOCAL float go[RWG];
    LOCAL float ds[RWG];
    int g = GROUP(0), t = LID(0);
    int row = g / heads, h = g % heads, b = row / T, i = row % T;
    int qd = heads * headDim, kvd = kvHeads * headDim, cols = qd + 2 * kvd, kvh = h / (heads / kvHeads);
    if (t < headDim)
    {
        q[t] = qkv[(I64)row * cols + (I64)h * headDim + t];
        go[t] = dOut[(I64)row * qd + (I64)h * headDim + t];
    }
    BARRIER();
    float L = lse[g], D = dsum[g], acc = 0.0f;
    if (L != -INFINITY_F) /* uniform across the group */
    {
        for (int j0 = max(0, i - window + 1); j0 <= i; j0 += RWG)
        {
            int j = j0 + t;
            float d = 0.0f;
            if (j <= i && keyValid[(I64)b * T + j] != 0)
            {
                GLOBAL const float* k = qkv + ((I64)b * T + j) * cols + qd + (I64)kvh * headDim;
                float p = expf(attn_dot_local(q, k, headDim) * scale - L);
                d = p * (attn_dot_local(go, k + kvd, headDim) - D) * scale;
            }
            ds[t] = d;
            BARRIER();
            if (t < headDim)
            {
                int count = min(RWG, i + 1 - j0);
                GLOBAL const float* k = qkv + ((I64)b * T + j0) * cols + qd + (I64)kvh * headDim + t;
                for (int jj = 0; jj < count; jj++) acc += ds[jj] * k[(I64)jj * cols];
            }
            BARRIER(); /* ds[] is rewritten by the next chunk */
        }
    }
    if (t < headDim) dQkv[(I64)row * cols + (I64)h * headDim + t] = acc;
}

KERNEL void attention_bwd_dkv(int heads, int kvHeads, int headDim, int T, GLOBAL const float* qkv, GLOBAL const float* dOut,
                              GLOBAL const int* keyValid, float scale, int window, GLOBAL const float* lse, GLOBAL const float* dsum, GLOBAL float* dQkv)
{
    LOCAL float kj[RWG];
    LOCAL float vj[RWG];
    LOCAL float pw[RWG];
    LOCAL float dsw[RWG];
    int g = GROUP(0), t = LID(0);
    int row = g / kvHeads, kvh = g % kvHeads, b = row / T, j = row % T, group = heads / kvHeads;
    int qd = heads * headDim, kvd = kvHeads * headDim, cols = qd + 2 * kvd;
    if (t < headDim)
    {
        kj[t] = qkv[(I64)row * cols + qd + (I64)kvh * headDim + t];
        vj[t] = qkv[(I64)row * cols + qd + kvd + (I64)kvh * headDim + t];
    }
    BARRIER();
    float dk = 0.0f, dv = 0.0f;
    /* Queries j … end − 1 see key j (end = min(T, j + window), written so that j + window cannot overflow). */
    int end = T - j <= window ? T : j + window;
    if (keyValid[(I64)b * T + j] != 0) /* uniform across the group; an invalid key gets no gradient */
    {
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int i0 = j; i0 < end; i0 += RWG)
            {
                int i = i0 + t;
                float p = 0.0f, d = 0.0f;
                if (i < end)
                {
                    I64 qi = (I64)b * T + i;
                    float L = lse[qi * heads + h];
                    if (L != -INFINITY_F)
                    {
                        p = expf(attn_dot_local(kj, qkv + qi * cols + (I64)h * headDim, headDim) * scale - L);
                        d = p * (attn_dot_local(vj, dOut + qi * qd + (I64)h * headDim, headDim) - dsum[qi * heads + h]) * scale;
                    }
                }
                pw[t] = p; dsw[t] = d;
                BARRIER();
                if (t < headDim)
                {
                    int count = min(RWG, end - i0);
                    for (int ii = 0; ii < count; ii++)
                    {
                        I64 qi = (I64)b * T + i0 + ii;
                        dv += pw[ii] * dOut[qi * qd + (I64)h * headDim + t];
                        dk += dsw[ii] * qkv[qi * cols + (I64)h * headDim + t];
                    }
                }
                BARRIER(); /* pw[] and dsw[] are rewritten by the next chunk */
            }
    }
    if (t < headDim)
    {
        dQkv[(I64)row * cols + qd + (I64)kvh * headDim + t] = dk;
        dQkv[(I64)row * cols + qd + kvd + (I64)kvh * headDim + t] = dv;
    }
}
