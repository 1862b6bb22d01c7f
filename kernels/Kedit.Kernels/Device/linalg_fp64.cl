/* Float64 linear algebra for the editing code: covariance accumulation, blocked Cholesky and the
   triangular solves of the MEMIT / ROME solve. A separate program, built only where float64 exists
   (on OpenCL the build fails here, at once, without cl_khr_fp64), so the main program never needs it. */
#ifdef __OPENCL_VERSION__
#ifndef cl_khr_fp64
#error "this device has no float64 support (cl_khr_fp64)"
#endif
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define LA_DBL_MAX 1.7976931348623157e308

/* Covariance: C += KᵀK with float keys K [n, f], products and sums in double (as Covariance on the host). */
DEFINE_LA_GEMM(syrk_f32_f64, float, double, LA_LOAD_A_T, LA_LOAD_B_N)
/* Cholesky trailing update (A22 −= R12ᵀR12 on the upper triangle) and the solves' block updates. */
DEFINE_LA_GEMM(dgemm_tn, double, double, LA_LOAD_A_T, LA_LOAD_B_N)
DEFINE_LA_GEMM(dgemm_nn, double, double, LA_LOAD_A_N, LA_LOAD_B_N)
DEFINE_LA_GEMM(dgemm_nt, double, double, LA_LOAD_A_N, LA_LOAD_B_T)

/* Upper Cholesky (A = RᵀR, row-major, upper triangle read and written) of the nb×nb diagonal block at
   (k0, k0) of A [n, n], unblocked and right-looking, by one work-group. A pivot that is not positive
   and finite stores its global index and value in status[0], status[1] and stops the whole group
   (every work-item reads the same pivot after the same barrier, so they return together); once a pivot
   has failed, later blocks are skipped, so status keeps the first failure and the host reads it once. */
KERNEL void chol_diag_f64(int n, int k0, int nb, GLOBAL double* A, GLOBAL double* status)
{
    int t = LID(0), ls = LSIZE(0);
    if (status[0] >= 0.0) return;
    GLOBAL double* D = A + (I64)k0 * n + k0;
    for (int j = 0; j < nb; j++)
    {
        BARRIER();
        double d = D[(I64)j * n + j];
        if (!(d > 0.0 && d <= LA_DBL_MAX))
        {
            if (t == 0) { status[0] = (double)(k0 + j); status[1] = d; }
            return;
        }
        double r = sqrt(d);
        BARRIER();
        if (t == 0) D[(I64)j * n + j] = r;
        for (int c = j + 1 + t; c < nb; c += ls) D[(I64)j * n + c] /= r;
        BARRIER();
        int w = nb - j - 1;
        for (int e = t; e < w * w; e += ls)
        {
            int i = j + 1 + e / w, c = j + 1 + e % w;
            if (c >= i) D[(I64)i * n + c] -= D[(I64)j * n + i] * D[(I64)j * n + c];
        }
    }
}

/* Panel of a right-looking step: rows k0..k0+nb of the columns right of the factored block R11 become
   R12 = R11⁻ᵀ A12 by forward substitution, one work-item per column (no communication). */
KERNEL void chol_panel_f64(int n, int k0, int nb, GLOBAL double* A)
{
    int c = k0 + nb + GID(0);
    if (c >= n) return;
    GLOBAL double* P = A + (I64)k0 * n;
    for (int j = 0; j < nb; j++)
    {
        double s = P[(I64)j * n + c];
        for (int i = 0; i < j; i++) s -= P[(I64)i * n + k0 + j] * P[(I64)i * n + c];
        P[(I64)j * n + c] = s / P[(I64)j * n + k0 + j];
    }
}

/* Y R = B within the column block [j0, j0+jb) of every row of B [k, n] (earlier blocks already
   subtracted): forward over columns, one work-item per row. */
KERNEL void trsm_fwd_f64(int k, int n, int j0, int jb, GLOBAL double* B, GLOBAL const double* R)
{
    int row = GID(0);
    if (row >= k) return;
    GLOBAL double* x = B + (I64)row * n;
    int j1 = j0 + jb;
    for (int j = j0; j < j1; j++)
    {
        GLOBAL const double* rj = R + (I64)j * n;
        double xj = x[j] / rj[j];
        x[j] = xj;
        for (int c = j + 1; c < j1; c++) x[c] -= xj * rj[c];
    }
}

/* X Rᵀ = Y within the column block [j0, j0+jb) (later blocks already subtracted): backward over columns. */
KERNEL void trsm_bwd_f64(int k, int n, int j0, int jb, GLOBAL double* B, GLOBAL const double* R)
{
    int row = GID(0);
    if (row >= k) return;
    GLOBAL double* x = B + (I64)row * n;
    int j1 = j0 + jb;
    for (int j = j1 - 1; j >= j0; j--)
    {
        GLOBAL const double* rj = R + (I64)j * n;
        double s = x[j];
        for (int c = j + 1; c < j1; c++) s -= rj[c] * x[c];
        x[j] = s / rj[j];
    }
}
