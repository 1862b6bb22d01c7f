/* Float32 linear algebra for the editing code (templates in linalg_macros.cl). */

/* Gram block C = alpha·KᵀK + beta·C of key rows K [n, f] (C [f, f]): one triangle computed, mirrored.
   Covariance accumulation on devices without float64 (the host adds the blocks in float64). */
DEFINE_LA_GEMM(syrk_f32, float, float, LA_LOAD_A_T, LA_LOAD_B_N)

/* W[rows, cols] += A[rows, r] · B[cols, r]ᵀ in place: a rank-r update of a weight in its stored layout
   (the host passes U, V or V, U for the two layouts). One work-item per weight element, the r products
   summed in float; neighbouring work-items update neighbouring elements of a row. */
KERNEL void rank_k_update(int rows, int cols, int r, GLOBAL float* W, int ldw, GLOBAL const float* A, int lda,
                          GLOBAL const float* B, int ldb)
{
    int c = GID(0), i = GID(1);
    if (c >= cols || i >= rows) return;
    GLOBAL const float* a = A + (I64)i * lda;
    GLOBAL const float* b = B + (I64)c * ldb;
    float s = 0.0f;
    for (int p = 0; p < r; p++) s += a[p] * b[p];
    W[(I64)i * ldw + c] += s;
}
