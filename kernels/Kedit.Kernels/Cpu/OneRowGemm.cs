using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>How a one-row product reads its weight's elements: float32 as they lie, or bfloat16 widened in registers.</summary>
internal unsafe interface IRowWeights
{
    /// <summary>Bytes per stored element.</summary>
    static abstract int Size { get; }
    /// <summary>Elements i .. i + 7 as floats.</summary>
    static abstract Vector256<float> Load8(byte* b, nint i);
    static abstract float Load1(byte* b, nint i);
}

internal unsafe struct F32Weights : IRowWeights
{
    public static int Size => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* b, nint i) => Vector256.Load((float*)b + i);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* b, nint i) => ((float*)b)[i];
}

/// <summary>bfloat16 is the high half of a float32: zero-extend and shift, exact, no float32 copy in memory.</summary>
internal unsafe struct Bf16Weights : IRowWeights
{
    public static int Size => 2;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8(byte* b, nint i) =>
        Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((ushort*)b + i), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load1(byte* b, nint i) => BitConverter.UInt32BitsToSingle((uint)((ushort*)b)[i] << 16);
}

/// <summary>
/// One output row, y = alpha · x · op(B) + beta · y (decoding one token), with B held as float32 or bfloat16: bound by
/// reading B once, so B is never packed or copied and 256-bit loads (AVX2 + FMA, also on AVX-512 machines) outrun memory.
/// The work is cut into chunks that depend on the shape only, claimed by whichever thread of <see cref="RowTeam"/> is
/// free, so the result is the same bit for bit on any thread count:
/// transB (nn.Linear [n, k], the logits over the vocabulary): a chunk is a run of B's rows, each dotted with x;
/// untransposed (GPT-2 Conv1D [k, n]): a chunk is a run of B's rows, each scaled by its x and added into a partial row
/// of the chunk's own, and the partial rows are summed in chunk order at the end. Either way B is read one row at a time,
/// front to back.
/// </summary>
internal static unsafe class OneRowGemm
{
    /// <summary>About this many elements of B a chunk (256 KiB of float32): few enough claims, fine enough to balance.</summary>
    internal const int ChunkElements = 1 << 16;
    /// <summary>Most partial rows an untransposed product keeps (their sum is read once more at the end).</summary>
    internal const int MaxPartials = 16;
    /// <summary>Widest column block of an untransposed chunk: its running sums (16 KiB) stay in L1.</summary>
    private const int ColumnBlock = 4096;

    /// <summary>
    /// x has k elements, incx apart; B holds TW elements with row stride ldb (in elements); y has n elements.
    /// <paramref name="threads"/> is the most threads to use (1: the calling thread alone).
    /// </summary>
    public static void Run<TW>(int threads, bool transB, int n, int k, float alpha, float* x, nint incx, void* b, nint ldb,
        float beta, float* y) where TW : struct, IRowWeights
    {
        var job = RowJob.ForThisThread();
        job.N = n; job.K = k; job.Alpha = alpha; job.Beta = beta; job.Y = y;
        job.B = (byte*)b; job.Ldb = ldb;
        if (transB)
        {
            if (incx != 1)
            {
                // A column of a transposed A: gather it once so the dot products load it as vectors.
                float* xs = ScratchBuffer.C<float>(k);
                for (int p = 0; p < k; p++) xs[p] = x[p * incx];
                x = xs;
                incx = 1;
            }
            job.RowsPerChunk = RoundUp4(Math.Max(4, ChunkElements / Math.Max(k, 1)));
            job.Chunks = (n + job.RowsPerChunk - 1) / job.RowsPerChunk;
            job.Kind = typeof(TW) == typeof(F32Weights) ? RowJob.Work.DotsF32 : RowJob.Work.DotsBf16;
        }
        else
        {
            job.RowsPerChunk = RoundUp4(Math.Max((ChunkElements + n - 1) / n, (k + MaxPartials - 1) / MaxPartials));
            job.Chunks = (k + job.RowsPerChunk - 1) / job.RowsPerChunk;
            job.PartialStride = (n + 15) & ~15;
            job.Partial = ScratchBuffer.C<float>((long)job.Chunks * job.PartialStride);
            job.Kind = typeof(TW) == typeof(F32Weights) ? RowJob.Work.StreamF32 : RowJob.Work.StreamBf16;
        }
        job.X = x; job.Incx = incx;
        RowTeam.Run(job, (long)n * k < Gemm.OneRowParallelMinElements ? 1 : threads, (long)n * k * TW.Size);
        if (!transB) SumPartials(job);
    }

    private static int RoundUp4(int v) => (v + 3) & ~3;

    /// <summary>Runs chunk <paramref name="c"/> of the job.</summary>
    internal static void Chunk(RowJob job, int c)
    {
        int first = c * job.RowsPerChunk;
        int count = Math.Min(job.RowsPerChunk, (job.Kind is RowJob.Work.DotsF32 or RowJob.Work.DotsBf16 ? job.N : job.K) - first);
        switch (job.Kind)
        {
            case RowJob.Work.DotsF32: Dots<F32Weights>(job, first, count); break;
            case RowJob.Work.DotsBf16: Dots<Bf16Weights>(job, first, count); break;
            case RowJob.Work.StreamF32: Stream<F32Weights>(job, first, count, job.Partial + (nint)c * job.PartialStride); break;
            default: Stream<Bf16Weights>(job, first, count, job.Partial + (nint)c * job.PartialStride); break;
        }
    }

