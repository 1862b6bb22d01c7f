using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Backends;

/// <summary>Host tensor of the CPU backend: a plain row-major float array.</summary>
public sealed class CpuTensor : Tensor
{
    bool _pooled;

    public CpuTensor(int rows, int cols) : base(rows, cols) => Data = new float[(long)rows * cols];
    /// <summary>A tensor over an existing array (no copy): the backward tape accumulates parameter gradients in place.</summary>
    internal CpuTensor(int rows, int cols, float[] data) : base(rows, cols)
    {
        if (data.Length < (long)rows * cols) throw new ArgumentException($"an array of {data.Length} values cannot hold a [{rows}, {cols}] tensor");
        Data = data;
    }
    CpuTensor(int rows, int cols, float[] data, bool pooled) : this(rows, cols, data) => _pooled = pooled;

    public float[] Data { get; }
    public Span<float> Row(int r) => Data.AsSpan(r * Cols, Cols);

    /// <summary>A zeroed tensor whose array comes from (and on <see cref="Dispose"/> goes back to) <see cref="ArrayRecycler"/>.</summary>
    internal static CpuTensor Rent(int rows, int cols)
    {
        long n = (long)rows * cols;
        return ArrayRecycler.TryTake(n) is float[] a ? new CpuTensor(rows, cols, a, pooled: true) : new CpuTensor(rows, cols, new float[n], pooled: n >= ArrayRecycler.MinLength);
    }

    /// <summary>Hands a recyclable array back; the tensor must not be used afterwards (as with any disposed tensor).</summary>
    public override void Dispose()
    {
        if (!_pooled) return;
        _pooled = false;
        ArrayRecycler.Return(Data);
    }
}

/// <summary>
/// Keeps the arrays of disposed large CPU tensors for the next allocation of the same size. A fresh managed
/// array's pages are faulted in on first write, which in this VM costs ~1 ms per MiB (a 128-token GPT-2
/// forward spent 25 of its 170 ms filling a new KV cache); a recycled array is only cleared. Bounded: at
/// most <see cref="MaxBytes"/> in total and a few arrays per size.
/// </summary>
internal static class ArrayRecycler
{
    /// <summary>
    /// Arrays below the large-object threshold (85,000 bytes) come from the GC's young generation, whose
    /// memory is already touched, and are not kept; larger ones get fresh pages (a 64-token forward's
    /// 196 KiB KV-cache slabs, 24 of them, cost 5 ms in page faults before they were kept too).
    /// </summary>
    public const long MinLength = 85_000 / sizeof(float);
    const long MaxBytes = 1L << 29;
    const int MaxPerLength = 32;
    static readonly System.Collections.Concurrent.ConcurrentDictionary<long, System.Collections.Concurrent.ConcurrentBag<float[]>> s_free = new();
    static long s_bytes;

    public static float[]? TryTake(long length)
    {
        if (length < MinLength || !s_free.TryGetValue(length, out var bag) || !bag.TryTake(out var a)) return null;
        Interlocked.Add(ref s_bytes, -4 * length);
        Array.Clear(a);
        return a;
    }

    public static void Return(float[] a)
    {
        // Over either bound the array is left to the GC.
        var bag = s_free.GetOrAdd(a.LongLength, _ => new());
        if (bag.Count >= MaxPerLength) return;
        if (Interlocked.Add(ref s_bytes, 4 * a.LongLength) > MaxBytes) { Interlocked.Add(ref s_bytes, -4 * a.LongLength); return; }
        bag.Add(a);
    }
}

/// <summary>
/// The managed CPU backend: blocked SIMD GEMM from Kedit.Kernels for the matrix products,
/// System.Numerics.Tensors for elementwise work, both cores for the row-parallel ops.
/// </summary>
public sealed partial class CpuBackend : IBackend
{
    public static CpuBackend Instance { get; } = new();
    public string Name => "cpu";

    static float[] D(Tensor t) => ((CpuTensor)t).Data;

