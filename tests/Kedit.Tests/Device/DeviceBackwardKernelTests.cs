using Kedit.Backends;
using Kedit.Models;
using Xunit;
using static Kedit.Tests.Device.DeviceTestData;

namespace Kedit.Tests.Device;

/// <summary>
/// Every backward kernel (IBackwardBackend on the device) against the CPU reference
/// (CpuBackend → CpuBackwardOps) on seeded random inputs, ragged shapes included. Outputs a kernel
/// overwrites are poisoned with NaN first, so an unwritten element fails; outputs it accumulates into
/// start from random values, so the accumulation itself is checked.
/// </summary>
public abstract class DeviceBackwardKernelTests<TDevice> where TDevice : IDeviceFixture
{
    static readonly CpuBackend Cpu = CpuBackend.Instance;

    static float[] Get(DeviceBackend be, Tensor t)
    {
        var r = new float[t.Length];
        be.Download(t, r);
        return r;
    }

    [SkippableTheory]
    [InlineData(1, 33, 70)]
    [InlineData(5, 64, 64)]
    [InlineData(37, 100, 129)]
    [InlineData(130, 77, 65)]
    public void LinearGradsMatchCpuInBothLayouts(int rows, int inDim, int outDim)
    {
        TDevice.Require();
        foreach (bool inputMajor in new[] { false, true })
            foreach (bool accumulate in new[] { false, true })
            {
                using var be = TDevice.RequireFresh();
                string what = $"{rows}x{inDim}->{outDim} inputMajor={inputMajor} accumulate={accumulate}";
                var w = new Linear("test.weight", Random(inDim * outDim, rows + inDim), Random(outDim, 7), inDim, outDim, inputMajor);
                var x = Random(rows * inDim, 11 + rows); var dy = Random(rows * outDim, 12 + rows);
                var dx0 = Random(rows * inDim, 13); var dw0 = Random(inDim * outDim, 14); var db0 = Random(outDim, 15);
                int wr = inputMajor ? inDim : outDim, wc = inputMajor ? outDim : inDim;

                var hdx = Host(rows, inDim, dx0);
                Cpu.LinearInputBackward(Host(rows, outDim, dy), w, hdx, accumulate);
                using var ddy = Dev(be, rows, outDim, dy);
                using var ddx = Dev(be, rows, inDim, accumulate ? dx0 : null);
                be.LinearInputBackward(ddy, w, ddx, accumulate);
                Close($"linear dx {what}", hdx.Data, Get(be, ddx), 2e-6);

                var hdw = Host(wr, wc, dw0); var hdb = Host(1, outDim, db0);
                Cpu.LinearWeightBackward(Host(rows, inDim, x), Host(rows, outDim, dy), w, hdw, hdb);
                using var dx = Dev(be, rows, inDim, x);
                using var ddw = Dev(be, wr, wc, dw0); using var ddb = Dev(be, 1, outDim, db0);
                be.LinearWeightBackward(dx, ddy, w, ddw, ddb);
                Close($"linear dW {what}", hdw.Data, Get(be, ddw), 2e-6);
                Close($"linear db {what}", hdb.Data, Get(be, ddb), 2e-6);
            }
    }

