using Kedit.Backends;
using Kedit.Kernels.Cpu;
using Kedit.Models;
using Xunit;
using static Kedit.Tests.Device.DeviceTestData;

namespace Kedit.Tests.Device;

/// <summary>
/// Every device kernel against the CPU reference (CpuBackend ops, Gemm.Sgemm) on seeded random inputs,
/// ragged shapes included; device outputs are poisoned with NaN before each run so an unwritten element fails.
/// </summary>
public abstract class DeviceKernelTests<TDevice> where TDevice : IDeviceFixture
{
    static readonly CpuBackend Cpu = CpuBackend.Instance;

    static float[] Get(DeviceBackend be, Tensor t)
    {
        var r = new float[t.Length];
        be.Download(t, r);
        return r;
    }

    public static TheoryData<int, int, int> GemmShapes => new()
    {
        { 1, 1, 1 }, { 3, 200, 77 }, { 8, 65, 130 }, { 9, 67, 130 }, { 64, 64, 16 }, { 65, 70, 33 }, { 130, 97, 200 },
    };

    [SkippableTheory, MemberData(nameof(GemmShapes))]
    public void GemmMatchesSgemmForEveryTransposeAndBeta(int m, int n, int k)
    {
        TDevice.Require();
        int seed = m * 1000 + n * 10 + k;
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
                foreach (float beta in new[] { 0f, 0.5f })
                {
                    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
                    using var be = TDevice.RequireFresh();
                        var a = Random(ar * ac, seed + 1); var b = Random(br * bc, seed + 2); var c0 = Random(m * n, seed + 3);
                    var expected = (float[])c0.Clone();
                    Gemm.Sgemm(ta, tb, m, n, k, 1.5f, a, ac, b, bc, beta, expected, n);
                    using var da = Dev(be, ar, ac, a); using var db = Dev(be, br, bc, b);
                    using var dc = Dev(be, m, n, beta == 0 ? null : c0);
                    be.Gemm(ta, tb, da, db, dc, 1.5f, beta);
                    Close($"gemm {(ta ? 't' : 'n')}{(tb ? 't' : 'n')} {m}x{n}x{k} beta {beta}", expected, Get(be, dc));
                }
    }

    [SkippableTheory]
    [InlineData(1, 33, 70)]
    [InlineData(5, 64, 64)]
    [InlineData(37, 100, 129)]
    [InlineData(130, 77, 65)]
    public void LinearMatchesCpuInBothLayoutsWithAndWithoutBias(int rows, int inDim, int outDim)
    {
        TDevice.Require();
        foreach (bool inputMajor in new[] { false, true })
            foreach (bool withBias in new[] { false, true })
            {
                using var be = TDevice.RequireFresh();
                var w = new Linear("test.weight", Random(inDim * outDim, rows + inDim), withBias ? Random(outDim, 7) : null, inDim, outDim, inputMajor);
                var x = Random(rows * inDim, 11 + rows);
                var hy = Host(rows, outDim);
                Cpu.Linear(Host(rows, inDim, x), w, hy);
                using var dx = Dev(be, rows, inDim, x); using var dy = Dev(be, rows, outDim);
                be.Linear(dx, w, dy);
                Close($"linear {rows}x{inDim}->{outDim} inputMajor={inputMajor} bias={withBias}", hy.Data, Get(be, dy));
            }
    }

    [SkippableFact]
    public void LinearReuploadsTheWeightWhenItsVersionChanges()
    {
        var be = TDevice.Require();
        var w = new Linear("edit.weight", Random(40 * 24, 3), Random(24, 4), 40, 24, false);
        var x = Random(6 * 40, 5);
        using var dx = Dev(be, 6, 40, x); using var dy = Dev(be, 6, 24);
        be.Linear(dx, w, dy);
        var before = Get(be, dy);
        for (int i = 0; i < w.Weight.Length; i++) w.Weight[i] *= -2f;
        w.MarkChanged();
        be.Linear(dx, w, dy);
        var hy = Host(6, 24);
        Cpu.Linear(Host(6, 40, x), w, hy);
        Close("linear after edit", hy.Data, Get(be, dy));
        Assert.NotEqual(before, Get(be, dy));
    }

    [SkippableTheory]
    [InlineData(1, 5)]
    [InlineData(3, 300)]
    [InlineData(4, 1000)]
    public void NormsMatchCpu(int rows, int cols)
    {
        var be = TDevice.Require();
        var x = Random(rows * cols, cols, 3f); var gamma = Random(cols, cols + 1); var beta = Random(cols, cols + 2);
        for (int i = 0; i < x.Length; i++) x[i] += 0.7f; // a non-zero mean exercises the centring
        using var dx = Dev(be, rows, cols, x);
        foreach (var b in new[] { beta, null })
        {
            var hy = Host(rows, cols);
            Cpu.LayerNorm(Host(rows, cols, x), gamma, b, 1e-5f, hy);
            using var dy = Dev(be, rows, cols);
            be.LayerNorm(dx, gamma, b, 1e-5f, dy);
            Close($"layernorm beta={b != null}", hy.Data, Get(be, dy));
        }
        var hr = Host(rows, cols);
        Cpu.RmsNorm(Host(rows, cols, x), gamma, 1e-6f, hr);
        using var dr = Dev(be, rows, cols);
        be.RmsNorm(dx, gamma, 1e-6f, dr);
        Close("rmsnorm", hr.Data, Get(be, dr));
    }