    public Tensor Allocate(int rows, int cols) => CpuTensor.Rent(rows, cols);
    public void Upload(ReadOnlySpan<float> source, Tensor destination) => source.CopyTo(D(destination));
    public void Download(Tensor source, Span<float> destination) => D(source).AsSpan(0, (int)source.Length).CopyTo(destination);
    public void ReadRow(Tensor t, int row, Span<float> destination) => D(t).AsSpan(row * t.Cols, t.Cols).CopyTo(destination);
    public void AddToRow(Tensor t, int row, ReadOnlySpan<float> delta)
    {
        var r = D(t).AsSpan(row * t.Cols, t.Cols);
        TensorPrimitives.Add(r, delta, r);
    }
    public void Copy(Tensor source, Tensor destination) => D(source).AsSpan(0, (int)source.Length).CopyTo(D(destination));

    public void Embed(ReadOnlySpan<int> ids, WeightMatrix table, float[]? positionTable, ReadOnlySpan<int> positions, Tensor x)
    {
        int d = x.Cols;
        var o = D(x);
        long vocab = table.Length / d;
        for (int r = 0; r < ids.Length; r++)
        {
            int id = ids[r];
            if ((uint)id >= (uint)vocab) throw new KeditException($"token id {id} is outside the vocabulary (size {vocab})");
            var dst = o.AsSpan(r * d, d);
            table.Read((long)id * d, dst);
            if (positionTable != null)
            {
                int p = positions[r];
                if ((uint)p >= (uint)(positionTable.Length / d)) throw new KeditException($"position {p} exceeds the model's {positionTable.Length / d} positions");
                TensorPrimitives.Add(dst, positionTable.AsSpan(p * d, d), dst);
            }
        }
    }

    public unsafe void Linear(Tensor x, Linear w, Tensor y)
    {
        int m = x.Rows;
        var xd = D(x); var yd = D(y);
        if (w.Bias != null)
            for (int r = 0; r < m; r++) w.Bias.AsSpan().CopyTo(yd.AsSpan(r * w.Out, w.Out));
        fixed (float* px = xd) fixed (float* py = yd)
            Product(w.Matrix, false, !w.InputMajor, m, w.Out, w.In, px, w.In, w.InputMajor ? w.Out : w.In, w.Bias != null ? 1f : 0f, py, w.Out);
    }

    /// <summary>C = A·op(W) + beta·C for a weight held as float32 or 16-bit (widened slab by slab, no float32 copy kept).</summary>
    internal static unsafe void Product(WeightMatrix w, bool transA, bool transB, int m, int n, int k, float* a, int lda, int ldb, float beta, float* c, int ldc)
    {
        if (w.Half is { } h && !transA)
            fixed (ushort* pw = h.Bits) WideningGemm.Sgemm(transB, m, n, k, a, lda, pw, ldb, h.Format, beta, c, ldc);
        else
            fixed (float* pw = w.F32) Gemm.Sgemm(transA, transB, m, n, k, 1f, a, lda, pw, ldb, beta, c, ldc);
    }

    public void LayerNorm(Tensor x, float[] gamma, float[]? beta, float eps, Tensor y)
    {
        int n = x.Cols;
        var xd = D(x); var yd = D(y);
        ForRows(x.Rows, n, r =>
        {
            var xr = xd.AsSpan(r * n, n); var yr = yd.AsSpan(r * n, n);
            float mean = TensorPrimitives.Sum(xr) / n;
            TensorPrimitives.Subtract(xr, mean, yr);
            float var_ = TensorPrimitives.SumOfSquares(yr) / n;
            float inv = 1f / MathF.Sqrt(var_ + eps);
            TensorPrimitives.Multiply(yr, inv, yr);
            TensorPrimitives.Multiply(yr, gamma, yr);
            if (beta != null) TensorPrimitives.Add(yr, beta, yr);
        });
    }

