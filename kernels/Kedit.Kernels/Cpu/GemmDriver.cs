using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// Cache-blocked GEMM driver (Goto/BLIS loop order) on one thread:
/// for each NC column block and KC depth block, pack B into NR-wide panels; for each MC row block pack A
/// into MR-high panels; then sweep the micro-kernel over the tiles (B micro-panel stays in L1 while the
/// A panels stream from L2). Transposes are absorbed by the packing, so the kernel sees one layout.
/// </summary>
internal static unsafe class BlockedGemm<T, TK>
    where T : unmanaged, IFloatingPointIeee754<T>
    where TK : struct, IGemmKernel<T>
{
    public static void Run(bool transA, bool transB, int m, int n, int k, T alpha,
        T* a, nint lda, T* b, nint ldb, T beta, T* c, nint ldc)
    {
        int MR = TK.MR, NR = TK.NR, KC = TK.KC, MC = TK.MC, NC = TK.NC;
        int kcMax = Math.Min(k, KC);
        int ncMax = RoundUp(Math.Min(n, NC), NR);
        int mcMax = RoundUp(Math.Min(m, MC), MR);
        T* bp = ScratchBuffer.B<T>((long)kcMax * ncMax);
        T* ap = ScratchBuffer.A<T>((long)kcMax * mcMax);
        T* tile = stackalloc T[MR * NR];

        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                // Only the first depth block applies the caller's beta; later ones accumulate.
                T betaBlock = pc == 0 ? beta : T.One;
                PackB(transB, b, ldb, pc, jc, kc, nc, bp);
                for (int ic = 0; ic < m; ic += MC)
                {
                    int mc = Math.Min(MC, m - ic);
                    PackA(transA, a, lda, ic, pc, mc, kc, ap);
                    for (int jr = 0; jr < nc; jr += NR)
                    {
                        int nr = Math.Min(NR, nc - jr);
                        T* bPanel = bp + (nint)jr * kc;
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int mr = Math.Min(MR, mc - ir);
                            T* aPanel = ap + (nint)ir * kc;
                            T* cTile = c + (nint)(ic + ir) * ldc + jc + jr;
                            if (nr == NR)
                            {
                                TK.Run(mr, kc, aPanel, bPanel, cTile, ldc, alpha, betaBlock);
                            }
                            else
                            {
                                // Ragged right edge: compute the full tile aside, then merge the valid columns.
                                TK.Run(mr, kc, aPanel, bPanel, tile, NR, T.One, T.Zero);
                                MergeTile(tile, NR, cTile, ldc, mr, nr, alpha, betaBlock);
                            }
                        }
                    }
                }
            }
        }
    }

    private static void MergeTile(T* tile, int ldt, T* c, nint ldc, int rows, int cols, T alpha, T beta)
    {
        for (int r = 0; r < rows; r++)
        {
            T* cr = c + r * ldc;
            T* tr = tile + r * ldt;
            if (beta == T.Zero)
                for (int j = 0; j < cols; j++) cr[j] = alpha * tr[j];
            else
                for (int j = 0; j < cols; j++) cr[j] = alpha * tr[j] + beta * cr[j];
        }
    }

    private static int RoundUp(int x, int to) => (x + to - 1) / to * to;

    /// <summary>Packs op(A)[ic..ic+mc, pc..pc+kc] into MR-row panels laid out [panel][p][MR].</summary>
    private static void PackA(bool transA, T* a, nint lda, int ic, int pc, int mc, int kc, T* dst)
    {
        int MR = TK.MR;
        for (int ir = 0; ir < mc; ir += MR)
        {
            int rows = Math.Min(MR, mc - ir);
            T* panel = dst + (nint)ir * kc;
            if (!transA)
            {
                int p0 = 0;
                if (typeof(T) == typeof(float) && MR == 14 && rows == 14 && Avx512F.IsSupported)
                {
                    // Register transposes of 16 k-values of the 14 rows; the masked store keeps the 14 real lanes.
                    var lanes14 = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(14)).AsSingle();
                    float* src = (float*)(a + (nint)(ic + ir) * lda + pc);
                    for (; p0 + 16 <= kc; p0 += 16)
                        Transpose16x16(src + p0, lda, 14, (float*)panel + (nint)p0 * 14, 14, lanes14);
                }
                // A is [m, k]: each panel row is a contiguous run along k.
                for (int r = 0; r < rows; r++)
                {
                    T* src = a + (nint)(ic + ir + r) * lda + pc;
                    T* d = panel + r;
                    for (int p = p0; p < kc; p++) d[(nint)p * MR] = src[p];
                }
            }
            else
            {
                // A is stored [k, m]: the MR values for one p are contiguous.
                for (int p = 0; p < kc; p++)
                {
                    T* src = a + (nint)(pc + p) * lda + ic + ir;
                    T* d = panel + (nint)p * MR;
                    for (int r = 0; r < rows; r++) d[r] = src[r];
                }
            }
        }
    }

    /// <summary>Packs op(B)[pc..pc+kc, jc..jc+nc] into NR-column panels laid out [panel][p][NR], zero-padded.</summary>
    private static void PackB(bool transB, T* b, nint ldb, int pc, int jc, int kc, int nc, T* dst)
    {
        int NR = TK.NR;
        if (!transB)
        {
            // Walk B in blocks of rows so reads stay a few sequential streams (a column strip at a time
            // would jump a whole row stride per access, which the prefetchers and the TLB handle badly).
            const int RowBlock = 16;
            for (int p0 = 0; p0 < kc; p0 += RowBlock)
            {
                int rowsHere = Math.Min(RowBlock, kc - p0);
                for (int jr = 0; jr < nc; jr += NR)
                {
                    int cols = Math.Min(NR, nc - jr);
                    T* src = b + (nint)(pc + p0) * ldb + jc + jr;
                    T* d0 = dst + (nint)jr * kc + (nint)p0 * NR;
                    for (int p = 0; p < rowsHere; p++)
                    {
                        T* s = src + (nint)p * ldb;
                        T* d = d0 + (nint)p * NR;
                        if (cols == NR)
                        {
                            CopyRow(s, d, NR);
                            continue;
                        }
                        int j = 0;
                        for (; j < cols; j++) d[j] = s[j];
                        for (; j < NR; j++) d[j] = T.Zero;
                    }
                }
            }
            return;
        }
        for (int jr = 0; jr < nc; jr += NR)
        {
            int cols = Math.Min(NR, nc - jr);
            T* panel = dst + (nint)jr * kc;
            if (typeof(T) == typeof(float) && NR == 32 && Avx512F.IsSupported)
            {
                PackTransposedF32x32((float*)(b + (nint)(jc + jr) * ldb + pc), ldb, kc, cols, (float*)panel);
            }
            else
            {
                // B is stored [n, k]: transpose NR rows of B into the panel.
                for (int j = 0; j < NR; j++)
                {
                    T* d = panel + j;
                    if (j < cols)
                    {
                        T* src = b + (nint)(jc + jr + j) * ldb + pc;
                        for (int p = 0; p < kc; p++) d[(nint)p * NR] = src[p];
                    }
                    else
                    {
                        for (int p = 0; p < kc; p++) d[(nint)p * NR] = T.Zero;
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow(T* src, T* dst, int count)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j + Vector512<T>.Count <= count; j += Vector512<T>.Count)
                Vector512.Store(Vector512.Load(src + j), dst + j);
        if (Vector256.IsHardwareAccelerated)
            for (; j + Vector256<T>.Count <= count; j += Vector256<T>.Count)
                Vector256.Store(Vector256.Load(src + j), dst + j);
        for (; j < count; j++) dst[j] = src[j];
    }

    /// <summary>
    /// Transposing pack for B stored [n, k] (float, NR = 32): 16x16 blocks are transposed in registers
    /// (unpack 32-bit, unpack 64-bit, two 128-bit lane shuffles) so the Linear-weight layout packs at
    /// streaming speed instead of one scalar strided store per element.
    /// </summary>
    private static void PackTransposedF32x32(float* src, nint ldb, int kc, int cols, float* panel)
    {
        for (int half = 0; half < 2; half++)
        {
            int c0 = half * 16;
            int valid = Math.Clamp(cols - c0, 0, 16);
            float* rows = src + c0 * ldb;
            float* d = panel + c0;
            int p = 0;
            if (valid == 16)
            {
                var all = Vector512<float>.AllBitsSet;
                for (; p + 16 <= kc; p += 16)
                    Transpose16x16(rows + p, ldb, 16, d + (nint)p * 32, 32, all);
            }
            else if (valid == 0)
            {
                for (; p < kc; p++) Vector512.Store(Vector512<float>.Zero, d + (nint)p * 32);
                continue;
            }
            for (; p < kc; p++)
            {
                float* dp = d + (nint)p * 32;
                int j = 0;
                for (; j < valid; j++) dp[j] = rows[j * ldb + p];
                for (; j < 16; j++) dp[j] = 0f;
            }
        }
    }

    /// <summary>
    /// Transposes a 16x16 block held as 16 rows of 16 floats (row stride lds) into 16 column vectors stored
    /// at d + j * ds, writing only the lanes set in storeMask. Rows at or past rowCount are not read
    /// (they repeat the last valid row; mask their lanes out). In registers: unpack 32-bit, unpack 64-bit,
    /// then two rounds of 128-bit lane shuffles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16x16(float* s, nint lds, int rowCount, float* d, nint ds, Vector512<float> storeMask)
    {
        // After the in-lane stages, uG_q lane L holds rows 4G..4G+3 at column 4L+q.
        InLane4x4(s, lds, 0, rowCount, out var u00, out var u01, out var u02, out var u03);
        InLane4x4(s, lds, 4, rowCount, out var u10, out var u11, out var u12, out var u13);
        InLane4x4(s, lds, 8, rowCount, out var u20, out var u21, out var u22, out var u23);
        InLane4x4(s, lds, 12, rowCount, out var u30, out var u31, out var u32, out var u33);
        // The cross-lane stages gather lane L of the four row groups into one 16-row column vector.
        CrossLane(u00, u10, u20, u30, d, ds, storeMask);
        CrossLane(u01, u11, u21, u31, d + ds, ds, storeMask);
        CrossLane(u02, u12, u22, u32, d + 2 * ds, ds, storeMask);
        CrossLane(u03, u13, u23, u33, d + 3 * ds, ds, storeMask);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InLane4x4(float* s, nint lds, int row0, int rowCount, out Vector512<float> q0, out Vector512<float> q1,
        out Vector512<float> q2, out Vector512<float> q3)
    {
        int last = rowCount - 1;
        var r0 = Vector512.Load(s + Math.Min(row0, last) * lds);
        var r1 = Vector512.Load(s + Math.Min(row0 + 1, last) * lds);
        var r2 = Vector512.Load(s + Math.Min(row0 + 2, last) * lds);
        var r3 = Vector512.Load(s + Math.Min(row0 + 3, last) * lds);
        var t0 = Avx512F.UnpackLow(r0, r1).AsDouble(); var t1 = Avx512F.UnpackHigh(r0, r1).AsDouble();
        var t2 = Avx512F.UnpackLow(r2, r3).AsDouble(); var t3 = Avx512F.UnpackHigh(r2, r3).AsDouble();
        q0 = Avx512F.UnpackLow(t0, t2).AsSingle();
        q1 = Avx512F.UnpackHigh(t0, t2).AsSingle();
        q2 = Avx512F.UnpackLow(t1, t3).AsSingle();
        q3 = Avx512F.UnpackHigh(t1, t3).AsSingle();
    }

    /// <summary>g0..g3 hold one column offset q of row groups 0..3; stores columns q, 4+q, 8+q, 12+q.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CrossLane(Vector512<float> g0, Vector512<float> g1, Vector512<float> g2, Vector512<float> g3,
        float* d, nint ds, Vector512<float> mask)
    {
        var v = Avx512F.Shuffle4x128(g0, g1, 0x88);
        var w = Avx512F.Shuffle4x128(g0, g1, 0xDD);
        var v2 = Avx512F.Shuffle4x128(g2, g3, 0x88);
        var w2 = Avx512F.Shuffle4x128(g2, g3, 0xDD);
        Avx512F.MaskStore(d, mask, Avx512F.Shuffle4x128(v, v2, 0x88));
        Avx512F.MaskStore(d + 4 * ds, mask, Avx512F.Shuffle4x128(w, w2, 0x88));
        Avx512F.MaskStore(d + 8 * ds, mask, Avx512F.Shuffle4x128(v, v2, 0xDD));
        Avx512F.MaskStore(d + 12 * ds, mask, Avx512F.Shuffle4x128(w, w2, 0xDD));
    }
}
