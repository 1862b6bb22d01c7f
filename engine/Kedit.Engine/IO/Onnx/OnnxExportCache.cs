using System.Security.Cryptography;
using System.Text;
using Kedit.Editing;
using Kedit.Models;

namespace Kedit.IO.Onnx;

/// <summary>
/// The exported graph of a model directory, reused across runs of <c>generate --device ort</c> and <c>serve --device ort</c>:
/// one file per (model files, edited layers, dtype, engine build) under the cache folder's <c>onnx/</c>
/// (<see cref="KeyStatistics.CacheDirectory()"/>), written complete before it is renamed into place.
/// </summary>
public static class OnnxExportCache
{
    /// <summary>The cached graph for <paramref name="model"/> with <paramref name="options"/>, exported first when absent.</summary>
    /// <param name="reused">Whether an earlier run's file was found.</param>
    public static string GetOrExport(Transformer model, OnnxExportOptions options, out bool reused)
    {
        string dir = model.Directory ?? throw new KeditException("an ONNX Runtime run needs a model loaded from a directory");
        string path = PathFor(dir, options);
        reused = File.Exists(path);   // the exporter renames the graph into place last, after its external data
        if (!reused) OnnxExporter.Export(model, path, options);
        return path;
    }

    /// <summary>
    /// Where the graph lives: keyed by the model's weight and config files (names, sizes, modification times), its folder,
    /// the export options, and the engine build (so a fixed exporter never serves an older graph).
    /// </summary>
    public static string PathFor(string modelDir, OnnxExportOptions options)
    {
        var key = new StringBuilder(KeyStatistics.ModelSignature(modelDir))
            .Append("|dir=").Append(Path.GetFullPath(modelDir))
            .Append("|edited=").Append(string.Join(",", options.EditedLayers.Order()))
            .Append("|f16=").Append(options.Float16Weights)
            .Append("|build=").Append(typeof(OnnxExporter).Assembly.ManifestModule.ModuleVersionId);
        string name = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())))[..20].ToLowerInvariant();
        string folder = Path.Combine(KeyStatistics.CacheDirectory(), "onnx");
        try { Directory.CreateDirectory(folder); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KeditException($"{folder}: cannot create the ONNX cache folder ({e.Message}); set {KeyStatistics.CacheDirectoryVariable} to a writable folder");
        }
        return Path.Combine(folder, $"{Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd('/'))}-{name}.onnx");
    }
}
