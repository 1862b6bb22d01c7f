/* In-place activation. act: 0 = gelu_new (tanh approximation), 1 = exact gelu (erf), 2 = silu. */
DEVICE_FN float silu(float v) { return v / (1.0f + expf(-v)); }

KERNEL void activate(I64 n, int act, GLOBAL float* x)
{
    I64 i = (I64)GROUP(0) * LSIZE(0) + LID(0);
    if (i >= n) return;
    float v = x[i];
    if (act == 0) v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    else if (act == 1) v = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    else v = silu(v);
    x[i] = v;
}
