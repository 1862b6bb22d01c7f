using Kedit.Backends;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// Uncentred second moment C = E[k kᵀ] of the MLP keys of chosen layers over a corpus (spec §9):
/// every document runs alone (no padding enters the statistics), sums accumulate in float64 on
/// the unedited model. Streams documents, checkpoints and resumes, and caches as safetensors.
/// <para>On a model whose backend is a device with float64 (<see cref="DeviceLinearAlgebra.HasFloat64"/>) the keys
/// never leave the device: a hook hands each layer's key tensor to a <see cref="DeviceCovariance"/> that adds its
/// Gram matrix (exact float products, float64 sums, as here) to a running sum on the device. The device sums are
/// folded into the host sums, one f×f float64 download per layer, only when the statistics are read
/// (<see cref="Sum"/>, <see cref="Mom2"/>, <see cref="Save"/>: checkpoints and the end of
/// <see cref="Accumulate"/>). Without float64 on the device the keys are downloaded per document and summed here.</para>
/// </summary>
public sealed class Covariance
{
    readonly Dictionary<int, MatrixD> _sums = new();
    readonly Dictionary<int, long> _counts = new();
    // Partial sums on the device since the last fold into _sums, and the device they live on.
    readonly Dictionary<int, DeviceCovariance> _deviceSums = new();
    DeviceLinearAlgebra? _device;

    public Covariance(IEnumerable<int> layers, int keyDim)
    {
        foreach (int l in layers) { _sums[l] = new MatrixD(keyDim, keyDim); _counts[l] = 0; }
        KeyDim = keyDim;
    }

    public int KeyDim { get; }
    public IReadOnlyCollection<int> Layers => _sums.Keys;
    /// <summary>Documents folded in so far (a resumed run skips this many).</summary>
    public int Documents { get; private set; }
    /// <summary>The file the statistics were loaded from (for errors about them), or null when computed here.</summary>
    public string? Source { get; private set; }
    public long Count(int layer) => _counts[layer];

    /// <summary>Σ k kᵀ of a layer (the statistics' own matrix: read it, do not modify it).</summary>
    public MatrixD Sum(int layer) { FoldDeviceSums(); return _sums[layer]; }

    /// <summary>True while some documents' sums are held on a device, not yet folded into the host sums.</summary>
    public bool HasDeviceSums => _deviceSums.Count > 0;

    /// <summary>C = Σ k kᵀ / N, times <paramref name="times"/> (λC for MEMIT and D4S without a second f×f copy).</summary>
    public MatrixD Mom2(int layer, double times = 1.0)
    {
        if (!_sums.TryGetValue(layer, out var s)) throw new KeditException($"the statistics hold no layer {layer} (they have {string.Join(", ", _sums.Keys)})");
        if (_counts[layer] == 0) throw new KeditException($"the statistics of layer {layer} are empty (no tokens)");
        FoldDeviceSums();
        var m = s.Clone();
        m.Scale(1.0 / _counts[layer]);
        if (times != 1.0) m.Scale(times);
        return m;
    }

    /// <summary>Adds one document's keys at every layer (on the model's device when it has float64; see the class remarks).</summary>
    public void Add(Transformer model, IReadOnlyList<int> ids)
    {
        if (ids.Count == 0) return;
        int top = _sums.Keys.Max();
        var hooks = new ForwardHooks { StopAfterLayer = top };
        var device = DeviceFor(model.Backend);
        if (device != null)
            hooks.OnActivation(a =>
            {
                if (a.Point == HookPoint.MlpKey && _sums.ContainsKey(a.Layer)) DeviceSum(device, a.Layer).Add(a.Tensor);
            });
        else
            foreach (int l in _sums.Keys) hooks.Capture(l, HookPoint.MlpKey);
        model.Forward(TokenBatch.Single(ids), new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
        foreach (int l in _sums.Keys)
        {
            if (device == null)
            {
                var k = hooks.Captured(l, HookPoint.MlpKey);
                var km = new MatrixD(ids.Count, KeyDim);
                for (int i = 0; i < k.Length; i++) km.Data[i] = k[i];
                DenseOps.Gemm(true, false, 1.0, km, km, 1.0, _sums[l]);
            }
            _counts[l] += ids.Count;
        }
        Documents++;
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
    /// Accumulates over documents (skipping the first <see cref="Documents"/>, for resumption),
    /// stopping after maxTokens tokens per layer when given; reports (documents, tokens) progress
    /// and calls checkpoint every checkpointEvery documents.
    /// </summary>
    public void Accumulate(Transformer model, IEnumerable<int[]> documents, long? maxTokens = null,
        IProgress<(int Documents, long Tokens)>? progress = null, int checkpointEvery = 0, Action<Covariance>? checkpoint = null, CancellationToken ct = default)
    {
        int skip = Documents, seen = 0;
        int maxPositions = model.Config.MaxPositions;
        try
        {
            foreach (var doc in documents)
            {
                if (seen++ < skip) continue;
                if (maxTokens is long mt && _counts.Values.First() >= mt) break;
                ct.ThrowIfCancellationRequested();
                // Long documents are cut to the model's context, as the reference truncates them.
                var ids = doc.Length > maxPositions ? doc[..maxPositions] : doc;
                if (maxTokens is long limit && _counts.Values.First() + ids.Length > limit) ids = ids[..(int)(limit - _counts.Values.First())];
                Add(model, ids);
                progress?.Report((Documents, _counts.Values.First()));
                if (checkpointEvery > 0 && Documents % checkpointEvery == 0) checkpoint?.Invoke(this);
            }
        }
        finally { FoldDeviceSums(); }   // one download per layer, and the device memory back
    }

    /// <summary>
    /// Writes mom2.{l} [f,f] F32 (the mean), count.{l} [1] I64, and the float64 sums sum.{l} so a
    /// later run can resume or use the exact statistics. Atomic (temp file + rename).
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string> metadata)
    {
        FoldDeviceSums();
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (int l in _sums.Keys.Order())
        {
            long[] shape = { KeyDim, KeyDim };
            if (_counts[l] > 0) entries.Add(SafetensorsWriter.Entry.F32($"mom2.{l}", shape, Mom2(l).Data.Select(v => (float)v).ToArray()));
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
    public static Covariance Load(string path, IEnumerable<int> layers, int keyDim)
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
        var cov = new Covariance(wanted, keyDim) { Source = path };
        foreach (int l in wanted)
        {
            file.TryGetInfo($"sum.{l}", out var info);
            info ??= file.GetInfo($"mom2.{l}");
            long n = file.ReadInt64($"count.{l}")[0];
            if (n < 1) throw new KeditException($"{path}: tensor count.{l} is {n}; statistics need at least one token");
            var data = file.ReadFloat64(info.Name);
            int bad = Array.FindIndex(data, v => !double.IsFinite(v));
            if (bad >= 0) throw new KeditException($"{path}: tensor {info.Name} holds {data[bad]} at [{bad / keyDim},{bad % keyDim}]; statistics must be finite");
            if (info.Name.StartsWith("mom2.")) for (int i = 0; i < data.Length; i++) data[i] *= n;
            data.CopyTo(cov._sums[l].Data, 0);
            cov._counts[l] = n;
        }
        if (file.Metadata.TryGetValue("documents", out var docs) && int.TryParse(docs, out int nd)) cov.Documents = nd;
        return cov;
    }
}
