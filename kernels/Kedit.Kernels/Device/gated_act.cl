/* The gated MLP: y[r, c] = act(gateUp[r, c]) * gateUp[r, f + c] for the fused [gate | up] rows of width 2f
   (SwiGLU for silu). act as in activate. */
KERNEL void gated_act(int rows, int f, int act, GLOBAL const float* gateUp, GLOBAL float* y)
{
    int c = GID(0), r = GID(1);
    if (c >= f || r >= rows) return;
    y[(I64)r * f + c] = act_apply(gateUp[(I64)r * 2 * f + c], act) * gateUp[(I64)r * 2 * f + f + c];
}
