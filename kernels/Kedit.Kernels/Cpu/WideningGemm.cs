using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>The 16-bit float formats a weight can stay resident in.</summary>
public enum HalfFormat
{
    /// <summary>bfloat16: the high half of a float32 (widening is a shift).</summary>
    BFloat16,
    /// <summary>IEEE 754 binary16.</summary>
    Float16,
}

/// <summary>
/// C = A · op(B) + beta · C with B held as 16-bit floats (weights resident in their stored dtype). B is widened to
/// float32 a slab of output columns at a time into a per-thread scratch buffer the size of a cache level, and that
/// slab goes through the float GEMM (which packs it as usual); float32 accumulation throughout. Widening is exact,
/// and a column slab changes no element's summation order, so the result is the float GEMM's on the widened matrix.
/// One bfloat16 row (decoding) skips the slab: <see cref="OneRowGemm"/> widens each weight in registers as it streams.
/// </summary>
public static unsafe class WideningGemm
{
    /// <summary>Floats of one widened slab when few rows share it (a few sequences decoding: it is read once, from L2).</summary>
    internal const long SkinnySlabElements = 1L << 18;
    /// <summary>Floats of one widened slab for many rows (the A panels are re-packed once per slab, so slabs are wide).</summary>
    internal const long SlabElements = 1L << 20;

    /// <summary>
    /// C[m, n] = A[m, k] · op(B) + beta · C; transB: B stored [n, k] (nn.Linear), else [k, n] (Conv1D); ldb is B's row
    /// stride in elements. beta == 0 makes C write-only.
    /// </summary>
    public static void Sgemm(bool transB, int m, int n, int k, float* a, int lda, ushort* b, int ldb, HalfFormat format,
        float beta, float* c, int ldc)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m); ArgumentOutOfRangeException.ThrowIfNegative(n); ArgumentOutOfRangeException.ThrowIfNegative(k);
        if (ldb < Math.Max(1, transB ? k : n)) throw new ArgumentOutOfRangeException(nameof(ldb), ldb, "ldb is shorter than a row of B");
        if (m == 0 || n == 0) return;
        if (k == 0) { Gemm.Sgemm(false, transB, m, n, 0, 1f, a, Math.Max(lda, 1), (float*)null, Math.Max(1, transB ? 1 : n), beta, c, ldc); return; }

        if (m == 1 && format == HalfFormat.BFloat16 && Avx2.IsSupported && Fma.IsSupported)
        {
            // One row (decoding) reads each weight once: widened in registers as it streams, no slab.
            OneRowGemm.Run<Bf16Weights>(Gemm.MaxThreads, transB, n, k, 1f, a, 1, b, ldb, beta, c);
            return;
        }
        long budget = m <= Gemm.SkinnyMaxRows ? SkinnySlabElements : SlabElements;
        int threads = 2.0 * m * n * k < Gemm.ParallelMinFlops ? 1 : Gemm.MaxThreads;
        // Slab width: what the budget allows, a multiple of 96 (whole panels of every kernel), and at least one slab a thread.
        int width = (int)Math.Clamp(budget / k / 96 * 96, 96, Math.Max(96, n));
        width = Math.Min(width, Math.Max(96, ((n + threads - 1) / threads + 95) / 96 * 96));
        int slabs = (n + width - 1) / width;
        threads = Math.Min(threads, slabs);
        nint pa = (nint)a, pb = (nint)b, pc = (nint)c;
        int next = 0;
        void Work()
        {
            for (int s; (s = Interlocked.Increment(ref next) - 1) < slabs;)
            {
                int j0 = s * width, nc = Math.Min(width, n - j0);
                float* w = ScratchBuffer.W<float>((long)nc * k);
                ushort* src = (ushort*)pb;
                if (transB)
                    for (int j = 0; j < nc; j++) Widen(format, src + (nint)(j0 + j) * ldb, w + (nint)j * k, k);
                else
                    for (int p = 0; p < k; p++) Widen(format, src + (nint)p * ldb + j0, w + (nint)p * nc, nc);
                Gemm.Sgemm(1, false, transB, m, nc, k, 1f, (float*)pa, lda, w, transB ? k : nc, beta, (float*)pc + j0, ldc);
            }
        }
        if (threads <= 1) Work();
        else Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ => Work());
    }

    /// <summary>Widens <paramref name="count"/> 16-bit floats to float32 (exact).</summary>
    public static void Widen(HalfFormat format, ushort* src, float* dst, int count)
    {
        if (format == HalfFormat.Float16)
        {
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src, count), new Span<float>(dst, count));
            return;
        }
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + 32 <= count; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(src + i));
                Vector512.Store(Vector512.ShiftLeft(lo, 16).AsSingle(), dst + i);
                Vector512.Store(Vector512.ShiftLeft(hi, 16).AsSingle(), dst + i + 16);
            }
        if (Vector256.IsHardwareAccelerated)
            for (; i + 16 <= count; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                Vector256.Store(Vector256.ShiftLeft(lo, 16).AsSingle(), dst + i);
                Vector256.Store(Vector256.ShiftLeft(hi, 16).AsSingle(), dst + i + 8);
            }
        for (; i < count; i++) ((uint*)dst)[i] = (uint)src[i] << 16;
    }
}