    [SkippableTheory]
    [InlineData(1, 5)]
    [InlineData(3, 300)]
    [InlineData(7, 1000)]
    [InlineData(130, 77)]
    public void NormGradsMatchCpu(int rows, int cols)
    {
        var be = TDevice.Require();
        var x = Random(rows * cols, cols, 3f); var dy = Random(rows * cols, cols + 3);
        var gamma = Random(cols, cols + 1);
        for (int i = 0; i < x.Length; i++) x[i] += 0.7f; // a non-zero mean exercises the centring
        var dx0 = Random(rows * cols, 5); var dg0 = Random(cols, 6); var db0 = Random(cols, 7);
        using var dX = Dev(be, rows, cols, x); using var dDy = Dev(be, rows, cols, dy);
        foreach (bool withParams in new[] { true, false })
        {
            var hdx = Host(rows, cols, dx0); var hdg = Host(1, cols, dg0); var hdb = Host(1, cols, db0);
            Cpu.LayerNormBackward(Host(rows, cols, x), Host(rows, cols, dy), gamma, 1e-5f, hdx, withParams ? hdg : null, withParams ? hdb : null);
            using var ddx = Dev(be, rows, cols, dx0); using var ddg = Dev(be, 1, cols, dg0); using var ddb = Dev(be, 1, cols, db0);
            be.LayerNormBackward(dX, dDy, gamma, 1e-5f, ddx, withParams ? ddg : null, withParams ? ddb : null);
            Close($"layernorm dx {rows}x{cols}", hdx.Data, Get(be, ddx), 1e-5);
            Close($"layernorm dγ {rows}x{cols}", hdg.Data, Get(be, ddg), 1e-5);
            Close($"layernorm dβ {rows}x{cols}", hdb.Data, Get(be, ddb), 1e-5);
            if (!withParams) Assert.Equal(dg0, Get(be, ddg)); // untouched when not asked for

            var hrx = Host(rows, cols, dx0); var hrg = Host(1, cols, dg0);
            Cpu.RmsNormBackward(Host(rows, cols, x), Host(rows, cols, dy), gamma, 1e-6f, hrx, withParams ? hrg : null);
            using var drx = Dev(be, rows, cols, dx0); using var drg = Dev(be, 1, cols, dg0);
            be.RmsNormBackward(dX, dDy, gamma, 1e-6f, drx, withParams ? drg : null);
            Close($"rmsnorm dx {rows}x{cols}", hrx.Data, Get(be, drx), 1e-5);
            Close($"rmsnorm dγ {rows}x{cols}", hrg.Data, Get(be, drg), 1e-5);
        }
    }

    [SkippableTheory]
    [InlineData(1, 1)]
    [InlineData(3, 171)]
    [InlineData(9, 1000)]
    public void ActivationAndGatedActivationGradsMatchCpu(int rows, int f)
    {
        var be = TDevice.Require();
        foreach (var act in new[] { Activation.GeluNew, Activation.GeluExact, Activation.Silu })
        {
            var u = Random(rows * f, (int)act + f, 6f); var d = Random(rows * f, 100 + f);
            var hd = Host(rows, f, d);
            Cpu.ActivationBackward(Host(rows, f, u), hd, act);
            using var du = Dev(be, rows, f, u); using var dd = Dev(be, rows, f, d);
            be.ActivationBackward(du, dd, act);
            Close($"activation backward {act} {rows}x{f}", hd.Data, Get(be, dd), 2e-6);
        }
        var gu = Random(rows * 2 * f, 21 + f, 5f); var dKey = Random(rows * f, 22 + f);
        foreach (var act in new[] { Activation.GeluNew, Activation.GeluExact, Activation.Silu })
        {
            var hg = Host(rows, 2 * f);
            Cpu.GatedActivationBackward(Host(rows, 2 * f, gu), act, Host(rows, f, dKey), hg);
            using var dgu = Dev(be, rows, 2 * f, gu); using var ddk = Dev(be, rows, f, dKey); using var ddg = Dev(be, rows, 2 * f);
            be.GatedActivationBackward(dgu, act, ddk, ddg);
            Close($"gated {act} backward {rows}x{f}", hg.Data, Get(be, ddg), 2e-6);
        }
    }

