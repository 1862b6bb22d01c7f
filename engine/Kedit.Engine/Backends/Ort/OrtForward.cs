using Kedit.IO.Onnx;
using Kedit.Models;

namespace Kedit.Backends.Ort;

/// <summary>
/// The hook-free, cache-less forward passes of the evaluation metrics (<c>eval --device ort</c>) through ONNX Runtime:
/// each sequence of the batch runs alone, its real tokens only, with a fresh KV cache, and the asked rows' logits come
/// back as <see cref="Transformer.Forward(TokenBatch, ForwardOptions?)"/> gives them (a padding row's logits are zeros:
/// no metric reads them). Passes with hooks (keys, targets, statistics) stay on the engine.
/// </summary>
public sealed class OrtForward(OrtDecoder decoder, ModelConfig config) : IExternalForward
{
    /// <summary>
    /// Routes <paramref name="model"/>'s hook-free passes through ONNX Runtime over its cached exported graph
    /// (<see cref="OnnxExportCache"/>), the down projections of <paramref name="boundLayers"/> bound from the live
    /// weights so that changes to them are seen; disposing detaches it.
    /// </summary>
    public static IDisposable Attach(Transformer model, IReadOnlyList<int> boundLayers, bool cuda)
    {
        string onnx = OnnxExportCache.GetOrExport(model, new OnnxExportOptions { EditedLayers = boundLayers.ToList() }, out _);
        var weights = OrtWeightSet.DownProjections(model, boundLayers);
        OrtDecoder decoder;
        try { decoder = new OrtDecoder(onnx, model.Config, weights, cuda); }
        catch { weights.Dispose(); throw; }
        model.ExternalForward = new OrtForward(decoder, model.Config);
        return new Attachment(() =>
        {
            model.ExternalForward = null;
            decoder.Dispose();
            weights.Dispose();
        });
    }

    sealed class Attachment(Action detach) : IDisposable
    {
        public void Dispose() => detach();
    }

    public ForwardResult Forward(TokenBatch batch, ForwardOptions options)
    {
        int B = batch.Size, T = batch.Length, V = config.VocabSize;
        if (options.Logits == LogitsMode.None) return new ForwardResult([], 0, V);
        var rows = options.AskedRows(batch);

        // Only the sequences some asked row belongs to are run.
        var logits = new float[B][];
        var realIndex = new int[B * T];   // position t of sequence b → its index among b's real tokens, or −1 for padding
        foreach (int b in rows.Select(r => r / T).Distinct())
        {
            var ids = new List<int>();
            for (int t = 0; t < T; t++)
            {
                bool real = batch.Mask[b * T + t];
                realIndex[b * T + t] = real ? ids.Count : -1;
                if (real) ids.Add(batch.Ids[b * T + t]);
            }
            if (ids.Count == 0) continue;
            using var cache = decoder.CreateCache();
            logits[b] = decoder.Forward(ids, cache);
        }
        var result = new float[(long)rows.Count * V];
        for (int i = 0; i < rows.Count; i++)
        {
            int b = rows[i] / T, k = realIndex[rows[i]];
            if (logits[b] is { } l && k >= 0) l.AsSpan(k * V, V).CopyTo(result.AsSpan(i * V, V));
        }
        if (options.OnLogits is not { } sink) return new ForwardResult(result, rows.Count, V);
        for (int first = 0; first < rows.Count; first += Transformer.LogitChunkRows)
        {
            int count = Math.Min(Transformer.LogitChunkRows, rows.Count - first);
            sink(first, count, result.AsSpan(first * V, count * V));
        }
        return new ForwardResult([], 0, V);
    }
}
