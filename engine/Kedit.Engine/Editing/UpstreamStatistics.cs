using System.Text.RegularExpressions;
using Kedit.IO;

namespace Kedit.Editing;

/// <summary>
/// Imports the key statistics ROME and MEMIT cache as <c>data/stats/&lt;model&gt;/&lt;dataset&gt;_stats/&lt;module&gt;_&lt;dtype&gt;_mom2_&lt;n&gt;.npz</c>:
/// <c>np.savez</c> of their running-statistics state, where <c>mom2.mom2</c> is Σ k kᵀ over <c>mom2.count</c> tokens
/// (the sum, not the mean). Written as a kedit statistics file for one layer (sum.{l} in float64, mom2.{l} the mean,
/// count.{l}), which <c>edit --stats</c> reads.
/// </summary>
public static class UpstreamStatistics
{
    /// <summary>The layer a ROME/MEMIT statistics file name holds ("transformer.h.17.mlp.c_proj_float32_mom2_100000.npz" → 17), or null.</summary>
    public static int? LayerFromFileName(string path)
    {
        var m = Regex.Match(Path.GetFileName(path), @"(?:^|\.)(?:h|layers)\.(\d+)\.mlp\.");
        return m.Success && int.TryParse(m.Groups[1].Value, out int l) ? l : null;
    }

    /// <summary>Reads <paramref name="npzPath"/> and writes the statistics of <paramref name="layer"/> to <paramref name="outPath"/>.</summary>
    /// <param name="keyDim">The model's MLP width when known (checked before the matrix is read), else null.</param>
    /// <exception cref="KeditException">Missing arrays, a non-square or wrongly sized matrix, a bad count, non-finite values.</exception>
    public static Covariance Import(string npzPath, int layer, int? keyDim, string outPath)
    {
        using var npz = Npz.Open(npzPath);
        foreach (string need in new[] { "mom2.mom2", "mom2.count" })
            if (!npz.Names.Contains(need))
                throw new KeditException($"{npzPath}: has no array '{need}' (arrays: {string.Join(", ", npz.Names)}); expected ROME/MEMIT's layer_stats output (mom2.mom2, mom2.count)");
        var (cShape, cData) = npz.ReadDoubles("mom2.count", maxElements: 1);
        if (cData.Length != 1 || cData[0] < 1 || cData[0] != Math.Floor(cData[0]) || cData[0] > long.MaxValue / 2)
            throw new KeditException($"{npzPath}: array 'mom2.count' must be one positive whole token count, got {(cData.Length == 1 ? cData[0] : $"shape ({string.Join(",", cShape)})")}");
        long count = (long)cData[0];
        long max = keyDim is int d ? (long)d * d : 16384L * 16384;
        var (shape, sum) = npz.ReadDoubles("mom2.mom2", max);
        if (shape.Length != 2 || shape[0] != shape[1])
            throw new KeditException($"{npzPath}: array 'mom2.mom2' has shape ({string.Join(",", shape)}); it must be a square [d_ff, d_ff] matrix");
        if (keyDim is int k && shape[0] != k)
            throw new KeditException($"{npzPath}: array 'mom2.mom2' is {shape[0]}×{shape[1]}, but the model's MLP is {k} wide");
        int bad = Array.FindIndex(sum, v => !double.IsFinite(v));
        if (bad >= 0) throw new KeditException($"{npzPath}: array 'mom2.mom2' holds {sum[bad]} at [{bad / shape[0]},{bad % shape[0]}]; statistics must be finite");
        var cov = Covariance.FromSum(layer, (int)shape[0], sum, count, Path.GetFullPath(npzPath));
        cov.Save(outPath, new Dictionary<string, string> { ["producer"] = "kedit stats --import", ["imported_from"] = Path.GetFileName(npzPath) });
        return cov;
    }
}
