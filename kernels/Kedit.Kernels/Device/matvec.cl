/* y = A x with A [rows, cols] (stride lda): a work-group per row reduces its dot product. */
KERNEL void matvec(int rows, int cols, GLOBAL const float* A, int lda, GLOBAL const float* x, GLOBAL float* y)
{
    LOCAL float scratch[RWG];
    int r = GROUP(0), t = LID(0);
    float s = 0.0f;
    for (int c = t; c < cols; c += LSIZE(0)) s += A[(I64)r * lda + c] * x[c];
    s = group_sum(s, scratch);
    if (t == 0) y[r] = s;
}

/* y = Aᵀ x: one work-item per column; neighbouring work-items read neighbouring addresses. */
KERNEL void matvec_t(int rows, int cols, GLOBAL const float* A, int lda, GLOBAL const float* x, GLOBAL float* y)
{
    int c = GID(0);
    if (c >= cols) return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++) s += A[(I64)r * lda + c] * x[r];
    y[c] = s;
}
