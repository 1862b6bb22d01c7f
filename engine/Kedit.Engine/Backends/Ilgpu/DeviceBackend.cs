using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Kedit.Models;

namespace Kedit.Backends;

/// <summary>A float32 activation tensor in accelerator memory.</summary>
public sealed class DeviceTensor : Tensor
{
    internal DeviceTensor(int rows, int cols, DeviceBuffer buffer) : base(rows, cols) => Buffer = buffer;
    internal DeviceBuffer Buffer { get; }
    public override void Dispose() => Buffer.Dispose();
}

/// <summary>
/// The accelerator backend (ILGPU's CUDA, OpenCL and CPU accelerators): every op is a C# kernel from Kedit.Kernels'
/// Ilgpu folder launched through a <see cref="DeviceRuntime"/>. Results match <see cref="CpuBackend"/> to
/// float32 rounding. Weights (Linear, norm parameters, embedding and RoPE tables) are uploaded on first
/// use, in the form the host holds them (16-bit matrices stay 16-bit), and cached by array; a float32
/// <see cref="Linear"/> is re-uploaded when its Version changes (edits bump it).
/// Disposing releases the cached weights only; they are uploaded again if the backend is used later.
/// </summary>
public abstract partial class DeviceBackend : IBackend
{
    const int TileSize = 64, ElementwiseGroup = 256;

    readonly object _cacheGate = new();
    ConditionalWeakTable<float[], DeviceBuffer> _arrays = new();
    ConditionalWeakTable<ushort[], DeviceBuffer> _halves = new();
    ConditionalWeakTable<Linear, StrongBox<int>> _linearVersions = new();
    DeviceBuffer? _dummy;

    internal DeviceBackend(DeviceRuntime runtime, string name) { Runtime = runtime; Name = name; }

    internal DeviceRuntime Runtime { get; }
    public string Name { get; }
    /// <summary>Which device runs the kernels.</summary>
    public string DeviceName => Runtime.DeviceName;
    /// <summary>True when the device is the host CPU itself (ILGPU's CPU accelerator): nothing is gained by moving host work there.</summary>
    public bool IsHostCpu => Runtime.IsHostCpu;

    // ---- buffers -------------------------------------------------------------------------------