    [SkippableTheory]
    [InlineData(RopeLayout.Interleaved, 4, 4, 16, 8)]   // GPT-J: partial rotary, interleaved pairs
    [InlineData(RopeLayout.RotateHalf, 4, 2, 16, 16)]   // Llama with grouped kv heads
    [InlineData(RopeLayout.RotateHalf, 3, 1, 10, 10)]
    public void RopeGradMatchesCpuAndUndoesTheForwardRotation(RopeLayout layout, int heads, int kvHeads, int headDim, int rotaryDim)
    {
        var be = TDevice.Require();
        int rows = 5, cols = (heads + 2 * kvHeads) * headDim;
        var tables = new RopeTables(32, rotaryDim, 10000, null);
        var g = Random(rows * cols, headDim * heads);
        int[] positions = { 0, 3, 31, 7, 1 };
        var hg = Host(rows, cols, g);
        Cpu.RopeBackward(hg, heads, kvHeads, headDim, layout, positions, tables);
        using var dg = Dev(be, rows, cols, g);
        be.RopeBackward(dg, heads, kvHeads, headDim, layout, positions, tables);
        Close($"rope backward {layout}", hg.Data, Get(be, dg), 2e-6);
        // The backward is the inverse rotation: forward then backward gives the input back.
        be.Rope(dg, heads, kvHeads, headDim, rotaryDim, layout, positions, tables);
        Close($"rope forward∘backward {layout}", g, Get(be, dg), 1e-6);
    }

    [SkippableTheory]
    [InlineData(2, 3, 4, 2, 8, int.MaxValue)]       // batch, GQA
    [InlineData(1, 6, 2, 2, 16, int.MaxValue)]      // first key masked: its query sees nothing
    [InlineData(3, 17, 3, 1, 10, int.MaxValue)]     // ragged sizes, one kv head for three query heads
    [InlineData(1, 300, 2, 1, 16, int.MaxValue)]    // more than one 256-key chunk per query and per key
    [InlineData(2, 5, 2, 2, 64, int.MaxValue)]
    [InlineData(2, 9, 2, 1, 8, 3)]                  // sliding window of 3 keys
    [InlineData(1, 300, 2, 1, 16, 270)]             // a window over more than one chunk, starting mid-chunk
    public void AttentionGradMatchesCpuWithCausalMaskGqaAndPadding(int batch, int tokens, int heads, int kvHeads, int headDim, int window)
    {
        float scale = window == int.MaxValue ? 1f / MathF.Sqrt(headDim) : 0.7f;
        var be = TDevice.Require();
        int rows = batch * tokens, cols = (heads + 2 * kvHeads) * headDim;
        var rng = new Random(batch * 100 + tokens);
        var valid = new bool[rows];
        for (int i = 0; i < valid.Length; i++) valid[i] = rng.NextDouble() > 0.2;
        valid[0] = false; // sequence 0's first query sees only a masked key
        var qkv = Random(rows * cols, 41 + tokens, 2f); var dOut = Random(rows * heads * headDim, 42 + tokens);
        var hd = Host(rows, cols);
        Cpu.AttentionBackward(Host(rows, cols, qkv), Host(rows, heads * headDim, dOut), batch, tokens, valid, heads, kvHeads, headDim, scale, window, hd);
        using var dq = Dev(be, rows, cols, qkv); using var ddo = Dev(be, rows, heads * headDim, dOut); using var dd = Dev(be, rows, cols);
        be.AttentionBackward(dq, ddo, batch, tokens, valid, heads, kvHeads, headDim, scale, window, dd);
        var got = Get(be, dd);
        Close($"attention backward b={batch} T={tokens} h={heads}/{kvHeads} d={headDim} window {window}", hd.Data, got, 2e-5);
        // The masked key and the query that sees nothing get exactly zero gradients.
        Assert.All(got.AsSpan(0, cols).ToArray(), v => Assert.Equal(0f, v));
    }

