/* C[M,N] = alpha * op(A) * op(B) + beta * C (+ bias[col]), row-major with leading dimensions.
   Tiled: a 16x16 work-group computes a 64x64 block of C, each work-item a 4x4 register block
   (rows ty + 16i, cols tx + 16j), staging 64x16 slices of op(A) and 16x64 slices of op(B) in
   local memory. Ragged edges load zeros and skip stores. beta == 0 never reads C. */
#define GEMM_TILE 64
#define GEMM_TK 16
#define GEMM_WG 16
#define GEMM_RPT 4

/* Tile loaders: consecutive work-items read consecutive addresses in the stored layout. */
#define LOAD_A_N(As, A, lda, M, K, row0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int kk = e & 15, r = e >> 4; \
        int gr = (row0) + r, gk = (k0) + kk; \
        As[kk][r] = (gr < (M) && gk < (K)) ? A[(I64)gr * (lda) + gk] : 0.0f; }
#define LOAD_A_T(As, A, lda, M, K, row0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int r = e & 63, kk = e >> 6; \
        int gr = (row0) + r, gk = (k0) + kk; \
        As[kk][r] = (gr < (M) && gk < (K)) ? A[(I64)gk * (lda) + gr] : 0.0f; }
#define LOAD_B_N(Bs, B, ldb, N, K, col0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int c = e & 63, kk = e >> 6; \
        int gc = (col0) + c, gk = (k0) + kk; \
        Bs[kk][c] = (gc < (N) && gk < (K)) ? B[(I64)gk * (ldb) + gc] : 0.0f; }
#define LOAD_B_T(Bs, B, ldb, N, K, col0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int kk = e & 15, c = e >> 4; \
        int gc = (col0) + c, gk = (k0) + kk; \
        Bs[kk][c] = (gc < (N) && gk < (K)) ? B[(I64)gc * (ldb) + gk] : 0.0f; }

#define DEFINE_GEMM(NAME, LOAD_A, LOAD_B) \
KERNEL void NAME(int M, int N, int K, GLOBAL const float* A, int lda, GLOBAL const float* B, int ldb, \
                 GLOBAL float* C, int ldc, GLOBAL const float* bias, int hasBias, float alpha, float beta) \
{ \
    LOCAL float As[GEMM_TK][GEMM_TILE]; \
    LOCAL float Bs[GEMM_TK][GEMM_TILE]; \
    int tx = LID(0), ty = LID(1), tid = ty * GEMM_WG + tx; \
    int row0 = GROUP(1) * GEMM_TILE, col0 = GROUP(0) * GEMM_TILE; \
    float acc[GEMM_RPT][GEMM_RPT]; \
    for (int i = 0; i < GEMM_RPT; i++) for (int j = 0; j < GEMM_RPT; j++) acc[i][j] = 0.0f; \
    for (int k0 = 0; k0 < K; k0 += GEMM_TK) \
    { \
        LOAD_A(As, A, lda, M, K, row0, k0, tid) \
        LOAD_B(Bs, B, ldb, N, K, col0, k0, tid) \
        BARRIER(); \
        for (int kk = 0; kk < GEMM_TK; kk++) \
        { \
            float a[GEMM_RPT], b[GEMM_RPT]; \
            for (int i = 0; i < GEMM_RPT; i++) a[i] = As[kk][ty + GEMM_WG * i]; \
            for (int j = 0; j < GEMM_RPT; j++) b[j] = Bs[kk][tx + GEMM_WG * j]; \
            for (int i = 0; i < GEMM_RPT; i++) for (int j = 0; j < GEMM_RPT; j++) acc[i][j] += a[i] * b[j]; \
        } \
        BARRIER(); \
    } \
    for (int i = 0; i < GEMM_RPT; i++) \
    { \
        int r = row0 + ty + GEMM_WG * i; \
        if (r >= M) continue; \
        for (int j = 0; j < GEMM_RPT; j++) \
        { \
            int c = col0 + tx + GEMM_WG * j; \
            if (c >= N) continue; \
            float v = alpha * acc[i][j]; \
            if (beta != 0.0f) v += beta * C[(I64)r * ldc + c]; \
            if (hasBias) v += bias[c]; \
            C[(I64)r * ldc + c] = v; \
        } \
    } \
}

