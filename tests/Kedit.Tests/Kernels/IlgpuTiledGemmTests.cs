using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Kedit.Editing.LinearAlgebra;
using Kedit.Kernels.Cpu;
using Kedit.Kernels.Ilgpu;
using Xunit;
using CpuGemm = Kedit.Kernels.Cpu.Gemm;

namespace Kedit.Tests.Kernels;

/// <summary>
/// The shared-memory tiled GEMM (<see cref="GemmKernels.TiledGemm{T, TA, TB, TLoad}"/>, the GPUs' product) on ILGPU's CPU accelerator
/// with small tiles (its groups hold at most 16 threads, and each barrier costs it about a millisecond), on ragged
/// shapes that leave partial tiles in every dimension: against the managed reference (Sgemm in float32, MatrixD in
/// float64) and bit for bit against the grid-stride kernel it must sum exactly like.
/// </summary>
public class IlgpuTiledGemmTests
{
    static readonly Lazy<(Context Context, Accelerator Acc)> s_cpu = new(() =>
    {
        var context = Context.Create(b => b.CPU().EnableAlgorithms());
        return (context, context.CreateCPUAccelerator(0));
    });

    static Accelerator Acc => s_cpu.Value.Acc;

    static T[] Random<T>(int n, int seed) where T : unmanaged, System.Numerics.INumber<T>
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => T.CreateChecked(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>C after the tiled kernel and after the grid-stride kernel, from the same inputs, the operands read through TLoad.</summary>
    static (T[] Tiled, T[] Plain) Run<T, TA, TB, TLoad>(GemmArgs<T> s, TA[] a, TB[] b, T[] c0, T[] bias, int tile)
        where T : unmanaged, System.Numerics.INumber<T> where TA : unmanaged where TB : unmanaged where TLoad : struct, IOperands<TA, TB, T>
    {
        using var da = Acc.Allocate1D(a); using var db = Acc.Allocate1D(b); using var dbias = Acc.Allocate1D(bias);
        using var tiled = Acc.Allocate1D(c0); using var plain = Acc.Allocate1D(c0);
        TiledGemmLaunch.Load<T, TA, TB, TLoad>(Acc)(TiledGemmLaunch.Config<T>(s.M, s.N, tile), s, da.View, db.View, tiled.View, dbias.View);
        // Three lanes striding over C: every lane passes ragged rows (the plain kernel's grid-stride loop).
        var lanes = Lanes.Of(s.N, s.M, 3);
        Acc.LoadAutoGroupedStreamKernel<Index1D, Lanes, GemmArgs<T>, ArrayView<TA>, ArrayView<TB>, ArrayView<T>, ArrayView<T>>(GemmKernels.Gemm<T, TA, TB, TLoad>)(
            lanes.Count, lanes, s, da.View, db.View, plain.View, dbias.View);
        Acc.Synchronize();
        return (tiled.GetAsArray1D(), plain.GetAsArray1D());
    }

    /// <summary>The tiled result within float32 rounding of the reference, and bit for bit the grid-stride kernel's (same sums, same order).</summary>
    static void CloseAndBitEqual(string what, float[] expected, (float[] Tiled, float[] Plain) got)
    {
        Kedit.Tests.Device.DeviceTestData.Close(what, expected, got.Tiled, 2e-6);
        Assert.True(got.Tiled.SequenceEqual(got.Plain), $"{what}: the tiled kernel's sums differ from the grid-stride kernel's");
    }

    static (T[] Tiled, T[] Plain) Run<T>(GemmArgs<T> s, T[] a, T[] b, T[] c0, T[] bias, int tile) where T : unmanaged, System.Numerics.INumber<T> =>
        Run<T, T, T, AsStored<T>>(s, a, b, c0, bias, tile);

    [Theory]
    [InlineData(1, 1, 1, 2)]
    [InlineData(5, 7, 3, 4)]
    [InlineData(9, 6, 11, 2)]
    [InlineData(6, 9, 5, 4)]
    public void Float32MatchesSgemmForEveryTransposeOnRaggedShapes(int m, int n, int k, int tile)
    {
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                // beta and the bias where the forward uses them (linear: nt with bias), beta 0.5 on the transposed-A products.
                float beta = ta ? 0.5f : 0f;
                bool withBias = !ta && tb;
                int seed = m * 100 + n * 10 + k + (ta ? 1000 : 0) + (tb ? 2000 : 0);
                var a = Random<float>(m * k, seed); var b = Random<float>(k * n, seed + 1); var c0 = Random<float>(m * n, seed + 2);
                var bias = withBias ? Random<float>(n, seed + 3) : new float[1];
                var s = new GemmArgs<float> { M = m, N = n, K = k, Lda = ta ? m : k, Ldb = tb ? k : n, Ldc = n, TransA = ta ? 1 : 0, TransB = tb ? 1 : 0,
                    HasBias = withBias ? 1 : 0, Alpha = 1.5f, Beta = beta };
                var expected = (float[])c0.Clone();
                CpuGemm.Sgemm(ta, tb, m, n, k, 1.5f, a, s.Lda, b, s.Ldb, beta, expected, n);
                if (withBias) for (int r = 0; r < m; r++) for (int j = 0; j < n; j++) expected[r * n + j] += bias[j];
                CloseAndBitEqual($"{(ta ? 't' : 'n')}{(tb ? 't' : 'n')} {m}x{n}x{k} tile {tile}", expected, Run(s, a, b, c0, bias, tile));
            }
    }

