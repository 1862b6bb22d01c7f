/* Copies this call's k and v rows (after the q heads of each fused qkv row) into their cache slots:
   row b·newTokens + t goes to slot b·capacity + past + t. */
KERNEL void kv_store(int rows, int cols, int qd, int kvd, int newTokens, int past, int capacity,
                     GLOBAL const float* qkv, GLOBAL float* keyCache, GLOBAL float* valueCache)
{
    int c = GID(0), row = GID(1);
    if (c >= kvd || row >= rows) return;
    I64 slot = (I64)(row / newTokens) * capacity + past + row % newTokens;
    keyCache[slot * kvd + c] = qkv[(I64)row * cols + qd + c];
    valueCache[slot * kvd + c] = qkv[(I64)row * cols + qd + kvd + c];
}

/* Causal masked attention, a work-group per (query row, head). Keys are visited in chunks of RWG
   slots (one per work-item) with an online softmax: running max m, running sum l, and work-item t
   accumulating output dimension t. Key slot j is visible when j <= the query's slot i, i − j < window
   (int max: no sliding window) and keyValid[b·capacity + j] != 0; a query that sees no key gets a zero
   output (as the CPU reference). */
KERNEL void attention(int heads, int kvHeads, int headDim, int cols, int newTokens, int past, int capacity,
                      GLOBAL const float* qkv, GLOBAL const float* keyCache, GLOBAL const float* valueCache,
                      GLOBAL const int* keyValid, float scale, int window, GLOBAL float* out)
{
    LOCAL float q[RWG];
    LOCAL float p[RWG];
    LOCAL float scratch[RWG];
    int g = GROUP(0), t = LID(0);
    int row = g / heads, h = g % heads;
    int b = row / newTokens, qSlot = past + row % newTokens;
    int kvh = h / (heads / kvHeads), kvd = kvHeads * headDim;
    if (t < headDim) q[t] = qkv[(I64)row * cols + (I64)h * headDim + t];
    BARRIER();
    float m = -INFINITY_F, l = 0.0f, acc = 0.0f;
    for (int j0 = max(0, qSlot - window + 1); j0 <= qSlot; j0 += RWG)
    {
        int j = j0 + t;
        float s = -INFINITY_F;
        if (j <= qSlot && keyValid[(I64)b * capacity + j] != 0)
        {
            GLOBAL const float* k = keyCache + ((I64)b * capacity + j) * kvd + (I64)kvh * headDim;
            float dot = 0.0f;
            for (int d = 0; d < headDim; d++) dot += q[d] * k[d];
            s = dot * scale;
        }
        float mNew = fmaxf(m, group_max(s, scratch));
        if (mNew == -INFINITY_F) continue; /* nothing visible yet: uniform across the group */
        float e = s == -INFINITY_F ? 0.0f : expf(s - mNew);
        p[t] = e;
        float chunkSum = group_sum(e, scratch); /* its barriers also publish p[] */
        float factor = m == -INFINITY_F ? 0.0f : expf(m - mNew);
        l = l * factor + chunkSum;
        if (t < headDim)
        {
            float a = 0.0f;
            int count = min(RWG, qSlot + 1 - j0);
            GLOBAL const float* v = valueCache + ((I64)b * capacity + j0) * kvd + (I64)kvh * headDim + t;
            for (int jj = 0; jj < count; jj++) a += p[jj] * v[(I64)jj * kvd];
            acc = acc * factor + a;
        }
        m = mNew;
        BARRIER(); /* p[] is rewritten by the next chunk */
    }
    if (t < headDim) out[(I64)row * heads * headDim + (I64)h * headDim + t] = m == -INFINITY_F ? 0.0f : acc / l;
}
