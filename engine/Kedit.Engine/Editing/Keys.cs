using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// Reads activations at lookup positions (spec §6): MEMIT keys averaged per context group then
/// across groups, ROME's flat mean key, and the values / residuals at the bare sentence.
/// Each pass stops after the layer it reads.
/// </summary>
public static class Keys
{
    const int RowsPerPass = 32;

    /// <summary>The activation at (layer, point) at each row's lookup index, in float64.</summary>
    public static double[][] AtLookup(Transformer model, IReadOnlyList<LookupRow> rows, int layer, HookPoint point)
    {
        var result = new double[rows.Count][];
        for (int start = 0; start < rows.Count; start += RowsPerPass)
        {
            var chunk = rows.Skip(start).Take(RowsPerPass).ToList();
            var batch = TokenBatch.RightPadded(chunk.Select(r => (IReadOnlyList<int>)r.Ids).ToList());
            var hooks = new ForwardHooks { StopAfterLayer = layer }.Capture(layer, point);
            model.Forward(batch, new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
            var all = hooks.Captured(layer, point);
            int w = all.Length / (batch.Size * batch.Length);
            for (int i = 0; i < chunk.Count; i++)
            {
                int o = (i * batch.Length + chunk[i].Index) * w;
                var v = new double[w];
                for (int k = 0; k < w; k++) v[k] = all[o + k];
                result[start + i] = v;
            }
        }
        return result;
    }

    /// <summary>MEMIT keys K (f×n): per request, mean over groups of the mean key within each group.</summary>
    public static MatrixD Memit(Transformer model, IReadOnlyList<PreparedRequest> requests, int layer)
    {
        int f = model.Config.Intermediate;
        var rows = requests.SelectMany(r => r.Contexts).ToList();
        var keys = AtLookup(model, rows, layer, HookPoint.MlpKey);
        var K = new MatrixD(f, requests.Count);
        int next = 0;
        for (int j = 0; j < requests.Count; j++)
        {
            var groups = requests[j].ContextGroups;
            foreach (var g in groups)
            {
                double w = 1.0 / (groups.Count * g.Count);
                for (int c = 0; c < g.Count; c++, next++)
                    for (int i = 0; i < f; i++) K[i, j] += w * keys[next][i];
            }
        }
        return K;
    }

    /// <summary>ROME's key: the flat mean over every context row (no grouping).</summary>
    public static double[] FlatMean(Transformer model, PreparedRequest request, int layer)
    {
        var keys = AtLookup(model, request.Contexts.ToList(), layer, HookPoint.MlpKey);
        var mean = new double[keys[0].Length];
        foreach (var k in keys)
            for (int i = 0; i < mean.Length; i++) mean[i] += k[i] / keys.Length;
        return mean;
    }

    /// <summary>Activations at the bare sentences' lookup as columns (width × n).</summary>
    public static MatrixD AtBare(Transformer model, IReadOnlyList<PreparedRequest> requests, int layer, HookPoint point)
    {
        var cols = AtLookup(model, requests.Select(r => r.Bare).ToList(), layer, point);
        var m = new MatrixD(cols[0].Length, cols.Length);
        for (int j = 0; j < cols.Length; j++)
            for (int i = 0; i < cols[j].Length; i++) m[i, j] = cols[j][i];
        return m;
    }
}
