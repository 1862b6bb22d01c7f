using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// Cache-blocked GEMM driver (Goto/BLIS blocking) shared by all threads of one call.
/// <para>
/// Each pass packs a row super-block of op(A) and a column super-block of op(B) once, into buffers every
/// thread reads (a pack phase whose panels the threads share out), then the threads share out the tiles of
/// C (a compute phase). Packing each operand once, rather than once per thread, halves the packing work of
/// a two-thread split; the threads take work items from a counter rather than fixed slabs, so when one
/// core is busy with something else the other takes more of the items instead of waiting at the end.
/// The only waits are between phases (a phase must be done before the next reads or overwrites its buffers).
/// </para>
/// <para>
/// Within a compute item (MC rows by a group of NR-wide panels) the loops run depth block (KC) outermost,
/// then B micro-panel, then A micro-panel: the KC x NR B micro-panel stays in L1 while the MC x KC slice of A
/// streams from L2. Transposes are absorbed by the packing, so the micro-kernel sees one layout.
/// </para>
/// </summary>
internal static unsafe class BlockedGemm<T, TK>
    where T : unmanaged, IFloatingPointIeee754<T>
    where TK : struct, IGemmKernel<T>
{
    /// <summary>
    /// Elements one packed operand buffer holds (4 Mi = 16 MiB of floats): with k = 2048 a pass covers 2048
    /// rows and 2048 columns (8 MiB made square 2048 re-pack B and ran at 68 % of peak instead of 74 %);
    /// larger products are done in super-blocks so the scratch memory stays bounded (re-packing B once per
    /// row super-block costs little next to the k * rows * columns flops between).
    /// </summary>
    internal const long DefaultPackElements = 1L << 22;

    /// <summary>Panels of B one pack item covers: 8 x 32 floats x KC = 256 KiB, big enough to amortise the counter.</summary>
    private const int PackBPanels = 8;

    /// <summary>Widest B block (in panels) an item packs for itself: half the L2 (8 x 32 floats x KC 512 = 512 KiB of a 1 MiB L2).</summary>
    private static int MaxLocalBPanels => Math.Max(1, CpuCaches.L2 / 2 / (TK.KC * TK.NR * sizeof(T)));

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C on up to <paramref name="threads"/> threads (the caller included);
    /// <paramref name="packElements"/> bounds each packed operand (tests make it small to cover super-blocks).
    /// </summary>
    public static void Run(int threads, bool transA, bool transB, int m, int n, int k, T alpha,
        T* a, nint lda, T* b, nint ldb, T beta, T* c, nint ldc, long packElements = DefaultPackElements)
    {
        int MR = TK.MR, NR = TK.NR;
        // Packed buffers hold every depth row of their super-block, so the super-block sizes follow from k.
        int mBig = (int)Math.Clamp(packElements / k / MR * MR, MR, RoundUp(m, MR));
        // Few rows (one row block): every B panel serves one compute item only, so sharing packed B buys
        // nothing; each item packs its B block for one depth block at a time into its own L2-sized buffer
        // and uses it at once, instead of writing all of packed B out to L3 and reading it back.
        bool localB = RoundUp(m, MR) <= TK.MC && mBig >= m;
        int nBig = localB ? n : (int)Math.Clamp(packElements / k / NR * NR, NR, RoundUp(n, NR));
        var job = new Job
        {
            Threads = threads, TransA = transA, TransB = transB, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            A = (nint)a, Lda = lda, B = (nint)b, Ldb = ldb, C = (nint)c, Ldc = ldc, MBig = mBig, NBig = nBig,
            LocalB = localB, Ap = (nint)ScratchBuffer.A<T>((long)mBig * k), Bp = localB ? 0 : (nint)ScratchBuffer.B<T>((long)nBig * k),
        };
        int passes = (m + mBig - 1) / mBig * ((n + nBig - 1) / nBig);
        job.Claimed = new int[2 * passes];
        job.Done = new int[2 * passes];
        if (threads <= 1)
            Work(job);
        else
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => Work(job));
    }

    /// <summary>One call's shapes, buffers and the per-phase claim / completion counters its threads share.</summary>
    private sealed class Job
    {
        public int Threads, M, N, K, MBig, NBig;
        public bool TransA, TransB, LocalB;
        public T Alpha, Beta;
        public nint A, B, C, Ap, Bp, Lda, Ldb, Ldc;
        public int[] Claimed = [], Done = [];
    }

    /// <summary>Every thread runs this: walks the phases in order, taking items until each phase is exhausted.</summary>
    private static void Work(Job job)
    {
        int MR = TK.MR, NR = TK.NR, KC = TK.KC, MC = TK.MC;
        int k = job.K, kBlocks = (k + KC - 1) / KC;
        T* a = (T*)job.A, b = (T*)job.B, c = (T*)job.C, ap = (T*)job.Ap, bp = (T*)job.Bp;
        T* tile = stackalloc T[MR * NR];
        int phase = 0, lastItems = 0;
        for (int i0 = 0; i0 < job.M; i0 += job.MBig)
        {
            int mb = Math.Min(job.MBig, job.M - i0), mPad = RoundUp(mb, MR);
            // Even row blocks (no 16-row leftover block) of at most MC rows: the compute items' height.
            int rowBlocks = (mb + MC - 1) / MC, mc = RoundUp((mb + rowBlocks - 1) / rowBlocks, MR);
            rowBlocks = (mb + mc - 1) / mc;
            for (int j0 = 0; j0 < job.N; j0 += job.NBig)
            {
                int nb = Math.Min(job.NBig, job.N - j0), nPad = RoundUp(nb, NR), panels = nPad / NR;

                // Pack phase: A's row super-block (first column pass only; later passes reuse it) and B's
                // column super-block, in items of (depth block, MC rows) and (depth block, PackBPanels panels).
                // Block q of depth pc starts at pc * mPad (resp. nPad): its kc rows of panels are contiguous.
                int aItems = j0 == 0 ? kBlocks * rowBlocks : 0;
                int bChunks = job.LocalB ? 0 : (panels + PackBPanels - 1) / PackBPanels;
                WaitForPhase(job, phase - 1, lastItems);
                lastItems = aItems + kBlocks * bChunks;
                for (int it; (it = Interlocked.Increment(ref job.Claimed[phase]) - 1) < lastItems;)
                {
                    if (it < aItems)
                    {
                        int pc = it / rowBlocks * KC, ic = it % rowBlocks * mc;
                        PackA(job.TransA, a, job.Lda, i0 + ic, pc, Math.Min(mc, mb - ic), Math.Min(KC, k - pc),
                            ap + (nint)pc * mPad + (nint)ic * Math.Min(KC, k - pc));
                    }
                    else
                    {
                        it -= aItems;
                        int pc = it / bChunks * KC, jr = it % bChunks * PackBPanels * NR;
                        int kc = Math.Min(KC, k - pc);
                        PackB(job.TransB, b, job.Ldb, pc, j0 + jr, kc, Math.Min(PackBPanels * NR, nb - jr),
                            bp + (nint)pc * nPad + (nint)jr * kc);
                    }
                    Interlocked.Increment(ref job.Done[phase]);
                }
                phase++;

                // Compute phase: items of (row block, group of panels); a few per thread so that a thread
                // slowed by other load hands its share to the others.
                int groups = job.Threads == 1 ? 1 : Math.Clamp((6 * job.Threads + rowBlocks - 1) / rowBlocks, 1, panels);
                int groupPanels = (panels + groups - 1) / groups;
                // A local B block (KC x groupPanels panels) must stay in L2 next to A: at most 512 KiB.
                if (job.LocalB) groupPanels = Math.Min(groupPanels, MaxLocalBPanels);
                groups = (panels + groupPanels - 1) / groupPanels;
                T* localB = job.LocalB ? ScratchBuffer.B<T>((long)KC * groupPanels * NR) : null;
                WaitForPhase(job, phase - 1, lastItems);
                lastItems = rowBlocks * groups;
                for (int it; (it = Interlocked.Increment(ref job.Claimed[phase]) - 1) < lastItems;)
                {
                    int ic = it / groups * mc, rows = Math.Min(mc, mb - ic);
                    int jp0 = it % groups * groupPanels, jp1 = Math.Min(panels, jp0 + groupPanels);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        // Only the first depth block applies the caller's beta; later ones accumulate.
                        T betaBlock = pc == 0 ? job.Beta : T.One;
                        T* aBlock = ap + (nint)pc * mPad + (nint)ic * kc;
                        // Untransposed B in a local block: each panel's first tile packs it on the way
                        // (the strided reads then overlap its FMAs); otherwise pack the block up front. Only
                        // for panels of two cache lines or more: AVX2's 64-byte rows read one line per row
                        // stride, and packed up front (16 rows across all the panels at a time) ran ~5 points
                        // of the core's peak faster ([64x768]x[768x3072], AVX-512 off, one thread).
                        bool fusedPack = job.LocalB && !job.TransB && rows >= MR && TK.NR * sizeof(T) >= 128;
                        if (job.LocalB && !fusedPack)
                            PackB(job.TransB, b, job.Ldb, pc, j0 + jp0 * NR, kc, Math.Min(jp1 * NR, nb) - jp0 * NR, localB);
                        for (int jp = jp0; jp < jp1; jp++)
                        {
                            int jr = jp * NR, nr = Math.Min(NR, nb - jr);
                            T* bPanel = job.LocalB ? localB + (nint)(jr - jp0 * NR) * kc : bp + (nint)pc * nPad + (nint)jr * kc;
                            if (fusedPack && nr < NR) PackB(false, b, job.Ldb, pc, j0 + jr, kc, nr, bPanel);
                            for (int ir = 0; ir < rows; ir += MR)
                            {
                                int mr = Math.Min(MR, rows - ir);
                                T* cTile = c + (nint)(i0 + ic + ir) * job.Ldc + j0 + jr;
                                if (nr == NR && fusedPack && ir == 0)
                                {
                                    TK.RunPackingB(mr, kc, aBlock, b + (nint)pc * job.Ldb + j0 + jr, job.Ldb, bPanel, cTile, job.Ldc, job.Alpha, betaBlock);
                                }
                                else if (nr == NR)
                                {
                                    TK.Run(mr, kc, aBlock + (nint)ir * kc, bPanel, cTile, job.Ldc, job.Alpha, betaBlock);
                                }
                                else
                                {
                                    // Ragged right edge: compute the full tile aside, then merge the valid columns.
                                    TK.Run(mr, kc, aBlock + (nint)ir * kc, bPanel, tile, NR, T.One, T.Zero);
                                    MergeTile(tile, NR, cTile, job.Ldc, mr, nr, job.Alpha, betaBlock);
                                }
                            }
                        }
                    }
                    Interlocked.Increment(ref job.Done[phase]);
                }
                phase++;
            }
        }
    }

    /// <summary>Waits until every item of <paramref name="phase"/> is finished (claimed is not enough: its buffers are read next).</summary>
    private static void WaitForPhase(Job job, int phase, int items)
    {
        if (phase < 0) return;
        var spin = new SpinWait();
        while (Volatile.Read(ref job.Done[phase]) < items) spin.SpinOnce();
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
            else if (typeof(T) == typeof(float) && NR == 16 && Avx.IsSupported)
            {
                Avx2Kernel<float>.PackTransposedF32x16((float*)(b + (nint)(jc + jr) * ldb + pc), ldb, kc, cols, (float*)panel);
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