    [Theory]
    [InlineData(7, 5, 4)]
    [InlineData(10, 3, 2)]
    public void Float64GramAtOffsetsMatchesTheHostProductInEachTriangleMode(int n, int samples, int tile)
    {
        // C = XᵀX for X [samples, n] stored at an offset in a wider array, written into C at an offset, as syrk does.
        const int offA = 3, offC = 5;
        int ld = n + 2;
        var x = Random<double>(offA + samples * ld, n);
        var xm = new MatrixD(samples, n);
        for (int r = 0; r < samples; r++) for (int j = 0; j < n; j++) xm[r, j] = x[offA + r * ld + j];
        var gram = MatrixD.Multiply(xm, xm, transA: true);
        for (int tri = 0; tri <= 2; tri++)
        {
            var c0 = Enumerable.Repeat(double.NaN, offC + n * n).ToArray();
            var s = new GemmArgs<double> { M = n, N = n, K = samples, OffA = offA, Lda = ld, OffB = offA, Ldb = ld, OffC = offC, Ldc = n, TransA = 1, Alpha = 1, Beta = 0, Tri = tri };
            var (tiled, plain) = Run(s, x, x, c0, new double[1], tile);
            Assert.True(tiled.SequenceEqual(plain), $"tri {tri}: the tiled kernel's sums differ from the grid-stride kernel's");
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    double got = tiled[offC + i * n + j];
                    if (tri == 1 && i > j) { Assert.True(double.IsNaN(got), $"tri 1 wrote the lower triangle at ({i}, {j})"); continue; }
                    Assert.True(Math.Abs(got - gram[i, j]) <= 1e-13 * Math.Max(1, Math.Abs(gram[i, j])), $"tri {tri} ({i}, {j}): {got} vs {gram[i, j]}");
                }
            for (int i = 0; i < offC; i++) Assert.True(double.IsNaN(tiled[i]), $"tri {tri} wrote before the offset at {i}");
        }
    }

    static (float[] Tiled, float[] Plain) Run16(HalfFormat format, GemmArgs<float> s, float[] a, ushort[] b, int tile) =>
        format == HalfFormat.BFloat16 ? Run<float, float, ushort, BFloat16Weight>(s, a, b, new float[s.M * s.N], new float[1], tile)
            : Run<float, float, ushort, Float16Weight>(s, a, b, new float[s.M * s.N], new float[1], tile);

    static ushort ToBits(HalfFormat format, float v) =>
        format == HalfFormat.BFloat16 ? (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16) : BitConverter.HalfToUInt16Bits((System.Half)v);

    [Theory]
    [InlineData(HalfFormat.BFloat16)]
    [InlineData(HalfFormat.Float16)]
    public void EverySixteenBitPatternWidensExactly(HalfFormat format)
    {
        // C = 1·B over all 65,536 patterns as one row of B: subnormals, infinities and NaNs included. The reference is
        // .NET's own conversion (Half → float; bfloat16 as the high half of a float32).
        var bits = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var s = new GemmArgs<float> { M = 1, N = bits.Length, K = 1, Lda = 1, Ldb = bits.Length, Ldc = bits.Length, Alpha = 1f };
        var (tiled, plain) = Run16(format, s, new[] { 1f }, bits, 2);
        for (int i = 0; i < bits.Length; i++)
        {
            float expected = format == HalfFormat.BFloat16 ? BitConverter.Int32BitsToSingle(i << 16) : (float)BitConverter.UInt16BitsToHalf((ushort)i);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(plain[i]) && float.IsNaN(tiled[i]) : plain[i] == expected && tiled[i] == expected,
                $"{format} 0x{i:X4}: expected {expected:R}, grid-stride {plain[i]:R}, tiled {tiled[i]:R}");
        }
    }

    [Theory]
    [InlineData(HalfFormat.BFloat16, true, 5, 7, 9, 2)]
    [InlineData(HalfFormat.BFloat16, false, 6, 9, 5, 4)]
    [InlineData(HalfFormat.Float16, true, 9, 6, 11, 4)]
    [InlineData(HalfFormat.Float16, false, 1, 13, 7, 2)]
    public void SixteenBitWeightsMatchTheManagedWideningGemm(HalfFormat format, bool transB, int m, int n, int k, int tile)
    {
        // x·Wᵀ (nn.Linear, B [n, k]) or x·W (Conv1D, B [k, n]) with W held 16-bit, as the forward runs a 16-bit checkpoint.
        int seed = m * 100 + n * 10 + k;
        var a = Random<float>(m * k, seed);
        var b = Random<float>(k * n, seed + 1).Select(v => ToBits(format, v)).ToArray();
        var expected = new float[m * n];
        unsafe
        {
            fixed (float* pa = a) fixed (ushort* pb = b) fixed (float* pc = expected)
                WideningGemm.Sgemm(transB, m, n, k, pa, k, pb, transB ? k : n, format, 0f, pc, n);
        }
        var s = new GemmArgs<float> { M = m, N = n, K = k, Lda = k, Ldb = transB ? k : n, Ldc = n, TransB = transB ? 1 : 0, Alpha = 1f };
        CloseAndBitEqual($"{format} {(transB ? "nt" : "nn")} {m}x{n}x{k} tile {tile}", expected, Run16(format, s, a, b, tile));
    }

    [Theory]
    [InlineData(7, 13, 2)]
    [InlineData(10, 5, 4)]
    public void FusedFloat64CovarianceOfFloat32KeysEqualsTheOrderedHostSum(int f, int rows, int tile)
    {
        // C += Σ_r k_r k_rᵀ with the float32 keys widened in the loads (no float64 copy): each product is exact in
        // float64 and both kernels add them in row order, so C is bit for bit the host's float64 sum in that order.
        var keys = Random<float>(rows * f, f * 31 + rows).Select(v => v * 1e3f).ToArray();
        var s = new GemmArgs<double> { M = f, N = f, K = rows, Lda = f, Ldb = f, Ldc = f, TransA = 1, Alpha = 1, Beta = 1, Tri = 2 };
        var c0 = Random<double>(f * f, 7);
        for (int i = 0; i < f; i++) for (int j = 0; j < i; j++) c0[i * f + j] = c0[j * f + i];   // a symmetric running sum
        var (t, p) = Run<double, float, float, WidenedKeys>(s, keys, keys, c0, new double[1], tile);
        for (int i = 0; i < f; i++)
            for (int j = 0; j < f; j++)
            {
                int lo = Math.Min(i, j), hi = Math.Max(i, j);
                double acc = 0;
                for (int r = 0; r < rows; r++) acc += (double)keys[r * f + lo] * keys[r * f + hi];
                double expected = acc + c0[lo * f + hi];
                Assert.True(t[i * f + j] == expected && p[i * f + j] == expected, $"({i}, {j}): tiled {t[i * f + j]:R}, grid-stride {p[i * f + j]:R}, host {expected:R}");
            }
    }

    [Fact]
    public void ATileOfZeroIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => TiledGemmLaunch.Config<float>(4, 4, 0));
}
