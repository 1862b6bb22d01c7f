using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// AVX2/FMA3 micro-kernel in BLIS's Haswell shape: 6 rows x 2 ymm columns (6x16 floats, 6x8 doubles) = 12
/// accumulators, with the two B vectors and the A broadcast that makes 15 of the 16 ymm registers.
/// The blocking comes from the detected caches (<see cref="CpuCaches"/>), not from one machine's: AVX2 cores
/// range from 256 KiB of L2 (Skylake client) to 1 MiB and more, and an A block sized for the large ones
/// spills the small ones' L2 (the old fixed 240 x 256 block).
/// </summary>
internal readonly unsafe struct Avx2Kernel<T> : IGemmKernel<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static int W => Vector256<T>.Count;
    public static int MR => 6;
    public static int NR => 2 * Vector256<T>.Count;
    private static readonly (int Kc, int Mc) s_blocking = Blocking(CpuCaches.L1d, CpuCaches.L2, sizeof(T));
    public static int KC => s_blocking.Kc;
    public static int MC => s_blocking.Mc;

    /// <summary>
    /// Depth and row blocks for an L1 of <paramref name="l1"/> and an L2 of <paramref name="l2"/> bytes: the KC x NR
    /// B micro-panel takes at most half the L1 (the rest holds the A micro-panel's lines and C's tile), the MC x KC
    /// A block at most half the L2 (the rest is the B micro-panels streaming through and the item's local B block).
    /// </summary>
    internal static (int Kc, int Mc) Blocking(int l1, int l2, int elementSize)
    {
        int nr = 32 / elementSize * 2;
        int kc = Math.Clamp(l1 / 2 / (nr * elementSize) / 32 * 32, 128, 512);
        int mc = Math.Clamp(l2 / 2 / (kc * elementSize) / MR * MR, 4 * MR, 64 * MR);
        return (kc, mc);
    }

    /// <summary>The driver packs B up front for this kernel (its 64-byte panel rows pack faster in wide runs); kept for the interface.</summary>
    public static void RunPackingB(int rows, nint kc, T* ap, T* b, nint ldb, T* bp, T* c, nint ldc, T alpha, T beta)
    {
        PanelCopy.Untransposed(kc, NR, b, ldb, bp);
        Run(rows, kc, ap, bp, c, ldc, alpha, beta);
    }

    public static void Run(int rows, nint kc, T* ap, T* bp, T* c, nint ldc, T alpha, T beta)
    {
        switch (rows)
        {
            case 6: Tile<C6>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 5: Tile<C5>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 4: Tile<C4>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 3: Tile<C3>(kc, ap, bp, c, ldc, alpha, beta); break;
            case 2: Tile<C2>(kc, ap, bp, c, ldc, alpha, beta); break;
            default: Tile<C1>(kc, ap, bp, c, ldc, alpha, beta); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma(Vector256<T> x, Vector256<T> y, Vector256<T> acc)
    {
        if (typeof(T) == typeof(float))
            return System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(x.AsSingle(), y.AsSingle(), acc.AsSingle()).As<float, T>();
        return System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(x.AsDouble(), y.AsDouble(), acc.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(T* c, Vector256<T> lo, Vector256<T> hi, Vector256<T> alpha, Vector256<T> beta, bool readC)
    {
        if (readC)
        {
            Vector256.Store(Fma(Vector256.Load(c), beta, lo * alpha), c);
            Vector256.Store(Fma(Vector256.Load(c + W), beta, hi * alpha), c + W);
        }
        else
        {
            Vector256.Store(lo * alpha, c);
            Vector256.Store(hi * alpha, c + W);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(nint kc, T* a, T* b, T* c, nint ldc, T alpha, T beta) where TRows : struct, IConst
    {
        int R = TRows.Value;
        // C's rows are ldc apart (often a power of two): start pulling them in now, they are used after the k loop.
        for (int r = 0; r < R; r++)
        {
            Sse.Prefetch0(c + r * ldc);
            Sse.Prefetch0(c + r * ldc + W);
        }
        var z = Vector256<T>.Zero;
        Vector256<T> c0a = z, c0b = z;
        Vector256<T> c1a = z, c1b = z;
        Vector256<T> c2a = z, c2b = z;
        Vector256<T> c3a = z, c3b = z;
        Vector256<T> c4a = z, c4b = z;
        Vector256<T> c5a = z, c5b = z;
        for (nint p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + W);
            Vector256<T> av;
            av = Vector256.Create(a[0]); c0a = Fma(av, b0, c0a); c0b = Fma(av, b1, c0b);
            if (R > 1) { av = Vector256.Create(a[1]); c1a = Fma(av, b0, c1a); c1b = Fma(av, b1, c1b); }
            if (R > 2) { av = Vector256.Create(a[2]); c2a = Fma(av, b0, c2a); c2b = Fma(av, b1, c2b); }
            if (R > 3) { av = Vector256.Create(a[3]); c3a = Fma(av, b0, c3a); c3b = Fma(av, b1, c3b); }
            if (R > 4) { av = Vector256.Create(a[4]); c4a = Fma(av, b0, c4a); c4b = Fma(av, b1, c4b); }
            if (R > 5) { av = Vector256.Create(a[5]); c5a = Fma(av, b0, c5a); c5b = Fma(av, b1, c5b); }
            a += 6;
            b += 2 * W;
        }
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        bool readC = beta != T.Zero;
        Store(c, c0a, c0b, va, vb, readC);
        if (R > 1) Store(c + 1 * ldc, c1a, c1b, va, vb, readC);
        if (R > 2) Store(c + 2 * ldc, c2a, c2b, va, vb, readC);
        if (R > 3) Store(c + 3 * ldc, c3a, c3b, va, vb, readC);
        if (R > 4) Store(c + 4 * ldc, c4a, c4b, va, vb, readC);
        if (R > 5) Store(c + 5 * ldc, c5a, c5b, va, vb, readC);
    }

    /// <summary>
    /// Transposing pack of a float B stored [n, k] (the Linear layout) into 16-wide panels: 8x8 blocks transposed
    /// in registers (unpack, shuffle, 128-bit permute) instead of one strided scalar store per element.
    /// </summary>
    internal static void PackTransposedF32x16(float* src, nint ldb, int kc, int cols, float* panel)
    {
        for (int half = 0; half < 2; half++)
        {
            int c0 = half * 8, valid = Math.Clamp(cols - c0, 0, 8);
            float* rows = src + c0 * ldb;
            float* d = panel + c0;
            int p = 0;
            if (valid == 8)
                for (; p + 8 <= kc; p += 8)
                    Transpose8x8(rows + p, ldb, d + (nint)p * 16);
            for (; p < kc; p++)
            {
                float* dp = d + (nint)p * 16;
                int j = 0;
                for (; j < valid; j++) dp[j] = rows[j * ldb + p];
                for (; j < 8; j++) dp[j] = 0f;
            }
        }
    }

    /// <summary>Rows s, s + lds, … (8 floats each) become 8 column vectors stored 16 floats apart from d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, nint lds, float* d)
    {
        var r0 = Avx.LoadVector256(s); var r1 = Avx.LoadVector256(s + lds);
        var r2 = Avx.LoadVector256(s + 2 * lds); var r3 = Avx.LoadVector256(s + 3 * lds);
        var r4 = Avx.LoadVector256(s + 4 * lds); var r5 = Avx.LoadVector256(s + 5 * lds);
        var r6 = Avx.LoadVector256(s + 6 * lds); var r7 = Avx.LoadVector256(s + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        // u_q holds rows 0-3 (4-7 for u_{q+4}) of columns q and q + 4 in its two 128-bit halves.
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + 16, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + 32, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + 48, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + 64, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + 80, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + 96, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + 112, Avx.Permute2x128(u3, u7, 0x31));
    }
}
