using System.Runtime.Intrinsics.X86;
using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>
/// The AVX2 6x16 micro-kernel and its packing called directly (the GEMM tests reach them through the driver),
/// against sums computed here in double; and its cache blocking against the budgets it promises. Runs wherever
/// AVX2 + FMA exist, AVX-512 machines included (the kernel only uses 256-bit instructions).
/// </summary>
public unsafe class Avx2KernelTests
{
    static bool Available => Avx2.IsSupported && Fma.IsSupported;

    [SkippableTheory]
    [InlineData(1, 1)]
    [InlineData(2, 7)]
    [InlineData(3, 129)]
    [InlineData(5, 300)]
    [InlineData(6, 257)]
    public void KernelMatchesDoubleSumsForEveryRowCount(int rows, int kc)
    {
        Skip.IfNot(Available, "skipped: needs AVX2 + FMA, which this CPU lacks");
        var rng = new Random(rows * 1000 + kc);
        int mr = Avx2Kernel<float>.MR, nr = Avx2Kernel<float>.NR;
        var ap = Rand(rng, kc * mr); var bp = Rand(rng, kc * nr);
        const int ldc = 21;   // wider than a tile: the columns past NR must stay untouched
        foreach (var (alpha, beta) in new[] { (1f, 0f), (-0.5f, 1.25f) })
        {
            var c = Rand(rng, mr * ldc);
            var before = (float[])c.Clone();
            if (beta == 0) for (int r = 0; r < rows; r++) for (int j = 0; j < nr; j++) c[r * ldc + j] = float.NaN;
            fixed (float* pa = ap) fixed (float* pb = bp) fixed (float* pc = c)
                Avx2Kernel<float>.Run(rows, kc, pa, pb, pc, ldc, alpha, beta);
            for (int r = 0; r < mr; r++)
                for (int j = 0; j < ldc; j++)
                {
                    if (r >= rows || j >= nr) { Assert.Equal(before[r * ldc + j], c[r * ldc + j]); continue; }
                    double s = 0;
                    for (int p = 0; p < kc; p++) s += (double)ap[p * mr + r] * bp[p * nr + j];
                    double want = alpha * s + beta * before[r * ldc + j];
                    Assert.True(Math.Abs(c[r * ldc + j] - want) <= 1e-5 * Math.Sqrt(kc) + 1e-6,
                        $"rows={rows} kc={kc} alpha={alpha} beta={beta}: C[{r},{j}] = {c[r * ldc + j]}, expected {want}");
                }
        }
    }

    [SkippableTheory]
    [InlineData(6, 200)]
    [InlineData(4, 33)]
    public void PackingRunReadsBInPlaceAndLeavesThePackedPanel(int rows, int kc)
    {
        Skip.IfNot(Available, "skipped: needs AVX2 + FMA, which this CPU lacks");
        var rng = new Random(kc);
        int mr = Avx2Kernel<float>.MR, nr = Avx2Kernel<float>.NR, ldb = nr + 13;
        var ap = Rand(rng, kc * mr); var b = Rand(rng, kc * ldb);
        var packed = new float[kc * nr]; var viaPack = new float[mr * nr]; var direct = new float[mr * nr];
        fixed (float* pa = ap) fixed (float* pb = b) fixed (float* pp = packed) fixed (float* c1 = viaPack) fixed (float* c2 = direct)
        {
            Avx2Kernel<float>.RunPackingB(rows, kc, pa, pb, ldb, pp, c1, nr, 1f, 0f);
            for (int p = 0; p < kc; p++)
                for (int j = 0; j < nr; j++) Assert.Equal(b[p * ldb + j], packed[p * nr + j]);
            Avx2Kernel<float>.Run(rows, kc, pa, pp, c2, nr, 1f, 0f);
        }
        Assert.Equal(direct, viaPack);
    }

    [SkippableTheory]
    [InlineData(16, 64)]
    [InlineData(11, 37)]
    [InlineData(3, 8)]
    public void TransposedPackEqualsTheElementwiseTranspose(int cols, int kc)
    {
        Skip.IfNot(Avx.IsSupported, "skipped: needs AVX, which this CPU lacks");
        var rng = new Random(cols * 100 + kc);
        int ldb = kc + 5;
        var b = Rand(rng, 16 * ldb);
        var panel = new float[kc * 16];
        Array.Fill(panel, float.NaN);
        fixed (float* pb = b) fixed (float* pp = panel)
            Avx2Kernel<float>.PackTransposedF32x16(pb, ldb, kc, cols, pp);
        for (int p = 0; p < kc; p++)
            for (int j = 0; j < 16; j++)
                Assert.Equal(j < cols ? b[j * ldb + p] : 0f, panel[p * 16 + j]);
    }

    [Theory]
    [InlineData(32 << 10, 256 << 10)]   // Skylake client
    [InlineData(32 << 10, 512 << 10)]   // Zen 2
    [InlineData(48 << 10, 1 << 20)]     // Zen 4/5, Ice Lake server
    [InlineData(48 << 10, 2 << 20)]     // Sapphire Rapids
    public void BlockingKeepsThePanelsInTheirCaches(int l1, int l2)
    {
        foreach (int size in new[] { 4, 8 })
        {
            var (kc, mc) = Avx2Kernel<float>.Blocking(l1, l2, size);
            int nr = 64 / size;
            Assert.True(kc >= 128 && kc % 32 == 0, $"KC {kc}");
            Assert.True((long)kc * nr * size <= l1 / 2, $"B micro-panel {kc}x{nr}x{size} B exceeds half of L1 {l1}");
            Assert.True(mc % 6 == 0 && mc >= 24, $"MC {mc}");
            Assert.True((long)mc * kc * size <= l2 / 2, $"A block {mc}x{kc}x{size} B exceeds half of L2 {l2}");
            // Not needlessly small either: one more row panel would overflow the budget (or MC is at its cap).
            Assert.True(mc == 384 || (long)(mc + 6) * kc * size > l2 / 2, $"MC {mc} leaves room in L2 {l2}");
        }
    }

    static float[] Rand(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
