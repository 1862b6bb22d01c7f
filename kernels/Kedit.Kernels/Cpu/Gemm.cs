namespace Kedit.Kernels.Cpu;

/// <summary>
/// Single-precision GEMM on row-major matrices: C = alpha * op(A) * op(B) + beta * C,
/// where op(A) is [m, k] and op(B) is [k, n]. lda / ldb / ldc are row strides in elements.
/// transA: A is stored [k, m]; transB: B is stored [n, k] (the nn.Linear weight layout).
/// </summary>
public static unsafe class Gemm
{
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        // Placeholder reference implementation; replaced by the blocked SIMD kernel.
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float s = 0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    float bv = transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                    s += av * bv;
                }
                float* cij = c + (long)i * ldc + j;
                *cij = beta == 0 ? alpha * s : alpha * s + beta * *cij;
            }
    }

    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
            Sgemm(transA, transB, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
    }
}
