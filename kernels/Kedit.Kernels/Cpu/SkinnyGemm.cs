using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// Float GEMM for few rows (2 ≤ m ≤ 16, a few sequences decoding together) on AVX-512 (one row: <see cref="OneRowGemm"/>). Such products are bound by
/// reading B, so B is never packed: each element of B is loaded from memory once (re-reads for a
/// second group of 8 rows hit L2) and all of m's rows are applied to it while it is in registers.
/// transB = false (GPT-2 Conv1D [in, out]): strips of 48 columns walk down B's rows.
/// transB = true (Linear [out, in]): three rows of B at a time are dotted with up to 8 rows of A.
/// </summary>
internal static unsafe class SkinnyGemm
{
    /// <summary>Columns of C per strip in the transB = false kernel (3 zmm).</summary>
    public const int StripWidth = 48;
    private const int GroupRows = 8;
    /// <summary>Rows of B consumed per pass over the strips (each pass re-reads and updates C, which stays in L1/L2).</summary>
    private const int DepthBlock = 32;
    /// <summary>Software prefetch distance in floats along a row of B: the same row's piece two strips ahead.</summary>
    private const int PrefetchAhead = 2 * StripWidth;

    public static void Run(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        if (transB) RunNT(transA, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else RunNN(transA, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }

    private static void RunNN(bool transA, int m, int n, int k, float alpha,
        float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        // A goes to [group][p][8] so one p's row values are adjacent broadcasts; unused rows stay zero.
        int groups = (m + GroupRows - 1) / GroupRows;
        float* ap = ScratchBuffer.A<float>((long)groups * GroupRows * k);
        for (int g = 0; g < groups; g++)
        {
            float* panel = ap + (nint)g * GroupRows * k;
            for (int r = 0; r < GroupRows; r++)
            {
                int i = g * GroupRows + r;
                if (i >= m)
                {
                    for (int p = 0; p < k; p++) panel[(nint)p * GroupRows + r] = 0f;
                    continue;
                }
                if (!transA)
                    for (int p = 0; p < k; p++) panel[(nint)p * GroupRows + r] = a[i * lda + p];
                else
                    for (int p = 0; p < k; p++) panel[(nint)p * GroupRows + r] = a[p * lda + i];
            }
        }

        float* tile = stackalloc float[GroupRows * StripWidth];
        // Depth blocks keep only DepthBlock rows of B in flight, each read sequentially strip after strip,
        // instead of one strip running down all of B (a row stride per access defeats prefetch and the TLB).
        for (int p0 = 0; p0 < k; p0 += DepthBlock)
        {
            int kb = Math.Min(DepthBlock, k - p0);
            float betaBlock = p0 == 0 ? beta : 1f;
            float* bBlock = b + (nint)p0 * ldb;
            for (int j0 = 0; j0 < n; j0 += StripWidth)
            {
                int cols = Math.Min(StripWidth, n - j0);
                float* bs = bBlock + j0;
                nint ldbs = ldb;
                if (cols < StripWidth)
                {
                    // Ragged last strip: copy it zero-padded so the kernel keeps its full-width loads.
                    float* pad = ScratchBuffer.C<float>((long)kb * StripWidth);
                    for (int p = 0; p < kb; p++)
                    {
                        float* s = bs + (nint)p * ldb;
                        float* d = pad + (nint)p * StripWidth;
                        int j = 0;
                        for (; j < cols; j++) d[j] = s[j];
                        for (; j < StripWidth; j++) d[j] = 0f;
                    }
                    bs = pad;
                    ldbs = StripWidth;
                }
                for (int g = 0; g < groups; g++)
                {
                    int rows = Math.Min(GroupRows, m - g * GroupRows);
                    float* panel = ap + (nint)g * GroupRows * k + (nint)p0 * GroupRows;
                    float* cTile = c + (nint)g * GroupRows * ldc + j0;
                    if (cols == StripWidth)
                    {
                        StripNN(rows, kb, panel, bs, ldbs, cTile, ldc, alpha, betaBlock);
                    }
                    else
                    {
                        StripNN(rows, kb, panel, bs, ldbs, tile, StripWidth, 1f, 0f);
                        for (int r = 0; r < rows; r++)
                            for (int j = 0; j < cols; j++)
                            {
                                float* cij = cTile + r * ldc + j;
                                float v = alpha * tile[r * StripWidth + j];
                                *cij = betaBlock == 0f ? v : v + betaBlock * *cij;
                            }
                    }
                }
            }
        }
    }

    private static void StripNN(int rows, nint k, float* a, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
    {
        switch (rows)
        {
            case 8: NN<C8>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 7: NN<C7>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 6: NN<C6>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 5: NN<C5>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 4: NN<C4>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 3: NN<C3>(k, a, b, ldb, c, ldc, alpha, beta); break;
            case 2: NN<C2>(k, a, b, ldb, c, ldc, alpha, beta); break;
            default: NN<C1>(k, a, b, ldb, c, ldc, alpha, beta); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2,
        Vector512<float> alpha, Vector512<float> beta, bool readC)
    {
        if (readC)
        {
            Vector512.Store(Avx512F.FusedMultiplyAdd(Vector512.Load(c), beta, v0 * alpha), c);
            Vector512.Store(Avx512F.FusedMultiplyAdd(Vector512.Load(c + 16), beta, v1 * alpha), c + 16);
            Vector512.Store(Avx512F.FusedMultiplyAdd(Vector512.Load(c + 32), beta, v2 * alpha), c + 32);
        }
        else
        {
            Vector512.Store(v0 * alpha, c);
            Vector512.Store(v1 * alpha, c + 16);
            Vector512.Store(v2 * alpha, c + 32);
        }
    }

    /// <summary>C[0..R, 0..48] = alpha * A_panel * B[:, 0..48] + beta * C; A panel is [k][8].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NN<TRows>(nint k, float* a, float* b, nint ldb, float* c, nint ldc, float alpha, float beta)
        where TRows : struct, IConst
    {
        int R = TRows.Value;
        var z = Vector512<float>.Zero;
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        bool readC = beta != 0f;
        Vector512<float> c00 = z, c01 = z, c02 = z;
        Vector512<float> c10 = z, c11 = z, c12 = z;
        Vector512<float> c20 = z, c21 = z, c22 = z;
        Vector512<float> c30 = z, c31 = z, c32 = z;
        Vector512<float> c40 = z, c41 = z, c42 = z;
        Vector512<float> c50 = z, c51 = z, c52 = z;
        Vector512<float> c60 = z, c61 = z, c62 = z;
        Vector512<float> c70 = z, c71 = z, c72 = z;
        for (nint p = 0; p < k; p++)
        {
            float* br = b + p * ldb;
            // Fetch this row's piece of a later strip: the hardware streamers lose track of DepthBlock interleaved rows.
            float* pf = br + PrefetchAhead;
            Sse.Prefetch0(pf); Sse.Prefetch0(pf + 16); Sse.Prefetch0(pf + 32); Sse.Prefetch0(pf + 47);
            var b0 = Vector512.Load(br); var b1 = Vector512.Load(br + 16); var b2 = Vector512.Load(br + 32);
            float* ar = a + p * 8;
            Vector512<float> av;
            av = Vector512.Create(ar[0]); c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01); c02 = Avx512F.FusedMultiplyAdd(av, b2, c02);
            if (R > 1) { av = Vector512.Create(ar[1]); c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11); c12 = Avx512F.FusedMultiplyAdd(av, b2, c12); }
            if (R > 2) { av = Vector512.Create(ar[2]); c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21); c22 = Avx512F.FusedMultiplyAdd(av, b2, c22); }
            if (R > 3) { av = Vector512.Create(ar[3]); c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31); c32 = Avx512F.FusedMultiplyAdd(av, b2, c32); }
            if (R > 4) { av = Vector512.Create(ar[4]); c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41); c42 = Avx512F.FusedMultiplyAdd(av, b2, c42); }
            if (R > 5) { av = Vector512.Create(ar[5]); c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51); c52 = Avx512F.FusedMultiplyAdd(av, b2, c52); }
            if (R > 6) { av = Vector512.Create(ar[6]); c60 = Avx512F.FusedMultiplyAdd(av, b0, c60); c61 = Avx512F.FusedMultiplyAdd(av, b1, c61); c62 = Avx512F.FusedMultiplyAdd(av, b2, c62); }
            if (R > 7) { av = Vector512.Create(ar[7]); c70 = Avx512F.FusedMultiplyAdd(av, b0, c70); c71 = Avx512F.FusedMultiplyAdd(av, b1, c71); c72 = Avx512F.FusedMultiplyAdd(av, b2, c72); }
        }
        StoreRow(c + 0 * ldc, c00, c01, c02, va, vb, readC);
        if (R > 1) StoreRow(c + 1 * ldc, c10, c11, c12, va, vb, readC);
        if (R > 2) StoreRow(c + 2 * ldc, c20, c21, c22, va, vb, readC);
        if (R > 3) StoreRow(c + 3 * ldc, c30, c31, c32, va, vb, readC);
        if (R > 4) StoreRow(c + 4 * ldc, c40, c41, c42, va, vb, readC);
        if (R > 5) StoreRow(c + 5 * ldc, c50, c51, c52, va, vb, readC);
        if (R > 6) StoreRow(c + 6 * ldc, c60, c61, c62, va, vb, readC);
        if (R > 7) StoreRow(c + 7 * ldc, c70, c71, c72, va, vb, readC);
    }

    private static void RunNT(bool transA, int m, int n, int k, float alpha,
        float* a, nint lda, float* b, nint ldb, float beta, float* c, nint ldc)
    {
        if (transA)
        {
            // The dot-product kernel wants rows of A contiguous along k; A is small here, so transpose it once.
            float* at = ScratchBuffer.A<float>((long)m * k);
            for (int p = 0; p < k; p++)
                for (int i = 0; i < m; i++) at[(nint)i * k + p] = a[p * lda + i];
            a = at;
            lda = k;
        }
        for (int j0 = 0; j0 < n; j0 += 3)
        {
            int cols = Math.Min(3, n - j0);
            float* b0 = b + (nint)j0 * ldb;
            // Fewer than three columns left: point the spare B rows at the last real one and drop their results.
            float* b1 = cols > 1 ? b0 + ldb : b0;
            float* b2 = cols > 2 ? b0 + 2 * ldb : b1;
            for (int i0 = 0; i0 < m; i0 += GroupRows)
            {
                int rows = Math.Min(GroupRows, m - i0);
                float* ag = a + (nint)i0 * lda;
                float* cg = c + (nint)i0 * ldc + j0;
                switch (rows)
                {
                    case 8: NT<C8>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 7: NT<C7>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 6: NT<C6>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 5: NT<C5>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 4: NT<C4>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 3: NT<C3>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    case 2: NT<C2>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                    default: NT<C1>(k, ag, lda, b0, b1, b2, cols, cg, ldc, alpha, beta); break;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreDots(float* c, int cols, Vector512<float> s0, Vector512<float> s1, Vector512<float> s2,
        float alpha, float beta)
    {
        float d0 = alpha * Vector512.Sum(s0);
        c[0] = beta == 0f ? d0 : d0 + beta * c[0];
        if (cols > 1)
        {
            float d1 = alpha * Vector512.Sum(s1);
            c[1] = beta == 0f ? d1 : d1 + beta * c[1];
        }
        if (cols > 2)
        {
            float d2 = alpha * Vector512.Sum(s2);
            c[2] = beta == 0f ? d2 : d2 + beta * c[2];
        }
    }

    /// <summary>C[r, j] = alpha * dot(A row r, B row j) + beta * C[r, j] for r &lt; R, j &lt; cols (≤ 3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NT<TRows>(nint k, float* a, nint lda, float* b0p, float* b1p, float* b2p, int cols,
        float* c, nint ldc, float alpha, float beta) where TRows : struct, IConst
    {
        int R = TRows.Value;
        var z = Vector512<float>.Zero;
        Vector512<float> s00 = z, s01 = z, s02 = z;
        Vector512<float> s10 = z, s11 = z, s12 = z;
        Vector512<float> s20 = z, s21 = z, s22 = z;
        Vector512<float> s30 = z, s31 = z, s32 = z;
        Vector512<float> s40 = z, s41 = z, s42 = z;
        Vector512<float> s50 = z, s51 = z, s52 = z;
        Vector512<float> s60 = z, s61 = z, s62 = z;
        Vector512<float> s70 = z, s71 = z, s72 = z;
        nint p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var b0 = Vector512.Load(b0p + p); var b1 = Vector512.Load(b1p + p); var b2 = Vector512.Load(b2p + p);
            Vector512<float> av;
            av = Vector512.Load(a + 0 * lda + p); s00 = Avx512F.FusedMultiplyAdd(av, b0, s00); s01 = Avx512F.FusedMultiplyAdd(av, b1, s01); s02 = Avx512F.FusedMultiplyAdd(av, b2, s02);
            if (R > 1) { av = Vector512.Load(a + 1 * lda + p); s10 = Avx512F.FusedMultiplyAdd(av, b0, s10); s11 = Avx512F.FusedMultiplyAdd(av, b1, s11); s12 = Avx512F.FusedMultiplyAdd(av, b2, s12); }
            if (R > 2) { av = Vector512.Load(a + 2 * lda + p); s20 = Avx512F.FusedMultiplyAdd(av, b0, s20); s21 = Avx512F.FusedMultiplyAdd(av, b1, s21); s22 = Avx512F.FusedMultiplyAdd(av, b2, s22); }
            if (R > 3) { av = Vector512.Load(a + 3 * lda + p); s30 = Avx512F.FusedMultiplyAdd(av, b0, s30); s31 = Avx512F.FusedMultiplyAdd(av, b1, s31); s32 = Avx512F.FusedMultiplyAdd(av, b2, s32); }
            if (R > 4) { av = Vector512.Load(a + 4 * lda + p); s40 = Avx512F.FusedMultiplyAdd(av, b0, s40); s41 = Avx512F.FusedMultiplyAdd(av, b1, s41); s42 = Avx512F.FusedMultiplyAdd(av, b2, s42); }
            if (R > 5) { av = Vector512.Load(a + 5 * lda + p); s50 = Avx512F.FusedMultiplyAdd(av, b0, s50); s51 = Avx512F.FusedMultiplyAdd(av, b1, s51); s52 = Avx512F.FusedMultiplyAdd(av, b2, s52); }
            if (R > 6) { av = Vector512.Load(a + 6 * lda + p); s60 = Avx512F.FusedMultiplyAdd(av, b0, s60); s61 = Avx512F.FusedMultiplyAdd(av, b1, s61); s62 = Avx512F.FusedMultiplyAdd(av, b2, s62); }
            if (R > 7) { av = Vector512.Load(a + 7 * lda + p); s70 = Avx512F.FusedMultiplyAdd(av, b0, s70); s71 = Avx512F.FusedMultiplyAdd(av, b1, s71); s72 = Avx512F.FusedMultiplyAdd(av, b2, s72); }
        }
        if (p < k)
        {
            // Ragged depth: masked loads read only the valid tail and never fault past the row end.
            var mask = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create((int)(k - p))).AsSingle();
            var b0 = Avx512F.MaskLoad(b0p + p, mask, z); var b1 = Avx512F.MaskLoad(b1p + p, mask, z); var b2 = Avx512F.MaskLoad(b2p + p, mask, z);
            Vector512<float> av;
            av = Avx512F.MaskLoad(a + 0 * lda + p, mask, z); s00 = Avx512F.FusedMultiplyAdd(av, b0, s00); s01 = Avx512F.FusedMultiplyAdd(av, b1, s01); s02 = Avx512F.FusedMultiplyAdd(av, b2, s02);
            if (R > 1) { av = Avx512F.MaskLoad(a + 1 * lda + p, mask, z); s10 = Avx512F.FusedMultiplyAdd(av, b0, s10); s11 = Avx512F.FusedMultiplyAdd(av, b1, s11); s12 = Avx512F.FusedMultiplyAdd(av, b2, s12); }
            if (R > 2) { av = Avx512F.MaskLoad(a + 2 * lda + p, mask, z); s20 = Avx512F.FusedMultiplyAdd(av, b0, s20); s21 = Avx512F.FusedMultiplyAdd(av, b1, s21); s22 = Avx512F.FusedMultiplyAdd(av, b2, s22); }
            if (R > 3) { av = Avx512F.MaskLoad(a + 3 * lda + p, mask, z); s30 = Avx512F.FusedMultiplyAdd(av, b0, s30); s31 = Avx512F.FusedMultiplyAdd(av, b1, s31); s32 = Avx512F.FusedMultiplyAdd(av, b2, s32); }
            if (R > 4) { av = Avx512F.MaskLoad(a + 4 * lda + p, mask, z); s40 = Avx512F.FusedMultiplyAdd(av, b0, s40); s41 = Avx512F.FusedMultiplyAdd(av, b1, s41); s42 = Avx512F.FusedMultiplyAdd(av, b2, s42); }
            if (R > 5) { av = Avx512F.MaskLoad(a + 5 * lda + p, mask, z); s50 = Avx512F.FusedMultiplyAdd(av, b0, s50); s51 = Avx512F.FusedMultiplyAdd(av, b1, s51); s52 = Avx512F.FusedMultiplyAdd(av, b2, s52); }
            if (R > 6) { av = Avx512F.MaskLoad(a + 6 * lda + p, mask, z); s60 = Avx512F.FusedMultiplyAdd(av, b0, s60); s61 = Avx512F.FusedMultiplyAdd(av, b1, s61); s62 = Avx512F.FusedMultiplyAdd(av, b2, s62); }
            if (R > 7) { av = Avx512F.MaskLoad(a + 7 * lda + p, mask, z); s70 = Avx512F.FusedMultiplyAdd(av, b0, s70); s71 = Avx512F.FusedMultiplyAdd(av, b1, s71); s72 = Avx512F.FusedMultiplyAdd(av, b2, s72); }
        }
        StoreDots(c + 0 * ldc, cols, s00, s01, s02, alpha, beta);
        if (R > 1) StoreDots(c + 1 * ldc, cols, s10, s11, s12, alpha, beta);
        if (R > 2) StoreDots(c + 2 * ldc, cols, s20, s21, s22, alpha, beta);
        if (R > 3) StoreDots(c + 3 * ldc, cols, s30, s31, s32, alpha, beta);
        if (R > 4) StoreDots(c + 4 * ldc, cols, s40, s41, s42, alpha, beta);
        if (R > 5) StoreDots(c + 5 * ldc, cols, s50, s51, s52, alpha, beta);
        if (R > 6) StoreDots(c + 6 * ldc, cols, s60, s61, s62, alpha, beta);
        if (R > 7) StoreDots(c + 7 * ldc, cols, s70, s71, s72, alpha, beta);
    }
}
