using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// AVX-512 micro-kernel: 14 rows x 2 zmm columns (14x32 floats or 14x16 doubles) = 28 accumulators,
/// leaving 4 of the 32 zmm registers for the two B vectors and the A broadcast.
/// </summary>
internal readonly unsafe struct Avx512Kernel<T> : IGemmKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static int W => Vector512<T>.Count;
    public static int MR => 14;
    public static int NR => 2 * Vector512<T>.Count;
    // Measured on the 2-core Zen 5 here (48 KiB L1, 1 MiB L2), quiet machine, 2 threads: KC 512 with
    // MC 112 took square 1024 from 72 to 83 % of peak and 2048 from 68 to 77 % against KC 256 / MC 336.
    // The 64 KiB B micro-panel streams from L2 (its bandwidth covers the kernel's 13 B/cycle), while the
    // deeper block halves the C tile loads/stores per flop; KC 384 was worse, KC 768 no better.
    public static int KC => 512;
    // A block 112x512 floats = 224 KiB stays in L2 beside the B micro-panel and, for few-row products,
    // the item's own packed B block (at most 512 KiB; see BlockedGemm).
    public static int MC => 14 * 8;

    public static void Run(int rows, nint kc, T* ap, T* bp, T* c, nint ldc, T alpha, T beta)
    {
        switch (rows)
        {
            case 14: Tile<C14, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 13: Tile<C13, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 12: Tile<C12, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 11: Tile<C11, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 10: Tile<C10, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 9: Tile<C9, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 8: Tile<C8, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 7: Tile<C7, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 6: Tile<C6, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 5: Tile<C5, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 4: Tile<C4, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 3: Tile<C3, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 2: Tile<C2, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
            default: Tile<C1, ReadsPackedB>(kc, ap, bp, c, ldc, alpha, beta); break;
        }
    }

    /// <summary>
    /// Rows of B ahead of the current one the fused pack prefetches: ~16 k-steps of 14 FMA cycles cover an
    /// L3 hit; 8 was slower, 24-32 no better ([64x768]x[768x3072], interleaved runs).
    /// </summary>
    private const int PackAhead = 16;

    public static void RunPackingB(int rows, nint kc, T* ap, T* b, nint ldb, T* bp, T* c, nint ldc, T alpha, T beta)
    {
        if (rows == 14) { Tile<C14, PacksB>(kc, ap, bp, c, ldc, alpha, beta, b, ldb); return; }
        PanelCopy.Untransposed(kc, NR, b, ldb, bp);
        Run(rows, kc, ap, bp, c, ldc, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<T> Fma(Vector512<T> x, Vector512<T> y, Vector512<T> acc)
    {
        if (typeof(T) == typeof(float))
            return Avx512F.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        return Avx512F.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(T* c, Vector512<T> lo, Vector512<T> hi, Vector512<T> alpha, Vector512<T> beta, bool readC)
    {
        if (readC)
        {
            Vector512.Store(Fma(Vector512.Load(c), beta, lo * alpha), c);
            Vector512.Store(Fma(Vector512.Load(c + W), beta, hi * alpha), c + W);
        }
        else
        {
            Vector512.Store(lo * alpha, c);
            Vector512.Store(hi * alpha, c + W);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows, TFusedPack>(nint kc, T* a, T* b, T* c, nint ldc, T alpha, T beta, T* src = null, nint lds = 0)
        where TRows : struct, IConst where TFusedPack : struct, IConst
    {
        bool fused = TFusedPack.Value != 0;
        nint ahead = PackAhead * lds;
        int R = TRows.Value;
        // Start pulling the C tile in now; it is only touched after the k loop, and its rows are ldc apart
        // (often a power of two), so without this the update stalls on cache misses.
        for (int r = 0; r < R; r++)
        {
            Sse.Prefetch0(c + r * ldc);
            Sse.Prefetch0(c + r * ldc + W);
        }
        var z = Vector512<T>.Zero;
        Vector512<T> c0a = z, c0b = z;
        Vector512<T> c1a = z, c1b = z;
        Vector512<T> c2a = z, c2b = z;
        Vector512<T> c3a = z, c3b = z;
        Vector512<T> c4a = z, c4b = z;
        Vector512<T> c5a = z, c5b = z;
        Vector512<T> c6a = z, c6b = z;
        Vector512<T> c7a = z, c7b = z;
        Vector512<T> c8a = z, c8b = z;
        Vector512<T> c9a = z, c9b = z;
        Vector512<T> c10a = z, c10b = z;
        Vector512<T> c11a = z, c11b = z;
        Vector512<T> c12a = z, c12b = z;
        Vector512<T> c13a = z, c13b = z;
        for (nint p = 0; p < kc; p++)
        {
            Vector512<T> b0, b1;
            if (fused)
            {
                // B straight from its rows: store the packed copy for the panel's other tiles, and ask for
                // a row further on now (the rows are a stride apart, which the prefetchers do not follow).
                b0 = Vector512.Load(src);
                b1 = Vector512.Load(src + W);
                Vector512.Store(b0, b);
                Vector512.Store(b1, b + W);
                if (p + PackAhead < kc)
                {
                    Sse.Prefetch0(src + ahead);
                    Sse.Prefetch0(src + ahead + W);
                }
                src += lds;
            }
            else
            {
                b0 = Vector512.Load(b);
                b1 = Vector512.Load(b + W);
            }
            Vector512<T> av;
            av = Vector512.Create(a[0]); c0a = Fma(av, b0, c0a); c0b = Fma(av, b1, c0b);
            if (R > 1) { av = Vector512.Create(a[1]); c1a = Fma(av, b0, c1a); c1b = Fma(av, b1, c1b); }
            if (R > 2) { av = Vector512.Create(a[2]); c2a = Fma(av, b0, c2a); c2b = Fma(av, b1, c2b); }
            if (R > 3) { av = Vector512.Create(a[3]); c3a = Fma(av, b0, c3a); c3b = Fma(av, b1, c3b); }
            if (R > 4) { av = Vector512.Create(a[4]); c4a = Fma(av, b0, c4a); c4b = Fma(av, b1, c4b); }
            if (R > 5) { av = Vector512.Create(a[5]); c5a = Fma(av, b0, c5a); c5b = Fma(av, b1, c5b); }
            if (R > 6) { av = Vector512.Create(a[6]); c6a = Fma(av, b0, c6a); c6b = Fma(av, b1, c6b); }
            if (R > 7) { av = Vector512.Create(a[7]); c7a = Fma(av, b0, c7a); c7b = Fma(av, b1, c7b); }
            if (R > 8) { av = Vector512.Create(a[8]); c8a = Fma(av, b0, c8a); c8b = Fma(av, b1, c8b); }
            if (R > 9) { av = Vector512.Create(a[9]); c9a = Fma(av, b0, c9a); c9b = Fma(av, b1, c9b); }
            if (R > 10) { av = Vector512.Create(a[10]); c10a = Fma(av, b0, c10a); c10b = Fma(av, b1, c10b); }
            if (R > 11) { av = Vector512.Create(a[11]); c11a = Fma(av, b0, c11a); c11b = Fma(av, b1, c11b); }
            if (R > 12) { av = Vector512.Create(a[12]); c12a = Fma(av, b0, c12a); c12b = Fma(av, b1, c12b); }
            if (R > 13) { av = Vector512.Create(a[13]); c13a = Fma(av, b0, c13a); c13b = Fma(av, b1, c13b); }
            a += 14;
            b += 2 * W;
        }
        var va = Vector512.Create(alpha);
        var vb = Vector512.Create(beta);
        bool readC = beta != T.Zero;
        Store(c, c0a, c0b, va, vb, readC);
        if (R > 1) Store(c + 1 * ldc, c1a, c1b, va, vb, readC);
        if (R > 2) Store(c + 2 * ldc, c2a, c2b, va, vb, readC);
        if (R > 3) Store(c + 3 * ldc, c3a, c3b, va, vb, readC);
        if (R > 4) Store(c + 4 * ldc, c4a, c4b, va, vb, readC);
        if (R > 5) Store(c + 5 * ldc, c5a, c5b, va, vb, readC);
        if (R > 6) Store(c + 6 * ldc, c6a, c6b, va, vb, readC);
        if (R > 7) Store(c + 7 * ldc, c7a, c7b, va, vb, readC);
        if (R > 8) Store(c + 8 * ldc, c8a, c8b, va, vb, readC);
        if (R > 9) Store(c + 9 * ldc, c9a, c9b, va, vb, readC);
        if (R > 10) Store(c + 10 * ldc, c10a, c10b, va, vb, readC);
        if (R > 11) Store(c + 11 * ldc, c11a, c11b, va, vb, readC);
        if (R > 12) Store(c + 12 * ldc, c12a, c12b, va, vb, readC);
        if (R > 13) Store(c + 13 * ldc, c13a, c13b, va, vb, readC);
    }
}

/// <summary>Portable scalar micro-kernel (4x4 tile) for machines without AVX2; also the ARM64 fallback.</summary>
internal readonly unsafe struct ScalarKernel<T> : IGemmKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public static int MR => 4;
    public static int NR => 4;
    public static int KC => 256;
    public static int MC => 64;

    public static void RunPackingB(int rows, nint kc, T* ap, T* b, nint ldb, T* bp, T* c, nint ldc, T alpha, T beta)
    {
        PanelCopy.Untransposed(kc, NR, b, ldb, bp);
        Run(rows, kc, ap, bp, c, ldc, alpha, beta);
    }

    public static void Run(int rows, nint kc, T* a, T* b, T* c, nint ldc, T alpha, T beta)
    {
        T c00 = T.Zero, c01 = T.Zero, c02 = T.Zero, c03 = T.Zero;
        T c10 = T.Zero, c11 = T.Zero, c12 = T.Zero, c13 = T.Zero;
        T c20 = T.Zero, c21 = T.Zero, c22 = T.Zero, c23 = T.Zero;
        T c30 = T.Zero, c31 = T.Zero, c32 = T.Zero, c33 = T.Zero;
        for (nint p = 0; p < kc; p++)
        {
            T b0 = b[0], b1 = b[1], b2 = b[2], b3 = b[3];
            T a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
            c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
            c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
            c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            a += 4;
            b += 4;
        }
        bool readC = beta != T.Zero;
        Store(c, c00, c01, c02, c03, alpha, beta, readC);
        if (rows > 1) Store(c + ldc, c10, c11, c12, c13, alpha, beta, readC);
        if (rows > 2) Store(c + 2 * ldc, c20, c21, c22, c23, alpha, beta, readC);
        if (rows > 3) Store(c + 3 * ldc, c30, c31, c32, c33, alpha, beta, readC);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(T* c, T v0, T v1, T v2, T v3, T alpha, T beta, bool readC)
    {
        if (readC)
        {
            c[0] = alpha * v0 + beta * c[0]; c[1] = alpha * v1 + beta * c[1];
            c[2] = alpha * v2 + beta * c[2]; c[3] = alpha * v3 + beta * c[3];
        }
        else
        {
            c[0] = alpha * v0; c[1] = alpha * v1; c[2] = alpha * v2; c[3] = alpha * v3;
        }
    }
}
