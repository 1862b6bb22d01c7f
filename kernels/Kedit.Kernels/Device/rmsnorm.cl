/* y = x / sqrt(mean(x²) + eps) * gamma, per row; a work-group per row. */
KERNEL void rmsnorm(int n, GLOBAL const float* x, GLOBAL const float* gamma, float eps, GLOBAL float* y)
{
    LOCAL float scratch[RWG];
    int r = GROUP(0), t = LID(0);
    GLOBAL const float* xr = x + (I64)r * n;
    GLOBAL float* yr = y + (I64)r * n;
    float q = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) q += xr[c] * xr[c];
    float inv = 1.0f / sqrtf(group_sum(q, scratch) / n + eps);
    for (int c = t; c < n; c += LSIZE(0)) yr[c] = xr[c] * inv * gamma[c];
}
