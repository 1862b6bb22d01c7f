/* y[r, c] = silu(gateUp[r, c]) * gateUp[r, f + c] for the fused [gate | up] rows of width 2f. */
KERNEL void swiglu(int rows, int f, GLOBAL const float* gateUp, GLOBAL float* y)
{
    int c = GID(0), r = GID(1);
    if (c >= f || r >= rows) return;
    float g = gateUp[(I64)r * 2 * f + c];
    y[(I64)r * f + c] = silu(g) * gateUp[(I64)r * 2 * f + f + c];
}
