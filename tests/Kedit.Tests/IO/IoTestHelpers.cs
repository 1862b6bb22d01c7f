using System.Buffers.Binary;
using System.Text;

namespace Kedit.Tests.IO;

/// <summary>A temporary directory removed (with its contents) on dispose.</summary>
sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(
        System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kedit-io-" + Guid.NewGuid().ToString("N"))).FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

static class IoTestHelpers
{
    /// <summary>A safetensors file assembled by hand: 8-byte length, header text, data bytes.</summary>
    public static byte[] RawFile(string header, int dataBytes, ulong? declaredHeaderLength = null)
    {
        byte[] h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++) bytes[8 + h.Length + i] = (byte)(i * 37 + 11);
        return bytes;
    }

    /// <summary>
    /// Round-to-nearest-even of <paramref name="x"/> to a binary format with
    /// <paramref name="mantissaBits"/> stored mantissa bits and minimum normal exponent
    /// <paramref name="minExponent"/> (BF16: 7, −126; F16: 10, −14), computed on values
    /// (scale to an integer multiple of the unit in the last place, Math.Round to even), not
    /// on bit patterns, so that it is independent of the code under test. Finite, in-range x only.
    /// </summary>
    public static double RoundToFormat(float x, int mantissaBits, int minExponent)
    {
        double v = x;
        if (v == 0) return v;
        int e = Math.Max(Math.ILogB(v), minExponent);
        double ulp = Math.ScaleB(1.0, e - mantissaBits);
        return Math.Round(v / ulp, MidpointRounding.ToEven) * ulp;
    }

    public static double RoundToBf16(float x) => RoundToFormat(x, 7, -126);

    public static double RoundToF16(float x) => RoundToFormat(x, 10, -14);
}
