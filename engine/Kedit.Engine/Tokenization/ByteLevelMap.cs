namespace Kedit.Tokenization;

/// <summary>
/// GPT-2's reversible byte ↔ printable-character map: printable Latin-1 bytes map to themselves, the
/// other 68 bytes to U+0100.. in byte order, so every byte sequence becomes a string of visible
/// characters (space = 'Ġ', newline = 'Ċ') that BPE can work on.
/// </summary>
internal static class ByteLevelMap
{
    /// <summary>Byte → character.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Character → byte, or -1 for characters outside the map (indexed by char, 0..0x143).</summary>
    public static readonly short[] CharToByte = BuildCharToByte();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    static short[] BuildCharToByte()
    {
        var inverse = new short[256 + 68];
        Array.Fill(inverse, (short)-1);
        for (int b = 0; b < 256; b++) inverse[ByteToChar[b]] = (short)b;
        return inverse;
    }

    /// <summary>Maps the UTF-8 bytes of <paramref name="text"/> to byte-level characters.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(text);
        byte[]? rented = null;
        Span<byte> bytes = n <= 1024 ? stackalloc byte[1024] : (rented = System.Buffers.ArrayPool<byte>.Shared.Rent(n));
        System.Text.Encoding.UTF8.GetBytes(text, bytes);
        Span<char> chars = n <= 1024 ? stackalloc char[1024] : new char[n];
        for (int i = 0; i < n; i++) chars[i] = ByteToChar[bytes[i]];
        if (rented != null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        return new string(chars[..n]);
    }

    /// <summary>
    /// Appends the bytes a byte-level token stands for. Like HF, a token holding any character outside
    /// the map contributes its own UTF-8 bytes instead (e.g. an added token such as "&lt;s&gt;" with odd characters).
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        foreach (char c in token)
        {
            if (c >= CharToByte.Length || CharToByte[c] < 0)
            {
                output.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (char c in token) output.Add((byte)CharToByte[c]);
    }
}
