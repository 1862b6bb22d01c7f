using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>
/// The GEMM over 16-bit weights (widened slab by slab) against the float GEMM on the same weights widened up front:
/// widening is exact and slabs split only output columns, so the two must agree bit for bit, on ragged shapes (slab
/// edges, skinny and blocked row counts, one and several threads) with NaN in B's row padding.
/// </summary>
public unsafe class WideningGemmTests
{
    public static TheoryData<int, int, int, bool, HalfFormat> Cases()
    {
        var d = new TheoryData<int, int, int, bool, HalfFormat>();
        foreach (var (m, n, k) in new[] { (1, 1, 1), (1, 3072, 768), (5, 97, 513), (16, 1100, 300), (17, 50, 40), (130, 2500, 600), (64, 70, 3000) })
            foreach (bool tb in new[] { false, true })
                foreach (var f in new[] { HalfFormat.BFloat16, HalfFormat.Float16 })
                    d.Add(m, n, k, tb, f);
        return d;
    }

    [Theory, MemberData(nameof(Cases))]
    public void EqualsTheFloatGemmOnTheWidenedWeights(int m, int n, int k, bool transB, HalfFormat format)
    {
        var rng = new Random(m * 7919 + n * 31 + k);
        int bRows = transB ? n : k, bCols = transB ? k : n, ldb = bCols + 3;
        var bits = new ushort[(long)bRows * ldb];
        for (int r = 0; r < bRows; r++)
            for (int j = 0; j < ldb; j++)
            {
                float v = j < bCols ? (float)(rng.NextDouble() * 2 - 1) : float.NaN;
                bits[(long)r * ldb + j] = format == HalfFormat.BFloat16 ? (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16) : BitConverter.HalfToUInt16Bits((Half)v);
            }
        var a = new float[(long)m * k];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        var wide = new float[(long)bRows * bCols];
        for (int r = 0; r < bRows; r++)
            for (int j = 0; j < bCols; j++)
            {
                ushort h = bits[(long)r * ldb + j];
                wide[(long)r * bCols + j] = format == HalfFormat.BFloat16 ? BitConverter.UInt32BitsToSingle((uint)h << 16) : (float)BitConverter.UInt16BitsToHalf(h);
            }
        // Small products run on one thread, large ones on Gemm.MaxThreads (the slabs shared out).
        foreach (float beta in new[] { 0f, 1f })
            {
                {
                    var expected = new float[(long)m * n]; var actual = new float[(long)m * n];
                    for (int i = 0; i < expected.Length; i++) expected[i] = actual[i] = beta == 0 ? float.NaN : i % 7;
                    fixed (float* pa = a) fixed (float* pw = wide) fixed (float* pe = expected) fixed (float* pc = actual) fixed (ushort* pb = bits)
                    {
                        Gemm.Sgemm(false, transB, m, n, k, 1f, pa, k, pw, bCols, beta, pe, n);
                        WideningGemm.Sgemm(transB, m, n, k, pa, k, pb, ldb, format, beta, pc, n);
                    }
                    // Except one F16 row through an untransposed B: its widened slabs are narrower products than the whole
                    // matrix, and OneRowGemm cuts an untransposed product's depth into chunks by its width (partial sums added
                    // in another order); both are float32 sums of the same exact products, equal to float32 rounding. A BF16 row
                    // skips the slab (widened in registers by the same kernel as the float row) and is equal bit for bit.
                    bool otherChunks = m == 1 && !transB && format == HalfFormat.Float16;
                    for (int i = 0; i < expected.Length; i++)
                        Assert.True(otherChunks ? Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i]))
                                                : BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                            $"[{i / n}, {i % n}] beta {beta}: {actual[i]} vs the float GEMM's {expected[i]}");
                }
            }
    }
}
