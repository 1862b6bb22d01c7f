/* In-place activation. act: 0 = gelu_new (tanh approximation), 1 = exact gelu (erf), 2 = silu. */
DEVICE_FN float act_apply(float v, int act)
{
    if (act == 0) return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    if (act == 1) return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    return v / (1.0f + expf(-v));
}

KERNEL void activate(I64 n, int act, GLOBAL float* x)
{
    I64 i = (I64)GROUP(0) * LSIZE(0) + LID(0);
    if (i >= n) return;
    x[i] = act_apply(x[i], act);
}
