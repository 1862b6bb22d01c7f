/* Backward of layernorm and rmsnorm (see CpuBackwardOps). dx is accumulated by a work-group per row,
   which also records the row's statistics; the parameter gradients are then column sums over rows,
   a work-item per column visiting the rows in order (deterministic: no atomics). */

/* LayerNorm: dx += inv·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ, x̂ = (x − mean)·inv.
   stats[2r], stats[2r+1] receive the row's mean and inv for layernorm_bwd_params. */
KERNEL void layernorm_bwd(int n, GLOBAL const float* x, GLOBAL const float* dy, GLOBAL const float* gamma, float eps,
                          GLOBAL float* dx, GLOBAL float* stats)
{
    LOCAL float scratch[RWG];
    int r = GROUP(0), t = LID(0);
    GLOBAL const float* xr = x + (I64)r * n;
    GLOBAL const float* dyr = dy + (I64)r * n;
    GLOBAL float* dxr = dx + (I64)r * n;
    float s = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) s += xr[c];
    float mean = group_sum(s, scratch) / n;
    float q = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) { float v = xr[c] - mean; q += v * v; }
    float inv = 1.0f / sqrtf(group_sum(q, scratch) / n + eps);
    float sg = 0.0f, sgx = 0.0f;
    for (int c = t; c < n; c += LSIZE(0))
    {
        float g = dyr[c] * gamma[c];
        sg += g;
        sgx += g * ((xr[c] - mean) * inv);
    }
    float meanG = group_sum(sg, scratch) / n;
    float meanGX = group_sum(sgx, scratch) / n;
    for (int c = t; c < n; c += LSIZE(0))
    {
        float xhat = (xr[c] - mean) * inv;
        dxr[c] += inv * (dyr[c] * gamma[c] - meanG - xhat * meanGX);
    }
    if (t == 0) { stats[2 * (I64)r] = mean; stats[2 * (I64)r + 1] = inv; }
}

/* dγ[c] += Σ_r dy[r, c]·x̂[r, c] and dβ[c] += Σ_r dy[r, c], from layernorm_bwd's row statistics. */
KERNEL void layernorm_bwd_params(int rows, int n, GLOBAL const float* x, GLOBAL const float* dy, GLOBAL const float* stats,
                                 GLOBAL float* dGamma, int hasGamma, GLOBAL float* dBeta, int hasBeta)
{
    int c = GID(0);
    if (c >= n) return;
    float gs = 0.0f, bs = 0.0f;
    for (int r = 0; r < rows; r++)
    {
        float d = dy[(I64)r * n + c];
        gs += d * ((x[(I64)r * n + c] - stats[2 * (I64)r]) * stats[2 * (I64)r + 1]);
        bs += d;
    }
    if (hasGamma) dGamma[c] += gs;
    if (hasBeta) dBeta[c] += bs;
}

/* RMSNorm (y = x·inv·γ, inv = 1/√(mean x² + eps)): dx += inv·g − (g·x)·inv³/n · x with g = dy·γ.
   stats[r] receives inv for rmsnorm_bwd_params. */
KERNEL void rmsnorm_bwd(int n, GLOBAL const float* x, GLOBAL const float* dy, GLOBAL const float* gamma, float eps,
                        GLOBAL float* dx, GLOBAL float* stats)
{
    LOCAL float scratch[RWG];
    int r = GROUP(0), t = LID(0);
    GLOBAL const float* xr = x + (I64)r * n;
    GLOBAL const float* dyr = dy + (I64)r * n;
    GLOBAL float* dxr = dx + (I64)r * n;
    float q = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) q += xr[c] * xr[c];
    float inv = 1.0f / sqrtf(group_sum(q, scratch) / n + eps);
    float gx = 0.0f;
    for (int c = t; c < n; c += LSIZE(0)) gx += dyr[c] * gamma[c] * xr[c];
    float k = group_sum(gx, scratch) * inv * inv * inv / n;
    for (int c = t; c < n; c += LSIZE(0)) dxr[c] += inv * (dyr[c] * gamma[c]) - k * xr[c];
    if (t == 0) stats[r] = inv;
}

/* dγ[c] += Σ_r dy[r, c]·x[r, c]·inv_r. */
KERNEL void rmsnorm_bwd_params(int rows, int n, GLOBAL const float* x, GLOBAL const float* dy, GLOBAL const float* stats, GLOBAL float* dGamma)
{
    int c = GID(0);
    if (c >= n) return;
    float gs = 0.0f;
    for (int r = 0; r < rows; r++) gs += dy[(I64)r * n + c] * x[(I64)r * n + c] * stats[r];
    dGamma[c] += gs;
}
