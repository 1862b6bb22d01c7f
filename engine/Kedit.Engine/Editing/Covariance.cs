using Kedit.Backends;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Kernels.Cpu;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>How the products of the key statistics are formed (upstream's <c>mom2_dtype</c>).</summary>
public enum KeyProducts
{
    /// <summary>
    /// Float32 products and sums within one batch of documents (the packed SIMD GEMM at full width), folded
    /// into float64 sums across batches: upstream's default <c>mom2_dtype</c> float32, within relative 1e-6
    /// of <see cref="Float64"/> (tested on the fixtures and stories260k).
    /// </summary>
    Float32,
    /// <summary>Float64 products and sums (products of float32 keys are exact in float64): <c>mom2_dtype</c> float64.</summary>
    Float64,
}

/// <summary>
/// Uncentred second moment C = E[k kᵀ] of the MLP keys of chosen layers over a corpus (spec §9), summed in
/// float64 on the unedited model. Streams documents, checkpoints and resumes, and caches as safetensors.
/// <para>On the CPU many documents run in one forward: a window of documents is sorted by length and cut into
/// padded batches (at most <see cref="BatchDocuments"/> documents and <see cref="BatchTokens"/> padded tokens),
/// the forward stops after the top requested layer, and a hook gathers each layer's real (unpadded) key rows into
/// one tall block whose Gram matrix is added as a symmetric rank-k update (<see cref="Syrk"/>: one triangle,
/// mirrored once when the sums are read), with products as <see cref="Products"/> says.</para>
/// <para>On a model whose backend is a device with float64 (<see cref="DeviceLinearAlgebra.HasFloat64"/>) the keys
/// never leave the device: documents run one per forward and a hook hands each layer's key tensor to a
/// <see cref="DeviceCovariance"/> that adds its Gram matrix (exact float products, float64 sums) to a running sum
/// on the device. The device sums are folded into the host sums, one f×f float64 download per layer, only when the
/// statistics are read (<see cref="Sum"/>, <see cref="Mom2"/>, <see cref="Save"/>: checkpoints and the end of
/// <see cref="Accumulate"/>). Without float64 on the device the keys are downloaded and summed here.</para>
/// </summary>
public sealed class Covariance
{
    /// <summary>Most documents in one forward (the batch the PyTorch peer and upstream use).</summary>
    public const int BatchDocuments = 32;
    /// <summary>
    /// Most padded tokens in one forward: the keys of a batch form one SYRK of this depth at most, deep enough
    /// for GEMM speed, while the forward's activations stay small (GPT-2 small: 25 MB of keys a layer).
    /// </summary>
    public const int BatchTokens = 2048;
    /// <summary>Documents sorted by length together, so that a batch's documents have similar lengths (little padding).</summary>
    const int WindowDocuments = 4 * BatchDocuments;

    readonly Dictionary<int, MatrixD> _sums = new();
    readonly Dictionary<int, long> _counts = new();
    // After HeldFor(float32): the sums as float32, for editing only (see HeldFor); _sums is then empty.
    readonly Dictionary<int, float[]> _compact = new();
    // Partial sums on the device since the last fold into _sums, and the device they live on.
    readonly Dictionary<int, DeviceCovariance> _deviceSums = new();
    DeviceLinearAlgebra? _device;
    // Host sums hold only their upper triangle's updates until mirrored (see Settle).
    bool _upperOnly;
    // The tall block of one batch's real key rows (reused), and its float64 copy in Float64 mode.
    float[] _keys = Array.Empty<float>();
    double[] _keys64 = Array.Empty<double>();

    public Covariance(IEnumerable<int> layers, int keyDim, KeyProducts products = KeyProducts.Float32) : this(layers, keyDim, products, float64Sums: true) { }

    Covariance(IEnumerable<int> layers, int keyDim, KeyProducts products, bool float64Sums)
    {
        foreach (int l in layers) { if (float64Sums) _sums[l] = new MatrixD(keyDim, keyDim); _counts[l] = 0; }
        KeyDim = keyDim;
        Products = products;
    }

    /// <summary>Whether editing holds the statistics as float32: unless <c>mom2_dtype</c> says float64 (upstream's default is float32).</summary>
    public static bool HeldAsFloat32(string? mom2Dtype) => mom2Dtype != "float64";

    /// <summary>The products <c>mom2_dtype</c> asks for: float64 when it says so, else float32 (upstream's default).</summary>
    public static KeyProducts ProductsFor(string? mom2Dtype) => mom2Dtype == "float64" ? KeyProducts.Float64 : KeyProducts.Float32;

    public int KeyDim { get; }
    /// <summary>How host-side products are formed (device sums are always float64).</summary>
    public KeyProducts Products { get; }
    public IReadOnlyCollection<int> Layers => _counts.Keys;
    /// <summary>Documents folded in so far (a resumed run skips this many).</summary>
    public int Documents { get; private set; }
    /// <summary>The file the statistics were loaded from (for errors about them), or null when computed here.</summary>
    public string? Source { get; private set; }
    public long Count(int layer) => _counts[layer];

    /// <summary>Σ k kᵀ of a layer (the statistics' own matrix: read it, do not modify it).</summary>
    public MatrixD Sum(int layer) { EnsureFloat64("read as float64 sums"); Settle(); return _sums[layer]; }

    /// <summary>True once <see cref="HeldFor"/> has turned the sums into float32 for editing.</summary>
    public bool IsFloat32 => _compact.Count > 0;

    /// <summary>
    /// Holds the statistics as the hparams' <c>mom2_dtype</c> asks while editing: float64 when it says so, else float32
    /// (upstream's default), which halves their memory — f² × 4 bytes a layer, 226 MB over GPT-2 small's six MEMIT layers.
    /// Editing reads them only through <see cref="Mom2"/>, which widens the one layer asked for to float64. Float32 sums
    /// are final: they cannot be accumulated into or saved.
    /// </summary>
    public Covariance HeldFor(string? mom2Dtype)
    {
        if (!HeldAsFloat32(mom2Dtype) || IsFloat32) return this;
        Settle();
        foreach (int l in _sums.Keys.ToList())
        {
            var s = _sums[l].Data;
            var f = GC.AllocateUninitializedArray<float>(s.Length);
            for (int i = 0; i < s.Length; i++) f[i] = (float)s[i];
            _compact[l] = f;
            _sums.Remove(l);   // the float64 layer is garbage from here on: one layer of both at a time
        }
        return this;
    }

    void EnsureFloat64(string what)
    {
        if (IsFloat32) throw new InvalidOperationException($"statistics held as float32 for editing cannot be {what}");
    }

    /// <summary>True while some documents' sums are held on a device, not yet folded into the host sums.</summary>
    public bool HasDeviceSums => _deviceSums.Count > 0;

    /// <summary>C = Σ k kᵀ / N, times <paramref name="times"/> (λC for MEMIT and D4S without a second f×f copy).</summary>
    public MatrixD Mom2(int layer, double times = 1.0)
    {
        if (!_counts.ContainsKey(layer)) throw new KeditException($"the statistics hold no layer {layer} (they have {string.Join(", ", _counts.Keys)})");
        if (_counts[layer] == 0) throw new KeditException($"the statistics of layer {layer} are empty (no tokens)");
        if (_compact.TryGetValue(layer, out var c))
        {
            var w = new MatrixD(KeyDim, KeyDim);
            double k = times / _counts[layer];
            var d = w.Data;
            for (int i = 0; i < d.Length; i++) d[i] = c[i] * k;
            return w;
        }
        var s = _sums[layer];
        Settle();
        var m = s.Clone();
        m.Scale(1.0 / _counts[layer]);
        if (times != 1.0) m.Scale(times);
        return m;
    }

    /// <summary>Adds one document's keys at every layer (on the model's device when it has float64; see the class remarks).</summary>
    public void Add(Transformer model, IReadOnlyList<int> ids)
    {
        if (ids.Count == 0) return;
        AddBatch(model, new[] { ids });
        Documents++;
    }

    /// <summary>One forward over the documents (one only on a device that sums the keys itself), stopping at the top layer.</summary>
    void AddBatch(Transformer model, IReadOnlyList<IReadOnlyList<int>> docs)
    {
        EnsureFloat64("added to");
        var batch = TokenBatch.RightPadded(docs);
        var hooks = new ForwardHooks { StopAfterLayer = _sums.Keys.Max() };
        var device = DeviceFor(model.Backend);
        if (device != null && docs.Count != 1) throw new InvalidOperationException("device sums take one document per forward (their Gram has no padding mask)");
        hooks.OnActivation(a =>
        {
            if (a.Point != HookPoint.MlpKey || !_sums.ContainsKey(a.Layer)) return;
            if (device != null) DeviceSum(device, a.Layer).Add(a.Tensor);
            else AddKeys(a, batch);
        });
        model.Forward(batch, new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
        long real = docs.Sum(d => (long)d.Count);
        foreach (int l in _sums.Keys) _counts[l] += real;
    }

    /// <summary>Gathers the batch's real key rows of one layer into a tall block and adds its Gram (upper triangle).</summary>
    unsafe void AddKeys(HookAccess a, TokenBatch batch)
    {
        int f = KeyDim;
        if (a.Width != f) throw new KeditException($"layer {a.Layer} keys are {a.Width} wide; the statistics are {f} wide");
        float[] src = a.Tensor is CpuTensor t ? t.Data : a.ReadAll();
        int rows = batch.Size * batch.Length, n = 0;
        float[] block = src;
        if (batch.Mask.AsSpan().Contains(false))
        {
            if (_keys.LongLength < (long)rows * f) _keys = GC.AllocateUninitializedArray<float>(rows * f);
            for (int r = 0; r < rows; r++)
                if (batch.Mask[r]) src.AsSpan(r * f, f).CopyTo(_keys.AsSpan(n++ * f, f));
            block = _keys;
        }
        else n = rows;
        fixed (double* sum = _sums[a.Layer].Data)
        {
            if (Products == KeyProducts.Float32)
                fixed (float* k = block) Syrk.UpperF32(f, n, k, f, sum, f);
            else
            {
                if (_keys64.LongLength < (long)n * f) _keys64 = GC.AllocateUninitializedArray<double>(n * f);
                for (long i = 0; i < (long)n * f; i++) _keys64[i] = block[i];
                fixed (double* k = _keys64) Syrk.UpperF64(f, n, k, f, sum, f);
            }
        }
        _upperOnly = true;
    }

    /// <summary>Makes the host sums whole: mirrors the triangle the updates wrote, then folds in any device sums.</summary>
    void Settle()
    {
        if (_upperOnly)
        {
            foreach (var s in _sums.Values) Syrk.MirrorUpper(KeyDim, s.Data);
            _upperOnly = false;
        }
        FoldDeviceSums();
    }

    /// <summary>
    /// Folds the sums held on a device into the host sums and releases the device buffers (done by every read of
    /// the sums and at the end of <see cref="Accumulate"/>; call it after direct <see cref="Add"/> calls to free the
    /// device memory early).
    /// </summary>
    public void FoldDeviceSums()
    {
        foreach (var (l, d) in _deviceSums)
        {
            using (d)
            {
                var part = d.Sum();
                var sum = _sums[l].Data;
                for (int i = 0; i < sum.Length; i++) sum[i] += part.Data[i];
            }
        }
        _deviceSums.Clear();
    }

    // The device linear algebra keys are summed with, or null to sum on the host (CPU model, or a device without float64).
    DeviceLinearAlgebra? DeviceFor(IBackend backend)
    {
        if (backend is not DeviceBackend db) return null;
        if (_device?.Backend != db)
        {
            FoldDeviceSums();   // sums on another device (a different model) first
            _device = new DeviceLinearAlgebra(db);
        }
        return _device.HasFloat64 ? _device : null;
    }

    DeviceCovariance DeviceSum(DeviceLinearAlgebra device, int layer) =>
        _deviceSums.TryGetValue(layer, out var d) ? d : _deviceSums[layer] = device.CreateCovariance(KeyDim);

    /// <summary>
    /// Accumulates over documents (skipping the first <see cref="Documents"/>, for resumption), stopping after
    /// maxTokens tokens per layer when given; reports (documents, tokens) progress after every forward and calls
    /// checkpoint every checkpointEvery documents (windows of documents end there, so a checkpoint holds exactly
    /// that many).
    /// </summary>
    public void Accumulate(Transformer model, IEnumerable<int[]> documents, long? maxTokens = null,
        IProgress<(int Documents, long Tokens)>? progress = null, int checkpointEvery = 0, Action<Covariance>? checkpoint = null, CancellationToken ct = default)
    {
        int skip = Documents, seen = 0;
        int maxPositions = model.Config.MaxPositions;
        // A device that sums keys itself takes one document per forward.
        bool batched = DeviceFor(model.Backend) == null;
        var window = new List<int[]>();
        long planned = _counts.Values.First();
        try
        {
            foreach (var doc in documents)
            {
                if (seen++ < skip) continue;
                if (maxTokens is long mt && planned >= mt) break;
                ct.ThrowIfCancellationRequested();
                // Long documents are cut to the model's context, as the reference truncates them.
                var ids = doc.Length > maxPositions ? doc[..maxPositions] : doc;
                if (maxTokens is long limit && planned + ids.Length > limit) ids = ids[..(int)(limit - planned)];
                window.Add(ids);
                planned += ids.Length;
                int done = Documents + window.Count;
                if (!batched || window.Count == WindowDocuments || (checkpointEvery > 0 && done % checkpointEvery == 0))
                    RunWindow(model, window, progress, checkpointEvery, checkpoint, ct);
            }
            RunWindow(model, window, progress, checkpointEvery, checkpoint, ct);
        }
        finally { FoldDeviceSums(); }   // one download per layer, and the device memory back
    }

    /// <summary>Runs a window of documents, longest first, in padded batches; then counts them and checkpoints.</summary>
    void RunWindow(Transformer model, List<int[]> window, IProgress<(int Documents, long Tokens)>? progress,
        int checkpointEvery, Action<Covariance>? checkpoint, CancellationToken ct)
    {
        if (window.Count == 0) return;
        var order = window.Where(d => d.Length > 0).OrderByDescending(d => d.Length).ToList();
        int done = 0;
        for (int i = 0; i < order.Count;)
        {
            ct.ThrowIfCancellationRequested();
            int longest = order[i].Length, n = 1;
            while (i + n < order.Count && n < BatchDocuments && (n + 1) * longest <= BatchTokens) n++;
            AddBatch(model, order.GetRange(i, n));
            i += n; done += n;
            progress?.Report((Documents + done, _counts.Values.First()));
        }
        Documents += window.Count;
        window.Clear();
        if (checkpointEvery > 0 && Documents % checkpointEvery == 0) checkpoint?.Invoke(this);
    }

    /// <summary>Adds another run's float64 sums Σ k kᵀ and token count to a layer (merging statistics shards).</summary>
    internal void AddSums(int layer, ReadOnlySpan<double> sum, long count)
    {
        EnsureFloat64("added to");
        Settle();
        var s = _sums[layer].Data;
        for (int i = 0; i < s.Length; i++) s[i] += sum[i];
        _counts[layer] += count;
    }

    /// <summary>Counts documents summed elsewhere (merging statistics shards).</summary>
    internal void AddDocuments(int documents) => Documents += documents;

    /// <summary>
    /// Writes mom2.{l} [f,f] F32 (the mean), count.{l} [1] I64, and the float64 sums sum.{l} so a
    /// later run can resume or use the exact statistics. Atomic (temp file + rename).
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string> metadata)
    {
        EnsureFloat64("saved");
        Settle();
        var entries = new List<SafetensorsWriter.Entry>();
        // Each layer's mean goes straight from its sums into float32 as it is written, all layers through one f×f
        // buffer: no float64 copy, and one float32 mean resident rather than every layer's.
        var mean = GC.AllocateUninitializedArray<float>(checked(KeyDim * KeyDim));
        foreach (int l in _sums.Keys.Order())
        {
            long[] shape = { KeyDim, KeyDim };
            if (_counts[l] > 0)
            {
                var sum = _sums[l].Data;
                double inv = 1.0 / _counts[l];
                entries.Add(SafetensorsWriter.Entry.F32Computed($"mom2.{l}", shape, mean, m => { for (int i = 0; i < m.Length; i++) m[i] = (float)(sum[i] * inv); }));
            }
            entries.Add(SafetensorsWriter.Entry.I64($"count.{l}", new long[] { 1 }, new[] { _counts[l] }));
            entries.Add(SafetensorsWriter.Entry.F64($"sum.{l}", shape, _sums[l].Data));
        }
        var meta = new Dictionary<string, string>(metadata) { ["documents"] = Documents.ToString() };
        SafetensorsWriter.Write(path, entries, meta);
    }

    /// <summary>Loads statistics written by <see cref="Save"/> (or mom2/count only, as other tools write them).</summary>
    /// <summary>
    /// Reads the statistics of <paramref name="layers"/>. Every declared shape is checked against
    /// <paramref name="keyDim"/> (the model's MLP width) before anything is allocated, and the
    /// values must be finite, with a count ≥ 1.
    /// </summary>
    /// <param name="float32">Hold the sums as float32 for editing (see <see cref="HeldFor"/>), read one float64 layer at a time.</param>
    public static Covariance Load(string path, IEnumerable<int> layers, int keyDim, KeyProducts products = KeyProducts.Float32, bool float32 = false)
    {
        using var file = SafetensorsFile.Open(path);
        var wanted = layers.ToList();
        if (wanted.Count == 0) throw new KeditException($"{path}: no layers requested");
        foreach (int l in wanted)
        {
            if (!file.TryGetInfo($"count.{l}", out var countInfo) || !(file.TryGetInfo($"sum.{l}", out var info) || file.TryGetInfo($"mom2.{l}", out info)))
                throw new KeditException($"{path}: no statistics for layer {l} (expected tensors count.{l} and mom2.{l} or sum.{l})");
            if (info.Shape.Length != 2 || info.Shape[0] != keyDim || info.Shape[1] != keyDim)
                throw new KeditException($"{path}: tensor {info.Name} has shape [{string.Join(",", info.Shape)}]; the model's MLP is {keyDim} wide, so it must be [{keyDim},{keyDim}]");
            if (countInfo.ElementCount != 1)
                throw new KeditException($"{path}: tensor count.{l} has shape [{string.Join(",", countInfo.Shape)}]; it must hold one token count");
        }
        var cov = new Covariance(wanted, keyDim, products, float64Sums: !float32) { Source = path };
        double[]? layerBuffer = float32 ? GC.AllocateUninitializedArray<double>(keyDim * keyDim) : null;
        foreach (int l in wanted)
        {
            file.TryGetInfo($"sum.{l}", out var info);
            info ??= file.GetInfo($"mom2.{l}");
            long n = file.ReadInt64($"count.{l}")[0];
            if (n < 1) throw new KeditException($"{path}: tensor count.{l} is {n}; statistics need at least one token");
            var data = layerBuffer ?? cov._sums[l].Data;   // read in place (float64) or through one layer's buffer (float32)
            file.ReadFloat64(info.Name, data);
            int bad = Array.FindIndex(data, v => !double.IsFinite(v));
            if (bad >= 0) throw new KeditException($"{path}: tensor {info.Name} holds {data[bad]} at [{bad / keyDim},{bad % keyDim}]; statistics must be finite");
            if (info.Name.StartsWith("mom2.")) for (int i = 0; i < data.Length; i++) data[i] *= n;
            cov._counts[l] = n;
            if (layerBuffer != null)
            {
                var f = GC.AllocateUninitializedArray<float>(data.Length);
                for (int i = 0; i < data.Length; i++) f[i] = (float)data[i];
                cov._compact[l] = f;
            }
        }
        if (file.Metadata.TryGetValue("documents", out var docs) && int.TryParse(docs, out int nd)) cov.Documents = nd;
        return cov;
    }

    /// <summary>Statistics of one layer from a sum of key outer products and its token count (e.g. imported from upstream).</summary>
    internal static Covariance FromSum(int layer, int keyDim, double[] sum, long count, string source)
    {
        var cov = new Covariance([layer], keyDim, KeyProducts.Float64) { Source = source };
        sum.CopyTo(cov._sums[layer].Data, 0);
        cov._counts[layer] = count;
        return cov;
    }
}
