/* Linear algebra for the editing code: a tiled product template shared by the float32 program
   (linalg.cl) and the float64 program (linalg_fp64.cl, built only on devices with float64).
   Same tiling as gemm.cl: a 16x16 work-group computes a 64x64 block of C, each work-item a 4x4
   register block, staging 64x16 slices of op(A) and 16x64 slices of op(B) in local memory. */
#define LA_TILE 64
#define LA_TK 16
#define LA_WG 16
#define LA_RPT 4

/* Tile loaders, type-generic (the element is converted to the accumulation type on the way in). */
#define LA_LOAD_A_N(As, A, lda, M, K, row0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int kk = e & 15, r = e >> 4; \
        int gr = (row0) + r, gk = (k0) + kk; \
        As[kk][r] = (gr < (M) && gk < (K)) ? A[(I64)gr * (lda) + gk] : 0; }
#define LA_LOAD_A_T(As, A, lda, M, K, row0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int r = e & 63, kk = e >> 6; \
        int gr = (row0) + r, gk = (k0) + kk; \
        As[kk][r] = (gr < (M) && gk < (K)) ? A[(I64)gk * (lda) + gr] : 0; }
#define LA_LOAD_B_N(Bs, B, ldb, N, K, col0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int c = e & 63, kk = e >> 6; \
        int gc = (col0) + c, gk = (k0) + kk; \
        Bs[kk][c] = (gc < (N) && gk < (K)) ? B[(I64)gk * (ldb) + gc] : 0; }
#define LA_LOAD_B_T(Bs, B, ldb, N, K, col0, k0, tid) \
    for (int l = 0; l < 4; l++) { int e = (tid) + l * 256; int kk = e & 15, c = e >> 4; \
        int gc = (col0) + c, gk = (k0) + kk; \
        Bs[kk][c] = (gc < (N) && gk < (K)) ? B[(I64)gc * (ldb) + gk] : 0; }

/* C = alpha·op(A)·op(B) + beta·C on sub-matrices given by element offsets (host buffers cannot be
   offset portably). tri selects the elements written: 0 all, 1 the upper triangle (r <= c) only,
   2 the upper triangle with each value also stored at its mirror (c, r), so a Gram matrix comes out
   exactly symmetric from one triangle of work. Work-groups wholly below the diagonal return at once.
   TIN is the element type of A and B, TACC that of C and of the products: float inputs multiplied in
   double give exact products. alpha and beta arrive as floats (kernel arguments are 32-bit). */
#define DEFINE_LA_GEMM(NAME, TIN, TACC, LOAD_A, LOAD_B) \
KERNEL void NAME(int M, int N, int K, GLOBAL const TIN* A, I64 offA, int lda, GLOBAL const TIN* B, I64 offB, int ldb, \
                 GLOBAL TACC* C, I64 offC, int ldc, float alphaF, float betaF, int tri) \
{ \
    LOCAL TACC As[LA_TK][LA_TILE]; \
    LOCAL TACC Bs[LA_TK][LA_TILE]; \
    int tx = LID(0), ty = LID(1), tid = ty * LA_WG + tx; \
    int row0 = GROUP(1) * LA_TILE, col0 = GROUP(0) * LA_TILE; \
    if (tri != 0 && row0 > col0 + LA_TILE - 1) return; \
    A += offA; B += offB; C += offC; \
    TACC alpha = (TACC)alphaF, beta = (TACC)betaF; \
    TACC acc[LA_RPT][LA_RPT]; \
    for (int i = 0; i < LA_RPT; i++) for (int j = 0; j < LA_RPT; j++) acc[i][j] = 0; \
    for (int k0 = 0; k0 < K; k0 += LA_TK) \
    { \
        LOAD_A(As, A, lda, M, K, row0, k0, tid) \
        LOAD_B(Bs, B, ldb, N, K, col0, k0, tid) \
        BARRIER(); \
        for (int kk = 0; kk < LA_TK; kk++) \
        { \
            TACC a[LA_RPT], b[LA_RPT]; \
            for (int i = 0; i < LA_RPT; i++) a[i] = As[kk][ty + LA_WG * i]; \
            for (int j = 0; j < LA_RPT; j++) b[j] = Bs[kk][tx + LA_WG * j]; \
            for (int i = 0; i < LA_RPT; i++) for (int j = 0; j < LA_RPT; j++) acc[i][j] += a[i] * b[j]; \
        } \
        BARRIER(); \
    } \
    for (int i = 0; i < LA_RPT; i++) \
    { \
        int r = row0 + ty + LA_WG * i; \
        if (r >= M) continue; \
        for (int j = 0; j < LA_RPT; j++) \
        { \
            int c = col0 + tx + LA_WG * j; \
            if (c >= N || (tri != 0 && r > c)) continue; \
            TACC v = alpha * acc[i][j]; \
            if (beta != 0) v += beta * C[(I64)r * ldc + c]; \
            C[(I64)r * ldc + c] = v; \
            if (tri == 2 && r != c) C[(I64)c * ldc + r] = v; \
        } \
    } \
}
