/* Backward of the elementwise and gather ops (see CpuBackwardOps). */

DEVICE_FN float bwd_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* act'(x). act as in activate: 0 gelu_new, 1 exact gelu, 2 silu. */
DEVICE_FN float act_deriv(float x, int act)
{
    if (act == 0)
    {
        const float c = 0.7978845608028654f;
        float th = tanhf(c * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * c * (1.0f + 3.0f * 0.044715f * x * x);
    }
    if (act == 1) return 0.5f * (1.0f + erff(x * 0.7071067811865476f)) + x * expf(-0.5f * x * x) * 0.3989422804014327f;
    float s = bwd_sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

/* d[i] *= act'(u[i]) for the pre-activation u. */
KERNEL void activate_bwd(I64 n, int act, GLOBAL const float* u, GLOBAL float* d)
{
    I64 i = (I64)GROUP(0) * LSIZE(0) + LID(0);
    if (i >= n) return;
    d[i] *= act_deriv(u[i], act);
}

/* key = act(g) ⊙ u over fused [gate | up] rows of width 2f: writes d[gate | up] = [dKey·u·act'(g) | dKey·act(g)]. */
KERNEL void gated_act_bwd(int rows, int f, int act, GLOBAL const float* gateUp, GLOBAL const float* dKey, GLOBAL float* dGateUp)
{
    int c = GID(0), r = GID(1);
    if (c >= f || r >= rows) return;
    I64 o = (I64)r * 2 * f + c;
    float g = gateUp[o], u = gateUp[o + f], dk = dKey[(I64)r * f + c];
    dGateUp[o] = dk * u * act_deriv(g, act);
    dGateUp[o + f] = dk * act_apply(g, act);
}

/* RoPE backward: the rotation is orthogonal, so each pair of the q and k heads turns back by −angle.
   Indexing as in rope. */
KERNEL void rope_bwd(int rows, int cols, int nHeads, int headDim, int halfDim, int layout,
                     GLOBAL const int* positions, GLOBAL const float* cosTable, GLOBAL const float* sinTable, GLOBAL float* dQkv)
{
    int i = GID(0), rh = GID(1);
    if (i >= halfDim || rh >= rows * nHeads) return;
    int r = rh / nHeads, h = rh % nHeads;
    GLOBAL float* x = dQkv + (I64)r * cols + (I64)h * headDim;
    float c = cosTable[(I64)positions[r] * halfDim + i], s = sinTable[(I64)positions[r] * halfDim + i];
    int ia = layout == 1 ? 2 * i : i, ib = layout == 1 ? 2 * i + 1 : i + halfDim;
    float a = x[ia], b = x[ib];
    x[ia] = a * c + b * s;
    x[ib] = b * c - a * s;
}

/* sum[c] += Σ_r y[r, c] (the bias gradient of a linear map): a work-item per column, rows in order. */
KERNEL void col_sum_acc(int rows, int cols, GLOBAL const float* y, GLOBAL float* sum)
{
    int c = GID(0);
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += y[(I64)r * cols + c];
    sum[c] += s;
}

/* Embedding backward: dTable[ids[r], c] += dx[r, c] for every row with ids[r] >= 0 (negative ids are
   padding). A work-item owns a column and visits the rows in order, so repeated ids accumulate
   deterministically without atomics. Ids are range-checked on the host. */
KERNEL void embed_bwd(int rows, int d, GLOBAL const int* ids, GLOBAL const float* dx, GLOBAL float* dTable)
{
    int c = GID(0);
    if (c >= d) return;
    for (int r = 0; r < rows; r++)
    {
        int id = ids[r];
        if (id >= 0) dTable[(I64)id * d + c] += dx[(I64)r * d + c];
    }
}
