/* acc += x over n elements. */
KERNEL void add(I64 n, GLOBAL float* acc, GLOBAL const float* x)
{
    I64 i = (I64)GROUP(0) * LSIZE(0) + LID(0);
    if (i < n) acc[i] += x[i];
}