DEFINE_GEMM(gemm_nn, LOAD_A_N, LOAD_B_N)
DEFINE_GEMM(gemm_nt, LOAD_A_N, LOAD_B_T)
DEFINE_GEMM(gemm_tn, LOAD_A_T, LOAD_B_N)
DEFINE_GEMM(gemm_tt, LOAD_A_T, LOAD_B_T)

/* Column kernels: work-item (c, blk) computes column c of rows 8·blk .. 8·blk+7, streaming its column
   of B once for those rows. Used for skinny products (M <= 8 rows, e.g. one decoding step), where the
   tiled kernel would waste most of its 64-row tile. */
#define SKINNY_MAX 8
KERNEL void gemm_skinny_nn(int M, int N, int K, GLOBAL const float* A, int lda, GLOBAL const float* B, int ldb,
                           GLOBAL float* C, int ldc, GLOBAL const float* bias, int hasBias, float alpha, float beta)
{
    int c = GID(0), r0 = GID(1) * SKINNY_MAX;
    if (c >= N || r0 >= M) return;
    int m = min(SKINNY_MAX, M - r0);
    GLOBAL const float* a = A + (I64)r0 * lda;
    float acc[SKINNY_MAX];
    for (int r = 0; r < SKINNY_MAX; r++) acc[r] = 0.0f;
    for (int k = 0; k < K; k++)
    {
        float b = B[(I64)k * ldb + c];
        for (int r = 0; r < SKINNY_MAX; r++) if (r < m) acc[r] += a[(I64)r * lda + k] * b;
    }
    for (int r = 0; r < m; r++)
    {
        GLOBAL float* out = C + (I64)(r0 + r) * ldc + c;
        float v = alpha * acc[r];
        if (beta != 0.0f) v += beta * *out;
        if (hasBias) v += bias[c];
        *out = v;
    }
}

/* B stored [N, K] (nn.Linear layout): a work-group per output column reduces over K, so the
   column's weights are read contiguously. */
KERNEL void gemm_skinny_nt(int M, int N, int K, GLOBAL const float* A, int lda, GLOBAL const float* B, int ldb,
                           GLOBAL float* C, int ldc, GLOBAL const float* bias, int hasBias, float alpha, float beta)
{
    LOCAL float scratch[RWG];
    int c = GROUP(0), t = LID(0);
    float acc[SKINNY_MAX];
    for (int r = 0; r < SKINNY_MAX; r++) acc[r] = 0.0f;
    for (int k = t; k < K; k += LSIZE(0))
    {
        float b = B[(I64)c * ldb + k];
        for (int r = 0; r < SKINNY_MAX; r++) if (r < M) acc[r] += A[(I64)r * lda + k] * b;
    }
    for (int r = 0; r < M; r++)
    {
        float s = group_sum(acc[r], scratch);
        if (t == 0)
        {
            float v = alpha * s;
            if (beta != 0.0f) v += beta * C[(I64)r * ldc + c];
            if (hasBias) v += bias[c];
            C[(I64)r * ldc + c] = v;
        }
    }
}

/* The B-stored-[N, K] column kernel for CPU devices (PoCL): each work-item walks its contiguous row of B
   alone, with no work-group reduction (barriers are expensive where work-items are loop iterations). */
KERNEL void gemm_skinny_nt_serial(int M, int N, int K, GLOBAL const float* A, int lda, GLOBAL const float* B, int ldb,
                                  GLOBAL float* C, int ldc, GLOBAL const float* bias, int hasBias, float alpha, float beta)
{
    int c = GID(0), r0 = GID(1) * SKINNY_MAX;
    if (c >= N || r0 >= M) return;
    int m = min(SKINNY_MAX, M - r0);
    GLOBAL const float* a = A + (I64)r0 * lda;
    GLOBAL const float* bc = B + (I64)c * ldb;
    float acc[SKINNY_MAX];
    for (int r = 0; r < SKINNY_MAX; r++) acc[r] = 0.0f;
    for (int k = 0; k < K; k++)
    {
        float b = bc[k];
        for (int r = 0; r < SKINNY_MAX; r++) if (r < m) acc[r] += a[(I64)r * lda + k] * b;
    }
    for (int r = 0; r < m; r++)
    {
        GLOBAL float* out = C + (I64)(r0 + r) * ldc + c;
        float v = alpha * acc[r];
        if (beta != 0.0f) v += beta * *out;
        if (hasBias) v += bias[c];
        *out = v;
    }
}