    [SkippableTheory]
    [InlineData(5, 37, 1, 3)]
    [InlineData(9, 1000, 2, 4)]
    [InlineData(4, 50257, 0, 2)]     // GPT-2's vocabulary: far more columns than work-items
    public void LossGradsMatchCpuAndTouchOnlyTheirRows(int rows, int vocab, int firstRow, int count)
    {
        var be = TDevice.Require();
        var logits = Random(rows * vocab, vocab + rows, 8f);
        using var dl = Dev(be, rows, vocab, logits);

        var hlp = Host(rows, vocab);
        Cpu.LogSoftmax(Host(rows, vocab, logits), hlp);
        using var dlp = Dev(be, rows, vocab);
        be.LogSoftmax(dl, dlp);
        Close($"log-softmax {rows}x{vocab}", hlp.Data, Get(be, dlp), 1e-6);

        var targets = Enumerable.Range(0, count).Select(k => (k * 7919 + 3) % vocab).ToArray();
        var hGrad = Host(rows, vocab, Poison(rows * vocab));
        var hLoss = new float[count]; var dLoss = new float[count];
        Cpu.SoftmaxCrossEntropyBackward(Host(rows, vocab, logits), firstRow, targets, 0.25f, hGrad, hLoss);
        using var dGrad = Dev(be, rows, vocab);
        be.SoftmaxCrossEntropyBackward(dl, firstRow, targets, 0.25f, dGrad, dLoss);
        var got = Get(be, dGrad);
        int lo = firstRow * vocab, n = count * vocab;
        Close($"cross-entropy grad {rows}x{vocab}", hGrad.Data.AsSpan(lo, n), got.AsSpan(lo, n), 1e-5);
        Close($"cross-entropy loss {rows}x{vocab}", hLoss, dLoss, 1e-5);
        Assert.True(got.Take(lo).Concat(got.Skip(lo + n)).All(float.IsNaN), "cross-entropy wrote rows outside its range");

        // KL rows after the cross-entropy rows, against a perturbed reference distribution.
        int klFirst = firstRow + count, klCount = rows - klFirst;
        var refLogits = Random(klCount * vocab, 77, 8f);
        var hRef = Host(klCount, vocab);
        Cpu.LogSoftmax(Host(klCount, vocab, refLogits), hRef);
        using var dRef = Dev(be, klCount, vocab, hRef.Data);
        var hKl = new float[klCount]; var dKl = new float[klCount];
        Cpu.KlDivergenceBackward(Host(rows, vocab, logits), klFirst, hRef, 3f, hGrad, hKl);
        be.KlDivergenceBackward(dl, klFirst, dRef, 3f, dGrad, dKl);
        got = Get(be, dGrad);
        Close($"KL grad {rows}x{vocab}", hGrad.Data.AsSpan(klFirst * vocab), got.AsSpan(klFirst * vocab), 2e-5);
        Close($"KL value {rows}x{vocab}", hKl, dKl, 2e-5);
        Close($"cross-entropy grad kept {rows}x{vocab}", hGrad.Data.AsSpan(lo, n), got.AsSpan(lo, n), 1e-5);
        Assert.All(hKl, v => Assert.True(v >= 0, "KL divergence is non-negative"));

        Assert.Throws<KeditException>(() => be.SoftmaxCrossEntropyBackward(dl, 0, new[] { vocab }, 1f, dGrad, new float[1]));
    }

    [SkippableTheory]
    [InlineData(7, 45, 11)]
    [InlineData(300, 64, 50)]
    public void EmbeddingGradMatchesCpuExactlyWithRepeatsAndPadding(int rows, int d, int vocab)
    {
        var be = TDevice.Require();
        var rng = new Random(rows + d);
        // Repeated ids accumulate; −1 marks padding rows that contribute nothing.
        var ids = Enumerable.Range(0, rows).Select(_ => rng.Next(-1, Math.Min(vocab, 5))).ToArray();
        var dx = Random(rows * d, 3); var table0 = Random(vocab * d, 4);
        var ht = Host(vocab, d, table0);
        Cpu.EmbeddingBackward(Host(rows, d, dx), ids, ht);
        using var ddx = Dev(be, rows, d, dx); using var dt = Dev(be, vocab, d, table0);
        be.EmbeddingBackward(ddx, ids, dt);
        Close("embedding backward", ht.Data, Get(be, dt), 0); // same order of additions: bitwise equal
        Assert.Throws<KeditException>(() => be.EmbeddingBackward(ddx, new[] { vocab }, dt));
        Assert.Throws<KeditException>(() => Cpu.EmbeddingBackward(Host(rows, d, dx), new[] { vocab }, ht));
    }
}

public sealed class DeviceBackwardKernelTestsOnIlgpuCpu : DeviceBackwardKernelTests<IlgpuCpuDevice> { }
public sealed class DeviceBackwardKernelTestsOnCuda : DeviceBackwardKernelTests<IlgpuCudaDevice> { }
