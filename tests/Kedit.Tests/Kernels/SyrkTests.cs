using Kedit.Kernels.Cpu;
using Xunit;

namespace Kedit.Tests.Kernels;

/// <summary>The upper-triangle rank-k updates against a naive float64 AᵀA, on sizes ragged against the block rows.</summary>
public unsafe class SyrkTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 13)]
    [InlineData(300, 40)]   // two block rows, the second ragged
    [InlineData(600, 257)]
    public void UpperTriangleAddsAtAOnTopOfC(int n, int k)
    {
        var rng = new Random(n * 31 + k);
        var a = new float[k * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        var c0 = new double[n * n];
        for (int i = 0; i < c0.Length; i++) c0[i] = rng.NextDouble();
        var expected = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c0[i * n + j];
                for (int p = 0; p < k; p++) s += (double)a[p * n + i] * a[p * n + j];
                expected[i * n + j] = s;
            }
        var a64 = a.Select(v => (double)v).ToArray();
        var c32 = (double[])c0.Clone();
        var c64 = (double[])c0.Clone();
        fixed (float* pa = a) fixed (double* pa64 = a64) fixed (double* p32 = c32) fixed (double* p64 = c64)
        {
            Syrk.UpperF32(n, k, pa, n, p32, n);
            Syrk.UpperF64(n, k, pa64, n, p64, n);
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                if (j < i)
                {
                    // UpperF32 never touches the strictly lower triangle.
                    Assert.Equal(c0[i * n + j], c32[i * n + j]);
                    continue;
                }
                double e = expected[i * n + j], tol = 1e-5 * (1 + Math.Sqrt(k));
                Assert.True(Math.Abs(c32[i * n + j] - e) <= tol, $"F32 [{i},{j}] {c32[i * n + j]} vs {e}");
                Assert.True(Math.Abs(c64[i * n + j] - e) <= 1e-12 * (1 + k), $"F64 [{i},{j}] {c64[i * n + j]} vs {e}");
            }
        Syrk.MirrorUpper(n, c32);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) Assert.Equal(c32[j * n + i], c32[i * n + j]);
    }
}