    public void RmsNorm(Tensor x, float[] gamma, float eps, Tensor y)
    {
        int n = x.Cols;
        var xd = D(x); var yd = D(y);
        ForRows(x.Rows, n, r =>
        {
            var xr = xd.AsSpan(r * n, n); var yr = yd.AsSpan(r * n, n);
            float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / n + eps);
            TensorPrimitives.Multiply(xr, inv, yr);
            TensorPrimitives.Multiply(yr, gamma, yr);
        });
    }

    public void Activate(Tensor x, Activation act)
    {
        var xd = D(x);
        int n = x.Cols;
        ForRows(x.Rows, n, r => CpuMath.Activate(xd.AsSpan(r * n, n), act));
    }

    public void GatedActivation(Tensor gateUp, Activation act, Tensor y)
    {
        int f = y.Cols;
        var g = D(gateUp); var yd = D(y);
        ForRows(y.Rows, f, r =>
        {
            var yr = yd.AsSpan(r * f, f);
            g.AsSpan(r * 2 * f, f).CopyTo(yr);
            CpuMath.Activate(yr, act);
            TensorPrimitives.Multiply(yr, g.AsSpan(r * 2 * f + f, f), yr);
        });
    }

    public void Add(Tensor acc, Tensor x) => TensorPrimitives.Add(D(acc).AsSpan(0, (int)acc.Length), D(x).AsSpan(0, (int)x.Length), D(acc).AsSpan(0, (int)acc.Length));

    public void Rope(Tensor qkv, int heads, int kvHeads, int headDim, int rotaryDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables)
    {
        if (layout == RopeLayout.None || rotaryDim == 0) return;
        var data = D(qkv);
        int cols = qkv.Cols, half = rotaryDim / 2;
        for (int r = 0; r < qkv.Rows; r++)
        {
            int p = positions[r];
            if ((uint)p >= (uint)tables.MaxPositions) throw new KeditException($"position {p} exceeds the model's {tables.MaxPositions} positions");
            var cos = tables.Cos.AsSpan(p * half, half); var sin = tables.Sin.AsSpan(p * half, half);
            for (int h = 0; h < heads + kvHeads; h++)
                CpuMath.RotateHead(data.AsSpan(r * cols + h * headDim, headDim), cos, sin, layout, 1f);
        }
    }

    /// <summary>Cached keys (elements) below which one call's heads are attended on the calling thread: 1 MiB of float32.</summary>
    const long SerialAttentionKeys = 1 << 18;

    public void Attention(Tensor qkv, int heads, int kvHeads, int headDim, float scale, int window, Tensor keyCache, Tensor valueCache, AttentionBatch b, Tensor output)
    {
        var src = D(qkv); var kc = D(keyCache); var vc = D(valueCache); var o = D(output);
        int qd = heads * headDim, kvd = kvHeads * headDim, cols = qkv.Cols;
        // Store this call's keys and values in their cache slots.
        for (int s = 0; s < b.Batch; s++)
            for (int t = 0; t < b.NewTokens; t++)
            {
                int row = s * b.NewTokens + t, slot = s * b.Capacity + b.PastLength + t;
                src.AsSpan(row * cols + qd, kvd).CopyTo(kc.AsSpan(slot * kvd, kvd));
                src.AsSpan(row * cols + qd + kvd, kvd).CopyTo(vc.AsSpan(slot * kvd, kvd));
            }
        int total = b.PastLength + b.NewTokens;
        if (b.NewTokens >= 8) { AttentionByGemm(src, kc, vc, o, heads, kvHeads, headDim, cols, b, scale, window); return; }
        // Decoding a short context reads little of the cache (96 tokens of GPT-2 small: 0.6 MB a layer, tens of µs):
        // handing heads to a pool thread cost about as much, so that runs here, in place.
        int pairs = b.Batch * heads;
        if ((long)pairs * total * headDim < SerialAttentionKeys)
            for (int bh = 0; bh < pairs; bh++) AttendCached(src, kc, vc, o, bh, heads, kvHeads, headDim, cols, scale, window, b);
        else
            Parallel.For(0, pairs, bh => AttendCached(src, kc, vc, o, bh, heads, kvHeads, headDim, cols, scale, window, b));
    }

    /// <summary>
    /// One (sequence, head) of attention over the cache for a few new tokens: scores, masked softmax, weighted sum of
    /// values, with the 64-or-so-wide head vectors in registers (a library call per key cost more than its arithmetic).
    /// </summary>
    static unsafe void AttendCached(float[] src, float[] kc, float[] vc, float[] o, int bh, int heads, int kvHeads, int headDim, int cols,
        float scale, int window, AttentionBatch b)
    {
        int s = bh / heads, h = bh % heads, kvh = h / (heads / kvHeads), qd = heads * headDim, kvd = kvHeads * headDim;
        int total = b.PastLength + b.NewTokens, hv = headDim & ~7;
        Span<float> scores = total <= 2048 ? stackalloc float[total] : new float[total];
        fixed (float* ps = src, pk = kc, pv = vc, po = o, pScores = scores)
            for (int t = 0; t < b.NewTokens; t++)
            {
                int row = s * b.NewTokens + t, qSlot = b.PastLength + t, first = FirstVisible(qSlot, window);
                float* q = ps + (long)row * cols + h * headDim, outRow = po + (long)row * qd + h * headDim;
                float* keys = pk + (long)s * b.Capacity * kvd + kvh * headDim, values = pv + (long)s * b.Capacity * kvd + kvh * headDim;
                float max = float.NegativeInfinity;
                for (int j = first; j <= qSlot; j++)
                {
                    if (!b.KeyValid[s * b.Capacity + j]) { pScores[j] = float.NegativeInfinity; continue; }
                    float* k = keys + (long)j * kvd;
                    var acc = Vector256<float>.Zero;
                    int i = 0;
                    for (; i < hv; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), Vector256.Load(k + i), acc);
                    float dot = Vector256.Sum(acc);
                    for (; i < headDim; i++) dot += q[i] * k[i];
                    float sc = dot * scale;
                    pScores[j] = sc;
                    if (sc > max) max = sc;
                }
                new Span<float>(outRow, headDim).Clear();
                if (float.IsNegativeInfinity(max)) continue; // a padding query sees nothing; its output is zero
                var live = scores[first..(qSlot + 1)];
                TensorPrimitives.Subtract(live, max, live);
                TensorPrimitives.Exp(live, live); // masked keys: exp(-inf) = 0
                float inv = 1f / TensorPrimitives.Sum(live);
                for (int j = first; j <= qSlot; j++)
                {
                    float w = pScores[j] * inv;
                    if (w == 0) continue;
                    float* v = values + (long)j * kvd;
                    var vw = Vector256.Create(w);
                    int i = 0;
                    for (; i < hv; i += 8) Vector256.Store(Vector256.FusedMultiplyAdd(Vector256.Load(v + i), vw, Vector256.Load(outRow + i)), outRow + i);
                    for (; i < headDim; i++) outRow[i] += v[i] * w;
                }
            }
    }

    /// <summary>The first key slot a query at <paramref name="slot"/> sees under a sliding window (0 without one).</summary>
    internal static int FirstVisible(int slot, int window) => Math.Max(0, slot - window + 1);

    /// <summary>
    /// Prefill attention per (sequence, head) as two GEMMs: S = scale·Q·Kᵀ over the cache, masked
    /// softmax by rows, O = P·V. Same result as the row loop, at GEMM speed. The (sequence, head) pairs
    /// run in parallel, each GEMM on its own thread; rows whose keys are all valid (no padding) take a
    /// vectorised softmax.
    /// </summary>
    static unsafe void AttentionByGemm(float[] src, float[] kc, float[] vc, float[] o, int heads, int kvHeads, int headDim, int cols, AttentionBatch b, float scale, int window)
    {
        int T = b.NewTokens, Tk = b.PastLength + T, qd = heads * headDim, kvd = kvHeads * headDim, group = heads / kvHeads;
        var unpadded = new bool[b.Batch];
        for (int s = 0; s < b.Batch; s++) unpadded[s] = !b.KeyValid.AsSpan(s * b.Capacity, Tk).Contains(false);
        Parallel.For(0, b.Batch * heads, () => new float[T * Tk], (bh, _, scores) =>
        {
            int s = bh / heads, h = bh % heads, kvh = h / group;
            fixed (float* ps = src, pk = kc, pv = vc, po = o, pS = scores)
            {
                Gemm.Sgemm(1, false, true, T, Tk, headDim, scale, ps + (long)s * T * cols + h * headDim, cols,
                    pk + (long)s * b.Capacity * kvd + kvh * headDim, kvd, 0f, pS, Tk);
                for (int t = 0; t < T; t++)
                {
                    var row = scores.AsSpan(t * Tk, Tk);
                    int last = b.PastLength + t, first = FirstVisible(last, window);
                    if (unpadded[s])
                    {
                        var live = row[first..(last + 1)];
                        TensorPrimitives.Subtract(live, TensorPrimitives.Max(live), live);
                        TensorPrimitives.Exp(live, live);
                        TensorPrimitives.Multiply(live, 1f / TensorPrimitives.Sum(live), live);
                        row[..first].Clear();
                        row[(last + 1)..].Clear();
                        continue;
                    }
                    float max = float.NegativeInfinity;
                    for (int j = first; j <= last; j++)
                        if (b.KeyValid[s * b.Capacity + j] && row[j] > max) max = row[j];
                    if (float.IsNegativeInfinity(max)) { row.Clear(); continue; } // a padding query sees nothing
                    float sum = 0;
                    for (int j = 0; j < Tk; j++)
                    {
                        float e = j >= first && j <= last && b.KeyValid[s * b.Capacity + j] ? MathF.Exp(row[j] - max) : 0f;
                        row[j] = e; sum += e;
                    }
                    TensorPrimitives.Multiply(row, 1f / sum, row);
                }
                Gemm.Sgemm(1, false, false, T, headDim, Tk, 1f, pS, Tk, pv + (long)s * b.Capacity * kvd + kvh * headDim, kvd, 0f,
                    po + (long)s * T * qd + h * headDim, qd);
            }
            return scores;
        }, _ => { });
    }

    /// <summary>Runs body over rows, on both cores when there is enough work to pay for it.</summary>
    static void ForRows(int rows, int cols, Action<int> body)
    {
        if ((long)rows * cols < 65536) { for (int r = 0; r < rows; r++) body(r); return; }
        Parallel.For(0, rows, body);
    }

    public void Dispose() { }
}