    [SkippableFact]
    public void ActivationsGatedActivationsAndAddMatchCpu()
    {
        var be = TDevice.Require();
        int rows = 3, f = 171;
        foreach (var act in new[] { Activation.GeluNew, Activation.GeluExact, Activation.Silu })
        {
            var x = Random(rows * f, (int)act, 6f);
            var hx = Host(rows, f, x);
            Cpu.Activate(hx, act);
            using var dx = Dev(be, rows, f, x);
            be.Activate(dx, act);
            Close($"activate {act}", hx.Data, Get(be, dx));
        }
        var gu = Random(rows * 2 * f, 21, 5f);
        foreach (var act in new[] { Activation.GeluNew, Activation.GeluExact, Activation.Silu })
        {
            var hy = Host(rows, f);
            Cpu.GatedActivation(Host(rows, 2 * f, gu), act, hy);
            using var dgu = Dev(be, rows, 2 * f, gu); using var dy = Dev(be, rows, f);
            be.GatedActivation(dgu, act, dy);
            Close($"gated {act}", hy.Data, Get(be, dy));
        }

        var acc = Random(rows * f, 31); var add = Random(rows * f, 32);
        var ha = Host(rows, f, acc);
        Cpu.Add(ha, Host(rows, f, add));
        using var da = Dev(be, rows, f, acc); using var dadd = Dev(be, rows, f, add);
        be.Add(da, dadd);
        Close("add", ha.Data, Get(be, da), 0);
    }

    [SkippableFact]
    public void EmbedMatchesCpuWithAndWithoutPositionTable()
    {
        var be = TDevice.Require();
        int vocab = 37, d = 45, maxPos = 11;
        var table = Random(vocab * d, 1); var pos = Random(maxPos * d, 2);
        int[] ids = { 0, 36, 5, 5, 17 }, positions = { 0, 1, 2, 10, 3 };
        foreach (var pt in new[] { pos, null })
        {
            var hx = Host(ids.Length, d);
            Cpu.Embed(ids, new WeightMatrix(table), pt, positions, hx);
            using var dx = Dev(be, ids.Length, d);
            be.Embed(ids, new WeightMatrix(table), pt, positions, dx);
            Close($"embed positions={pt != null}", hx.Data, Get(be, dx), 0);
        }
        using var bad = Dev(be, 1, d);
        Assert.Throws<KeditException>(() => be.Embed(new[] { vocab }, new WeightMatrix(table), null, new[] { 0 }, bad));
    }

    [SkippableTheory]
    [InlineData(RopeLayout.Interleaved, 4, 4, 16, 8)]   // GPT-J: partial rotary, interleaved pairs
    [InlineData(RopeLayout.RotateHalf, 4, 2, 16, 16)]   // Llama with grouped kv heads
    [InlineData(RopeLayout.RotateHalf, 3, 1, 10, 10)]
    public void RopeMatchesCpu(RopeLayout layout, int heads, int kvHeads, int headDim, int rotaryDim)
    {
        var be = TDevice.Require();
        int rows = 5, cols = (heads + 2 * kvHeads) * headDim;
        var tables = new RopeTables(32, rotaryDim, 10000, null);
        var x = Random(rows * cols, headDim * heads);
        int[] positions = { 0, 3, 31, 7, 1 };
        var hx = Host(rows, cols, x);
        Cpu.Rope(hx, heads, kvHeads, headDim, rotaryDim, layout, positions, tables);
        using var dx = Dev(be, rows, cols, x);
        be.Rope(dx, heads, kvHeads, headDim, rotaryDim, layout, positions, tables);
        Close($"rope {layout}", hx.Data, Get(be, dx));
    }