    public Tensor Allocate(int rows, int cols)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(nameof(rows), $"tensor shape [{rows}, {cols}] is negative");
        return new DeviceTensor(rows, cols, Runtime.Allocate((long)rows * cols * sizeof(float)));
    }

    public unsafe void Upload(ReadOnlySpan<float> source, Tensor destination)
    {
        var d = Dev(destination);
        if (source.Length > destination.Length) throw new ArgumentException($"upload of {source.Length} values into a [{destination.Rows}, {destination.Cols}] tensor");
        fixed (float* p = source) Runtime.Write(d.Buffer, 0, p, (long)source.Length * sizeof(float));
    }

    public unsafe void Download(Tensor source, Span<float> destination)
    {
        var s = Dev(source);
        if (destination.Length < source.Length) throw new ArgumentException($"download of a [{source.Rows}, {source.Cols}] tensor into {destination.Length} values");
        fixed (float* p = destination) Runtime.Read(s.Buffer, 0, p, source.Length * sizeof(float));
    }

    public unsafe void ReadRow(Tensor t, int row, Span<float> destination)
    {
        var d = Dev(t);
        CheckRow(t, row, destination.Length);
        fixed (float* p = destination) Runtime.Read(d.Buffer, (long)row * t.Cols * sizeof(float), p, (long)t.Cols * sizeof(float));
    }

    public unsafe void AddToRow(Tensor t, int row, ReadOnlySpan<float> delta)
    {
        var d = Dev(t);
        CheckRow(t, row, delta.Length);
        // A row is small: read, add on the host with the CPU backend's arithmetic, write back.
        var r = new float[t.Cols];
        fixed (float* p = r)
        {
            Runtime.Read(d.Buffer, (long)row * t.Cols * sizeof(float), p, (long)t.Cols * sizeof(float));
            TensorPrimitives.Add(r, delta[..t.Cols], r);
            Runtime.Write(d.Buffer, (long)row * t.Cols * sizeof(float), p, (long)t.Cols * sizeof(float));
        }
    }

    public void Copy(Tensor source, Tensor destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException($"copy of a [{source.Rows}, {source.Cols}] tensor into a [{destination.Rows}, {destination.Cols}] one");
        Runtime.Copy(Dev(source).Buffer, Dev(destination).Buffer, source.Length * sizeof(float));
    }

    // ---- forward ops ---------------------------------------------------------------------------

    public void Embed(ReadOnlySpan<int> ids, WeightMatrix matrix, float[]? positionTable, ReadOnlySpan<int> positions, Tensor x)
    {
        int d = x.Cols, rows = ids.Length;
        long vocab = matrix.Length / d;
        if (rows > x.Rows) throw new ArgumentException($"{rows} ids for a tensor of {x.Rows} rows");
        for (int r = 0; r < rows; r++)
        {
            if ((uint)ids[r] >= (uint)vocab) throw new KeditException($"token id {ids[r]} is outside the vocabulary (size {vocab})");
            if (positionTable != null && (uint)positions[r] >= (uint)(positionTable.Length / d))
                throw new KeditException($"position {positions[r]} exceeds the model's {positionTable.Length / d} positions");
        }
        if (rows == 0) return;
        using var idBuf = UploadInts(ids);
        using var posBuf = positionTable != null ? UploadInts(positions[..rows]) : null;
        var (gx, gy, lx, ly) = Grid2D(d, rows);
        var (table, suffix) = StoredMatrix(matrix);
        Runtime.Launch("embed" + suffix, gx, gy, lx, ly, rows, d, idBuf, table, posBuf ?? Dummy, positionTable != null ? Array(positionTable) : Dummy,
            positionTable != null, Dev(x).Buffer);
    }

    public void Linear(Tensor x, Linear w, Tensor y)
    {
        if (x.Cols != w.In || y.Cols != w.Out || y.Rows != x.Rows)
            throw new ArgumentException($"{w.Name}: cannot map [{x.Rows}, {x.Cols}] to [{y.Rows}, {y.Cols}] with a {w.In}→{w.Out} linear");
        var (weight, suffix) = LinearWeight(w);
        GemmCore(false, !w.InputMajor, x.Rows, w.Out, w.In, Dev(x).Buffer, w.In, weight, w.InputMajor ? w.Out : w.In,
            Dev(y).Buffer, w.Out, w.Bias != null ? Array(w.Bias) : null, 1f, 0f, suffix);
    }

    public void LayerNorm(Tensor x, float[] gamma, float[]? beta, float eps, Tensor y)
    {
        CheckSame(x, y);
        Runtime.Launch("layernorm", x.Rows, 1, Runtime.ReduceWorkGroup, 1, x.Cols, Dev(x).Buffer, Array(gamma), beta != null ? Array(beta) : Dummy, beta != null, eps, Dev(y).Buffer);
    }

    public void RmsNorm(Tensor x, float[] gamma, float eps, Tensor y)
    {
        CheckSame(x, y);
        Runtime.Launch("rmsnorm", x.Rows, 1, Runtime.ReduceWorkGroup, 1, x.Cols, Dev(x).Buffer, Array(gamma), eps, Dev(y).Buffer);
    }

    public void Activate(Tensor x, Activation act) =>
        Runtime.Launch("activate", Groups(x.Length, ElementwiseGroup), 1, ElementwiseGroup, 1, x.Length, ActivationCode(act), Dev(x).Buffer);

    /// <summary>The act argument of the activation kernels (ElementwiseKernels in Kedit.Kernels' Ilgpu folder).</summary>
    static int ActivationCode(Activation act) =>
        act switch { Activation.GeluNew => 0, Activation.GeluExact => 1, Activation.Silu => 2, _ => throw new ArgumentOutOfRangeException(nameof(act)) };

    public void GatedActivation(Tensor gateUp, Activation act, Tensor y)
    {
        int f = y.Cols;
        if (gateUp.Cols != 2 * f || gateUp.Rows != y.Rows) throw new ArgumentException($"GatedActivation: [{gateUp.Rows}, {gateUp.Cols}] gate|up rows for a [{y.Rows}, {f}] output");
        var (gx, gy, lx, ly) = Grid2D(f, y.Rows);
        Runtime.Launch("gated_act", gx, gy, lx, ly, y.Rows, f, ActivationCode(act), Dev(gateUp).Buffer, Dev(y).Buffer);
    }

    public void Add(Tensor acc, Tensor x)
    {
        if (x.Length != acc.Length) throw new ArgumentException($"Add: [{acc.Rows}, {acc.Cols}] += [{x.Rows}, {x.Cols}]");
        Runtime.Launch("add", Groups(acc.Length, ElementwiseGroup), 1, ElementwiseGroup, 1, acc.Length, Dev(acc).Buffer, Dev(x).Buffer);
    }

    public void Rope(Tensor qkv, int heads, int kvHeads, int headDim, int rotaryDim, RopeLayout layout, ReadOnlySpan<int> positions, RopeTables tables)
    {
        if (layout == RopeLayout.None || rotaryDim == 0) return;
        int rows = qkv.Rows, half = rotaryDim / 2;
        for (int r = 0; r < rows; r++)
            if ((uint)positions[r] >= (uint)tables.MaxPositions) throw new KeditException($"position {positions[r]} exceeds the model's {tables.MaxPositions} positions");
        if (rows == 0) return;
        using var posBuf = UploadInts(positions[..rows]);
        int nHeads = heads + kvHeads;
        var (gx, gy, lx, ly) = Grid2D(half, rows * nHeads);
        Runtime.Launch("rope", gx, gy, lx, ly, rows, qkv.Cols, nHeads, headDim, half, layout == RopeLayout.Interleaved ? 1 : 2,
            posBuf, Array(tables.Cos), Array(tables.Sin), Dev(qkv).Buffer);
    }

    public void Attention(Tensor qkv, int heads, int kvHeads, int headDim, float scale, int window, Tensor keyCache, Tensor valueCache, AttentionBatch b, Tensor output)
    {
        if (headDim > Runtime.ReduceWorkGroup) throw new KeditException($"{Name}: head dimension {headDim} exceeds the attention kernel's limit of {Runtime.ReduceWorkGroup}");
        int qd = heads * headDim, kvd = kvHeads * headDim, rows = b.Batch * b.NewTokens;
        if (rows == 0) return;
        var (gx, gy, lx, ly) = Grid2D(kvd, rows);
        Runtime.Launch("kv_store", gx, gy, lx, ly, rows, qkv.Cols, qd, kvd, b.NewTokens, b.PastLength, b.Capacity,
            Dev(qkv).Buffer, Dev(keyCache).Buffer, Dev(valueCache).Buffer);
        var valid = new int[b.Batch * b.Capacity];
        for (int i = 0; i < valid.Length; i++) valid[i] = b.KeyValid[i] ? 1 : 0;
        using var validBuf = UploadInts(valid);
        Runtime.Launch("attention", rows * heads, 1, Runtime.ReduceWorkGroup, 1, heads, kvHeads, headDim, qkv.Cols, b.NewTokens, b.PastLength, b.Capacity,
            Dev(qkv).Buffer, Dev(keyCache).Buffer, Dev(valueCache).Buffer, validBuf, scale, window, Dev(output).Buffer);
    }

    // ---- linear algebra for the editing code ---------------------------------------------------

    /// <summary>
    /// c = alpha·op(a)·op(b) + beta·c for device tensors; op(a) is [M, K], op(b) is [K, N], c is [M, N].
    /// beta = 0 never reads c.
    /// </summary>
    public void Gemm(bool transA, bool transB, Tensor a, Tensor b, Tensor c, float alpha = 1f, float beta = 0f)
    {
        int m = transA ? a.Cols : a.Rows, k = transA ? a.Rows : a.Cols;
        int kb = transB ? b.Cols : b.Rows, n = transB ? b.Rows : b.Cols;
        if (k != kb || c.Rows != m || c.Cols != n)
            throw new ArgumentException($"Gemm: op(a) [{m}, {k}] · op(b) [{kb}, {n}] does not fit c [{c.Rows}, {c.Cols}]");
        GemmCore(transA, transB, m, n, k, Dev(a).Buffer, a.Cols, Dev(b).Buffer, b.Cols, Dev(c).Buffer, c.Cols, null, alpha, beta);
    }

    /// <summary>sum += kᵀ·k for keys k [n, f] and a running second-moment sum [f, f] (exactly symmetric).</summary>
    public void AccumulateGram(Tensor keys, Tensor sum) => Gemm(true, false, keys, keys, sum, 1f, 1f);

    /// <summary>w += u·vᵀ for w [m, n], u [m, r], v [n, r] (a rank-r update).</summary>
    public void AddOuterProducts(Tensor w, Tensor u, Tensor v) => Gemm(false, true, u, v, w, 1f, 1f);

    /// <summary>y = a·x (or aᵀ·x when <paramref name="transpose"/>), with x and y stored as single-row tensors.</summary>
    public void MatVec(Tensor a, Tensor x, Tensor y, bool transpose = false)
    {
        int inLen = transpose ? a.Rows : a.Cols, outLen = transpose ? a.Cols : a.Rows;
        if (x.Length != inLen || y.Length != outLen) throw new ArgumentException($"MatVec: [{a.Rows}, {a.Cols}]{(transpose ? "ᵀ" : "")} with x of {x.Length} and y of {y.Length}");
        if (transpose) Runtime.Launch("matvec_t", Groups(a.Cols, ElementwiseGroup), 1, ElementwiseGroup, 1, a.Rows, a.Cols, Dev(a).Buffer, a.Cols, Dev(x).Buffer, Dev(y).Buffer);
        else Runtime.Launch("matvec", a.Rows, 1, Runtime.ReduceWorkGroup, 1, a.Rows, a.Cols, Dev(a).Buffer, a.Cols, Dev(x).Buffer, Dev(y).Buffer);
    }

    /// <summary>Waits until every queued kernel has finished (for timing; transfers already wait).</summary>
    public void Synchronize() => Runtime.Synchronize();

    // ---- internals -----------------------------------------------------------------------------

    internal void GemmCore(bool transA, bool transB, int m, int n, int k, DeviceBuffer a, int lda, DeviceBuffer b, int ldb,
        DeviceBuffer c, int ldc, DeviceBuffer? bias, float alpha, float beta, string bSuffix = "")
    {
        if (m == 0 || n == 0) return;
        var biasBuf = bias ?? Dummy;
        string name = (transA ? (transB ? "gemm_tt" : "gemm_tn") : (transB ? "gemm_nt" : "gemm_nn")) + bSuffix;
        Runtime.Launch(name, Groups(n, TileSize), Groups(m, TileSize), 16, 16, m, n, k, a, lda, b, ldb, c, ldc, biasBuf, bias != null, alpha, beta);
    }

    internal DeviceTensor Dev(Tensor t)
    {
        if (t is DeviceTensor d && d.Buffer.Runtime == Runtime) return d;
        throw new ArgumentException($"{Name}: tensor [{t.Rows}, {t.Cols}] of type {t.GetType().Name} does not belong to this device (allocate it with this backend)");
    }

    static void CheckRow(Tensor t, int row, int length)
    {
        if ((uint)row >= (uint)t.Rows) throw new ArgumentOutOfRangeException(nameof(row), $"row {row} of a tensor with {t.Rows} rows");
        if (length < t.Cols) throw new ArgumentException($"row buffer of {length} values for {t.Cols} columns");
    }

    static void CheckSame(Tensor x, Tensor y)
    {
        if (x.Rows != y.Rows || x.Cols != y.Cols) throw new ArgumentException($"shape mismatch: [{x.Rows}, {x.Cols}] vs [{y.Rows}, {y.Cols}]");
    }

    static int Groups(long n, int size) => (int)((n + size - 1) / size);

    /// <summary>A grid covering nx × ny items with 256-item work-groups shaped to the x extent.</summary>
    static (int gx, int gy, int lx, int ly) Grid2D(int nx, int ny)
    {
        int lx = 1;
        while (lx < nx && lx < 256) lx *= 2;
        int ly = 256 / lx;
        return (Groups(nx, lx), Groups(ny, ly), lx, ly);
    }

    DeviceBuffer Dummy
    {
        get { lock (_cacheGate) return _dummy ??= Runtime.Allocate(16); }
    }

    unsafe DeviceBuffer UploadInts(ReadOnlySpan<int> values)
    {
        var buf = Runtime.Allocate((long)values.Length * sizeof(int));
        fixed (int* p = values) Runtime.Write(buf, 0, p, (long)values.Length * sizeof(int));
        return buf;
    }

    /// <summary>The device copy of a host parameter array, uploaded on first use.</summary>
    unsafe DeviceBuffer Array(float[] host)
    {
        lock (_cacheGate)
        {
            if (_arrays.TryGetValue(host, out var buf)) return buf;
            buf = Runtime.Allocate((long)host.Length * sizeof(float));
            fixed (float* p = host) Runtime.WriteWeight(buf, p, (long)host.Length * sizeof(float));
            _arrays.Add(host, buf);
            return buf;
        }
    }

    /// <summary>
    /// The device weight of a Linear and the op suffix of its stored form: a 16-bit matrix as its 16-bit values
    /// (half the device memory; the GEMM widens them as it loads them), a float32 one rewritten in place when its
    /// Version moved since the upload. An edit promotes a 16-bit matrix to float32 on the host, so an edited
    /// weight is always the float32 form.
    /// </summary>
    internal (DeviceBuffer Buffer, string Suffix) LinearWeight(Linear w) => w.Matrix.Half is not null ? StoredMatrix(w.Matrix) : (Float32Weight(w), "");

    /// <summary>A matrix's device copy in its held form (uploaded once) and the op suffix of that form ("", "_bf16", "_f16").</summary>
    unsafe (DeviceBuffer Buffer, string Suffix) StoredMatrix(WeightMatrix m)
    {
        if (m.Half is not var (bits, format)) return (Array(m.F32), "");
        lock (_cacheGate)
        {
            if (!_halves.TryGetValue(bits, out var hb))
            {
                hb = Runtime.Allocate(bits.LongLength * sizeof(ushort));
                fixed (ushort* p = bits) Runtime.WriteWeight(hb, p, bits.LongLength * sizeof(ushort));
                _halves.Add(bits, hb);
            }
            return (hb, format == Kedit.Kernels.Cpu.HalfFormat.BFloat16 ? "_bf16" : "_f16");
        }
    }

    unsafe DeviceBuffer Float32Weight(Linear w)
    {
        lock (_cacheGate)
        {
            bool known = _arrays.TryGetValue(w.Weight, out var buf);
            var seen = _linearVersions.GetValue(w, l => new StrongBox<int>(l.Version));
            if (known && seen.Value != w.Version)
            {
                // An edit changed the host array in place: refresh the (possibly shared, e.g. tied embedding) device copy.
                fixed (float* p = w.Weight) Runtime.WriteWeight(buf!, p, (long)w.Weight.Length * sizeof(float));
                if (w.Bias != null && _arrays.TryGetValue(w.Bias, out var biasBuf))
                    fixed (float* p = w.Bias) Runtime.Write(biasBuf, 0, p, (long)w.Bias.Length * sizeof(float));
            }
            seen.Value = w.Version;
            return known ? buf! : Array(w.Weight);
        }
    }

    /// <summary>Releases the cached weights (device tensors stay valid; the cache refills on later use).</summary>
    public void Dispose()
    {
        lock (_cacheGate)
        {
            foreach (var kv in _arrays) kv.Value.Dispose();
            foreach (var kv in _halves) kv.Value.Dispose();
            _arrays = new ConditionalWeakTable<float[], DeviceBuffer>();
            _halves = new ConditionalWeakTable<ushort[], DeviceBuffer>();
            _linearVersions = new ConditionalWeakTable<Linear, StrongBox<int>>();
            _dummy?.Dispose();
            _dummy = null;
        }
    }
}
