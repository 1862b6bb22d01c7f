using System.IO.Compression;
using System.Text;

namespace Kedit.Tests.Users;

/// <summary>Writes .npy arrays and .npz archives as numpy's np.save / np.savez do (format 1.0, little-endian), for the tests' fixtures.</summary>
static class NpyFiles
{
    public static void WriteNpy(Stream s, string descr, long[] shape, byte[] data, bool fortran = false)
    {
        string shapeText = shape.Length == 0 ? "()" : shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";
        string header = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {shapeText}, }}";
        header = header.PadRight(header.Length + (64 - (10 + header.Length + 1) % 64) % 64) + "\n";   // numpy pads to 64 bytes
        s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        s.Write(BitConverter.GetBytes((ushort)header.Length));
        s.Write(Encoding.ASCII.GetBytes(header));
        s.Write(data);
    }

    public static void WriteNpz(string path, params (string Name, string Descr, long[] Shape, byte[] Data, bool Fortran)[] arrays)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        foreach (var (name, descr, shape, data, fortran) in arrays)
        {
            using var s = zip.CreateEntry(name + ".npy").Open();
            WriteNpy(s, descr, shape, data, fortran);
        }
    }
}