    [SkippableTheory]
    [InlineData(2, 3, 4, 4, 2, 8, int.MaxValue)]      // batch, GQA, a cache that already holds 4 slots
    [InlineData(1, 6, 0, 2, 2, 16, int.MaxValue)]     // prefill
    [InlineData(1, 2, 300, 2, 1, 16, int.MaxValue)]   // more than one 256-key chunk: exercises the online softmax rescaling
    [InlineData(3, 1, 5, 4, 4, 64, int.MaxValue)]     // decoding step
    [InlineData(1, 9, 0, 2, 1, 8, 3)]                 // sliding window prefill (the GEMM path)
    [InlineData(2, 2, 300, 2, 2, 16, 260)]            // sliding window decode over a long cache, starting mid-chunk
    public void AttentionMatchesCpuIncludingMaskedSlotsAndCacheWrites(int batch, int newTokens, int past, int heads, int kvHeads, int headDim, int window)
    {
        float scale = window == int.MaxValue ? 1f / MathF.Sqrt(headDim) : 0.6f;
        var be = TDevice.Require();
        int capacity = past + newTokens + 1, rows = batch * newTokens, kvd = kvHeads * headDim, cols = heads * headDim + 2 * kvd;
        var rng = new Random(batch * 100 + past);
        var valid = new bool[batch * capacity];
        for (int i = 0; i < valid.Length; i++) valid[i] = rng.NextDouble() > 0.2;
        // Sequence 0's first query slot (past) sees only masked keys when past == 0 and its slot is padding.
        if (past == 0) valid[0] = false;
        var qkv = Random(rows * cols, 41, 2f);
        var kc = Random(batch * capacity * kvd, 42); var vc = Random(batch * capacity * kvd, 43);
        var ab = new AttentionBatch(batch, newTokens, past, capacity, valid);
        var hkc = Host(batch * capacity, kvd, kc); var hvc = Host(batch * capacity, kvd, vc); var ho = Host(rows, heads * headDim);
        Cpu.Attention(Host(rows, cols, qkv), heads, kvHeads, headDim, scale, window, hkc, hvc, ab, ho);
        using var dq = Dev(be, rows, cols, qkv);
        using var dkc = Dev(be, batch * capacity, kvd, kc); using var dvc = Dev(be, batch * capacity, kvd, vc);
        using var dout = Dev(be, rows, heads * headDim);
        be.Attention(dq, heads, kvHeads, headDim, scale, window, dkc, dvc, ab, dout);
        Close("attention output", ho.Data, Get(be, dout), 5e-6);
        Close("key cache", hkc.Data, Get(be, dkc), 0);
        Close("value cache", hvc.Data, Get(be, dvc), 0);
        if (past == 0) Assert.All(Get(be, dout).Take(headDim), v => Assert.Equal(0f, v));
    }

    [SkippableFact]
    public void RowAccessCopyAndHooksPrimitivesMatchCpu()
    {
        var be = TDevice.Require();
        var x = Random(4 * 9, 51); var delta = Random(9, 52);
        using var dx = Dev(be, 4, 9, x);
        var hx = Host(4, 9, x);
        be.AddToRow(dx, 2, delta); Cpu.AddToRow(hx, 2, delta);
        var row = new float[9];
        be.ReadRow(dx, 2, row);
        Close("row after AddToRow", hx.Row(2).ToArray(), row, 0);
        using var copy = Dev(be, 4, 9);
        be.Copy(dx, copy);
        Close("copy", hx.Data, Get(be, copy), 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => be.ReadRow(dx, 4, row));
        Assert.Throws<ArgumentException>(() => be.Copy(dx, new CpuTensor(4, 9)));
    }

    [SkippableFact]
    public void GramAccumulationRankUpdateAndMatVecMatchCpu()
    {
        var be = TDevice.Require();
        int n = 70, f = 45, m = 33, r = 3;
        var keys = Random(n * f, 61); var sum0 = Random(f * f, 62);
        for (int i = 0; i < f; i++) for (int j = 0; j < i; j++) sum0[i * f + j] = sum0[j * f + i];
        var expected = (float[])sum0.Clone();
        Gemm.Sgemm(true, false, f, f, n, 1f, keys, f, keys, f, 1f, expected, f);
        using var dk = Dev(be, n, f, keys); using var ds = Dev(be, f, f, sum0);
        be.AccumulateGram(dk, ds);
        var got = Get(be, ds);
        Close("gram", expected, got);
        for (int i = 0; i < f; i++) for (int j = 0; j < f; j++) Assert.Equal(got[i * f + j], got[j * f + i]);

        var w = Random(m * f, 63); var u = Random(m * r, 64); var v = Random(f * r, 65);
        var we = (float[])w.Clone();
        Gemm.Sgemm(false, true, m, f, r, 1f, u, r, v, r, 1f, we, f);
        using var dw = Dev(be, m, f, w); using var du = Dev(be, m, r, u); using var dv = Dev(be, f, r, v);
        be.AddOuterProducts(dw, du, dv);
        Close("rank-r update", we, Get(be, dw));

        var xv = Random(f, 66); var xt = Random(m, 67);
        var y = new float[m]; var yt = new float[f];
        Gemm.Sgemv(false, m, f, 1f, w, f, xv, 0f, y);
        Gemm.Sgemv(true, m, f, 1f, w, f, xt, 0f, yt);
        using var dwm = Dev(be, m, f, w); using var dxv = Dev(be, 1, f, xv); using var dxt = Dev(be, 1, m, xt);
        using var dy = Dev(be, 1, m); using var dyt = Dev(be, 1, f);
        be.MatVec(dwm, dxv, dy); be.MatVec(dwm, dxt, dyt, transpose: true);
        Close("matvec", y, Get(be, dy));
        Close("matvec transposed", yt, Get(be, dyt));
    }
}

public sealed class DeviceKernelTestsOnIlgpuCpu : DeviceKernelTests<IlgpuCpuDevice> { }
public sealed class DeviceKernelTestsOnCuda : DeviceKernelTests<IlgpuCudaDevice> { }
