using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Kedit.IO;

/// <summary>
/// Reads NumPy's <c>.npz</c> (a zip of <c>.npy</c> arrays, stored or deflated), as ROME/MEMIT write their key statistics
/// (<c>np.savez</c> of <c>mom2.mom2</c>, <c>mom2.count</c>, …). Little-endian numeric arrays of f4, f8, i4, i8, u4, u8;
/// C or Fortran order. Every header is checked against the entry's size before anything is allocated.
/// </summary>
public sealed class Npz : IDisposable
{
    readonly ZipArchive _zip;
    readonly string _path;

    Npz(ZipArchive zip, string path) { _zip = zip; _path = path; }

    /// <summary>Opens <paramref name="path"/>.</summary>
    /// <exception cref="KeditException">Missing, not a zip, or (the common mistake) a torch pickle.</exception>
    public static Npz Open(string path)
    {
        if (!File.Exists(path)) throw new KeditException($"{path}: file not found");
        var stream = File.OpenRead(path);
        try
        {
            var zip = new ZipArchive(stream, ZipArchiveMode.Read);
            // torch.save writes a zip too, with data.pkl inside: say what it is rather than "no array".
            if (zip.Entries.Any(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal)))
                throw new KeditException($"{path}: is a PyTorch pickle (torch.save), not a NumPy .npz; kedit does not unpickle. Convert it once with numpy: np.savez(out, **{{k: v.numpy() for k, v in torch.load(path).items()}})");
            return new Npz(zip, path);
        }
        catch (InvalidDataException)
        {
            stream.Dispose();
            throw new KeditException($"{path}: not a NumPy .npz (zip) file");
        }
        catch { stream.Dispose(); throw; }
    }

    /// <summary>The array names (entry names without ".npy").</summary>
    public IReadOnlyList<string> Names => _zip.Entries.Where(e => e.FullName.EndsWith(".npy", StringComparison.Ordinal)).Select(e => e.FullName[..^4]).ToList();

    public void Dispose() => _zip.Dispose();

    /// <summary>One array's shape and values widened to float64 (C order).</summary>
    /// <exception cref="KeditException">Missing array, unsupported dtype, or a header that disagrees with the data.</exception>
    public (long[] Shape, double[] Data) ReadDoubles(string name, long maxElements = 16384L * 16384)
    {
        var entry = _zip.GetEntry(name + ".npy") ?? throw new KeditException($"{_path}: has no array '{name}' (arrays: {string.Join(", ", Names)})");
        using var s = entry.Open();
        return ReadNpy(s, entry.Length, $"{_path}: array '{name}'", maxElements);
    }

    /// <summary>A bare <c>.npy</c> file (<c>np.save</c>), as <see cref="ReadDoubles"/> reads an archive's arrays.</summary>
    public static (long[] Shape, double[] Data) ReadNpyFile(string path, long maxElements = 16384L * 16384)
    {
        if (!File.Exists(path)) throw new KeditException($"{path}: file not found");
        using var s = File.OpenRead(path);
        return ReadNpy(s, s.Length, path, maxElements);
    }

    static (long[] Shape, double[] Data) ReadNpy(Stream s, long length, string where, long maxElements)
    {
        try { return ReadNpyCore(s, length, where, maxElements); }
        catch (EndOfStreamException) { throw new KeditException($"{where}: the .npy data ends before its header says it should (truncated)"); }
    }

    static (long[] Shape, double[] Data) ReadNpyCore(Stream s, long length, string where, long maxElements)
    {
        Span<byte> magic = stackalloc byte[8];
        s.ReadExactly(magic);
        if (magic[0] != 0x93 || Encoding.ASCII.GetString(magic[1..6]) != "NUMPY") throw new KeditException($"{where}: not a .npy array (bad magic)");
        int major = magic[6];
        int headerLen;
        if (major == 1) { Span<byte> b = stackalloc byte[2]; s.ReadExactly(b); headerLen = BinaryPrimitives.ReadUInt16LittleEndian(b); }
        else if (major is 2 or 3) { Span<byte> b = stackalloc byte[4]; s.ReadExactly(b); headerLen = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(b), int.MaxValue); }
        else throw new KeditException($"{where}: .npy format version {major} is not supported (1, 2, 3)");
        if (headerLen > 1 << 16) throw new KeditException($"{where}: .npy header of {headerLen} bytes is implausible");
        var hb = new byte[headerLen];
        s.ReadExactly(hb);
        string header = Encoding.Latin1.GetString(hb);
        string descr = Match(header, @"'descr'\s*:\s*'([^']*)'", where, "descr");
        bool fortran = Match(header, @"'fortran_order'\s*:\s*(True|False)", where, "fortran_order") == "True";
        string shapeText = Match(header, @"'shape'\s*:\s*\(([^)]*)\)", where, "shape");
        var shape = shapeText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => long.TryParse(t, out long v) && v >= 0 ? v : throw new KeditException($"{where}: shape ({shapeText}) is not a list of sizes")).ToArray();
        int item = descr switch
        {
            "<f4" or "<i4" or "<u4" => 4,
            "<f8" or "<i8" or "<u8" => 8,
            _ => throw new KeditException($"{where}: dtype '{descr}' is not supported (little-endian f4, f8, i4, i8, u4, u8)"),
        };
        long count = 1;
        foreach (long d in shape) count = checked(count * d);
        long dataBytes = length - 8 - (major == 1 ? 2 : 4) - headerLen;
        if (count * item != dataBytes)
            throw new KeditException($"{where}: header says shape ({shapeText}) of {descr} = {count * item} bytes, the entry holds {dataBytes}");
        if (count > Math.Min(maxElements, Array.MaxLength)) throw new KeditException($"{where}: shape ({shapeText}) holds {count:N0} elements, more than the {Math.Min(maxElements, Array.MaxLength):N0} expected");
        var raw = new byte[count * item];
        s.ReadExactly(raw);
        var data = new double[count];
        for (long i = 0; i < count; i++)
        {
            var b = raw.AsSpan((int)(i * item), item);
            data[i] = descr switch
            {
                "<f4" => BinaryPrimitives.ReadSingleLittleEndian(b),
                "<f8" => BinaryPrimitives.ReadDoubleLittleEndian(b),
                "<i4" => BinaryPrimitives.ReadInt32LittleEndian(b),
                "<u4" => BinaryPrimitives.ReadUInt32LittleEndian(b),
                "<i8" => BinaryPrimitives.ReadInt64LittleEndian(b),
                _ => BinaryPrimitives.ReadUInt64LittleEndian(b),
            };
        }
        if (fortran && shape.Length == 2)
        {
            long r = shape[0], c = shape[1];
            var t = new double[count];
            for (long i = 0; i < r; i++) for (long j = 0; j < c; j++) t[i * c + j] = data[j * r + i];
            data = t;
        }
        else if (fortran && shape.Length > 2) throw new KeditException($"{where}: Fortran-ordered arrays of {shape.Length} dimensions are not supported");
        return (shape, data);
    }

    static string Match(string header, string pattern, string where, string field)
    {
        var m = Regex.Match(header, pattern);
        return m.Success ? m.Groups[1].Value : throw new KeditException($"{where}: .npy header has no '{field}'");
    }
}