    /// <summary>
    /// y[j] = alpha · dot(x, B row j) + beta · y[j] for j in [first, first + count): one row of B at a time, front to back,
    /// into four running sums, so B is read as one sequential stream (four rows interleaved ran ~30% slower: the
    /// prefetchers follow one stream better than four a row apart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dots<TW>(RowJob job, int first, int count) where TW : struct, IRowWeights
    {
        int k = job.K, k32 = k & ~31, k8 = k & ~7;
        float* x = job.X, y = job.Y;
        nint ldb = job.Ldb * TW.Size;
        float alpha = job.Alpha, beta = job.Beta;
        for (int j = first; j < first + count; j++)
        {
            byte* r = job.B + j * ldb;
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            int p = 0;
            for (; p < k32; p += 32)
            {
                s0 = Fma.MultiplyAdd(TW.Load8(r, p), Vector256.Load(x + p), s0);
                s1 = Fma.MultiplyAdd(TW.Load8(r, p + 8), Vector256.Load(x + p + 8), s1);
                s2 = Fma.MultiplyAdd(TW.Load8(r, p + 16), Vector256.Load(x + p + 16), s2);
                s3 = Fma.MultiplyAdd(TW.Load8(r, p + 24), Vector256.Load(x + p + 24), s3);
            }
            for (; p < k8; p += 8) s0 = Fma.MultiplyAdd(TW.Load8(r, p), Vector256.Load(x + p), s0);
            float d = Vector256.Sum((s0 + s1) + (s2 + s3));
            for (; p < k; p++) d += TW.Load1(r, p) * x[p];
            y[j] = beta == 0f ? alpha * d : alpha * d + beta * y[j];
        }
    }

    /// <summary>
    /// partial = x[first .. first + count) · B[first .. first + count, :]: one row of B at a time across a column block
    /// of up to 4,096 (the whole row in the models here), so B is read as one sequential stream and the running sums
    /// (16 KiB) stay in L1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Stream<TW>(RowJob job, int first, int count, float* partial) where TW : struct, IRowWeights
    {
        int n = job.N;
        nint incx = job.Incx, ldb = job.Ldb * TW.Size;
        float* x = job.X + first * incx;
        byte* b = job.B + first * ldb;
        for (int j0 = 0; j0 < n; j0 += ColumnBlock)
        {
            int w = Math.Min(ColumnBlock, n - j0), w32 = w & ~31, w8 = w & ~7;
            float* acc = partial + j0;
            new Span<float>(acc, w).Clear();
            byte* bj = b + j0 * TW.Size;
            for (int p = 0; p < count; p++)
            {
                byte* r = bj + p * ldb;
                float s = x[p * incx];
                var xv = Vector256.Create(s);
                int j = 0;
                for (; j < w32; j += 32)
                {
                    Vector256.Store(Fma.MultiplyAdd(xv, TW.Load8(r, j), Vector256.Load(acc + j)), acc + j);
                    Vector256.Store(Fma.MultiplyAdd(xv, TW.Load8(r, j + 8), Vector256.Load(acc + j + 8)), acc + j + 8);
                    Vector256.Store(Fma.MultiplyAdd(xv, TW.Load8(r, j + 16), Vector256.Load(acc + j + 16)), acc + j + 16);
                    Vector256.Store(Fma.MultiplyAdd(xv, TW.Load8(r, j + 24), Vector256.Load(acc + j + 24)), acc + j + 24);
                }
                for (; j < w8; j += 8) Vector256.Store(Fma.MultiplyAdd(xv, TW.Load8(r, j), Vector256.Load(acc + j)), acc + j);
                for (; j < w; j++) acc[j] = MathF.FusedMultiplyAdd(s, TW.Load1(r, j), acc[j]);
            }
        }
    }

    /// <summary>y = alpha · (partial 0 + partial 1 + … in chunk order) + beta · y.</summary>
    private static void SumPartials(RowJob job)
    {
        int n = job.N, parts = job.Chunks;
        float* partial = job.Partial, y = job.Y;
        nint stride = job.PartialStride;
        float alpha = job.Alpha, beta = job.Beta;
        var va = Vector256.Create(alpha);
        var vb = Vector256.Create(beta);
        int j = 0;
        for (; j + 8 <= n; j += 8)
        {
            var s = Vector256.Load(partial + j);
            for (int q = 1; q < parts; q++) s += Vector256.Load(partial + q * stride + j);
            Vector256.Store(beta == 0f ? s * va : Fma.MultiplyAdd(Vector256.Load(y + j), vb, s * va), y + j);
        }
        for (; j < n; j++)
        {
            float s = partial[j];
            for (int q = 1; q < parts; q++) s += partial[q * stride + j];
            y[j] = beta == 0f ? alpha * s : alpha * s + beta * y[j];
        }
    }
}