/// <summary>Scalar/SIMD math shared by the forward and backward passes.</summary>
public static class CpuMath
{
    const float GeluC = 0.7978845608028654f; // sqrt(2/pi)

    public static void Activate(Span<float> x, Activation act)
    {
        switch (act)
        {
            case Activation.GeluNew:
            {
                // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), vectorised in one scratch row.
                var t = x.Length <= 4096 ? stackalloc float[x.Length] : new float[x.Length];
                TensorPrimitives.Multiply(x, x, t);
                TensorPrimitives.Multiply(t, 0.044715f, t);
                TensorPrimitives.Add(t, 1f, t);
                TensorPrimitives.Multiply(t, x, t);
                TensorPrimitives.Multiply(t, GeluC, t);
                TensorPrimitives.Tanh(t, t);
                TensorPrimitives.Add(t, 1f, t);
                TensorPrimitives.Multiply(t, x, t);
                TensorPrimitives.Multiply(t, 0.5f, x);
                break;
            }
            case Activation.GeluExact:
                for (int i = 0; i < x.Length; i++) { double v = x[i]; x[i] = (float)(0.5 * v * (1 + Erf(v / Math.Sqrt(2)))); }
                break;
            case Activation.Silu: Silu(x, x); break;
        }
    }

    public static void Silu(ReadOnlySpan<float> x, Span<float> y)
    {
        var s = x.Length <= 4096 ? stackalloc float[x.Length] : new float[x.Length];
        TensorPrimitives.Sigmoid(x, s);
        TensorPrimitives.Multiply(x, s, y);
    }

    /// <summary>
    /// Rotates one head in place; sign = -1 applies the inverse rotation (used by the backward pass).
    /// </summary>
    public static void RotateHead(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, RopeLayout layout, float sign)
    {
        int half = cos.Length;
        if (layout == RopeLayout.Interleaved)
        {
            for (int i = 0; i < half; i++)
            {
                float a = x[2 * i], b = x[2 * i + 1], c = cos[i], s = sign * sin[i];
                x[2 * i] = a * c - b * s;
                x[2 * i + 1] = b * c + a * s;
            }
        }
        else
        {
            // rotate_half pairs i with i + rotaryDim/2 (the whole head for Llama).
            for (int i = 0; i < half; i++)
            {
                float a = x[i], b = x[i + half], c = cos[i], s = sign * sin[i];
                x[i] = a * c - b * s;
                x[i + half] = b * c + a * s;
            }
        }
    }

    /// <summary>erf with ~1e-15 accuracy, for exact GELU (shared with the ILGPU kernels).</summary>
    public static double Erf(double x) => Kedit.Kernels.Ilgpu.DeviceMath.Erf(x);
}
