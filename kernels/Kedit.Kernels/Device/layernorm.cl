/* y = (x - mean) / sqrt(var + eps) * gamma (+ beta), per row; a work-group per row, two passes
   (mean, then the centred sum of squares) like the CPU reference. */
KERNEL void layernorm(int n, GLOBAL const float* x, GLOBAL const float* gamma, GLOBAL const float* beta, int hasBeta,
                      float eps, GLOBAL float* y)
{
    LOCAL float scratch[RWG];
    int r = GROUP(0), t = LID(0);
    GLOBAL const float* xr = x + (I64)r * n;
    GLOBAL float* yr = y + (I64)r * n;
    float s = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) s += xr[c];
    float mean = group_sum(s, scratch) / n;
    float q = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) { float v = xr[c] - mean; q += v * v; }
    float inv = 1.0f / sqrtf(group_sum(q, scratch) / n + eps);
    for (int c = t; c < n; c += LSIZE(0))
    {
        float v = (xr[c] - mean) * inv * gamma[c];
        if (hasBeta) v += beta[c];
        yr[c] = v;
    }
}
