/* Loss heads over logit rows of width V, a work-group per row (rows firstRow + GROUP(0)): log-softmax,
   softmax cross-entropy and KL divergence, each with its gradient with respect to the logits. */

/* OpenCL C spells the float logarithm log (the dialect headers map the other math names). */
#if defined(__OPENCL_VERSION__) && !defined(logf)
#define logf(x) log(x)
#endif

/* The row's log-sum-exp (max-shifted); every work-item of the group must call it. */
DEVICE_FN float row_lse(GLOBAL const float* z, int V, LOCAL_PTR float* scratch)
{
    float mx = -INFINITY_F;
    for (int c = LID(0); c < V; c += LSIZE(0)) mx = fmaxf(mx, z[c]);
    mx = group_max(mx, scratch);
    float s = 0.0f;
    for (int c = LID(0); c < V; c += LSIZE(0)) s += expf(z[c] - mx);
    return mx + logf(group_sum(s, scratch));
}

/* out[r, :] = logits[r, :] − logsumexp(logits[r, :]). */
KERNEL void log_softmax(int V, GLOBAL const float* logits, GLOBAL float* out)
{
    LOCAL float scratch[RWG];
    GLOBAL const float* z = logits + (I64)GROUP(0) * V;
    float lse = row_lse(z, V, scratch);
    for (int c = LID(0); c < V; c += LSIZE(0)) out[(I64)GROUP(0) * V + c] = z[c] - lse;
}

/* Row r = firstRow + k with target targets[k]: dLogits[r] = scale·(softmax(z_r) − onehot(target)),
   loss[k] = −log softmax(z_r)[target]. Targets are range-checked on the host. */
KERNEL void xent_grad(int V, int firstRow, GLOBAL const float* logits, GLOBAL const int* targets, float scale,
                      GLOBAL float* dLogits, GLOBAL float* loss)
{
    LOCAL float scratch[RWG];
    int k = GROUP(0), target = targets[k];
    I64 o = (I64)(firstRow + k) * V;
    float lse = row_lse(logits + o, V, scratch);
    for (int c = LID(0); c < V; c += LSIZE(0))
    {
        float g = scale * expf(logits[o + c] - lse);
        if (c == target) g -= scale;
        dLogits[o + c] = g;
    }
    if (LID(0) == 0) loss[k] = lse - logits[o + target];
}

/* KL(p ‖ p0) of row r = firstRow + k against the reference log-probabilities refLogProbs[k, :]:
   kl[k] = f = Σ p·(lp − lp0), dLogits[r] = scale·p·((lp − lp0) − f). */
KERNEL void kl_grad(int V, int firstRow, GLOBAL const float* logits, GLOBAL const float* refLogProbs, float scale,
                    GLOBAL float* dLogits, GLOBAL float* kl)
{
    LOCAL float scratch[RWG];
    int k = GROUP(0);
    I64 o = (I64)(firstRow + k) * V, o0 = (I64)k * V;
    float lse = row_lse(logits + o, V, scratch);
    float s = 0.0f;
    for (int c = LID(0); c < V; c += LSIZE(0))
    {
        float lp = logits[o + c] - lse;
        s += expf(lp) * (lp - refLogProbs[o0 + c]);
    }
    float f = group_sum(s, scratch);
    for (int c = LID(0); c < V; c += LSIZE(0))
    {
        float lp = logits[o + c] - lse;
        dLogits[o + c] = scale * expf(lp) * ((lp - refLogProbs[o0 + c]) - f);
    }
    if (LID(0) == 0) kl[k] = f;
}
