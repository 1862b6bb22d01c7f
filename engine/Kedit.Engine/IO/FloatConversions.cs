using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Kedit.IO;

/// <summary>
/// Element conversions between stored (little-endian, possibly unaligned) bytes and managed
/// arrays. Every widening here is exact; narrowing rounds to nearest, ties to even.
/// </summary>
internal static class FloatConversions
{
    /// <summary>BF16 bit patterns → float: a BF16 value is the upper half of a float's bits.</summary>
    public static void Bf16ToSingle(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        if (src.Length != 2 * n) throw new ArgumentException("length mismatch");
        ref byte s = ref MemoryMarshal.GetReference(src);
        ref float d = ref MemoryMarshal.GetReference(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 2 * i)).AsUInt16();
                var (lo, hi) = Vector256.Widen(v);
                Vector256.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector256.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + 8));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var v = Vector128.LoadUnsafe(ref Unsafe.Add(ref s, 2 * i)).AsUInt16();
                var (lo, hi) = Vector128.Widen(v);
                Vector128.ShiftLeft(lo, 16).AsSingle().StoreUnsafe(ref d, (nuint)i);
                Vector128.ShiftLeft(hi, 16).AsSingle().StoreUnsafe(ref d, (nuint)(i + 4));
            }
        }
        for (; i < n; i++)
        {
            uint bits = (uint)Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref s, 2 * i)) << 16;
            Unsafe.Add(ref d, i) = BitConverter.UInt32BitsToSingle(bits);
        }
    }

    /// <summary>F16 bytes → float (exact).</summary>
    public static void F16ToSingle(ReadOnlySpan<byte> src, Span<float> dst) =>
        TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);

    /// <summary>F64 bytes → float, rounding to nearest even (IEEE narrowing).</summary>
    public static void F64ToSingle(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        if (src.Length != 8 * n) throw new ArgumentException("length mismatch");
        ref byte s = ref MemoryMarshal.GetReference(src);
        ref float d = ref MemoryMarshal.GetReference(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var a = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 8 * i)).AsDouble();
                var b = Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 8 * i + 32)).AsDouble();
                Vector256.Narrow(a, b).StoreUnsafe(ref d, (nuint)i);
            }
        }
        for (; i < n; i++)
            Unsafe.Add(ref d, i) = (float)Unsafe.ReadUnaligned<double>(ref Unsafe.Add(ref s, 8 * i));
    }

    /// <summary>float → double (exact).</summary>
    public static void SingleToDouble(ReadOnlySpan<float> src, Span<double> dst)
    {
        int n = src.Length;
        if (dst.Length != n) throw new ArgumentException("length mismatch");
        ref float s = ref MemoryMarshal.GetReference(src);
        ref double d = ref MemoryMarshal.GetReference(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
                lo.StoreUnsafe(ref d, (nuint)i);
                hi.StoreUnsafe(ref d, (nuint)(i + 4));
            }
        }
        for (; i < n; i++) Unsafe.Add(ref d, i) = Unsafe.Add(ref s, i);
    }

    /// <summary>I32 bytes → long (exact).</summary>
    public static void I32ToInt64(ReadOnlySpan<byte> src, Span<long> dst)
    {
        int n = dst.Length;
        if (src.Length != 4 * n) throw new ArgumentException("length mismatch");
        ref byte s = ref MemoryMarshal.GetReference(src);
        ref long d = ref MemoryMarshal.GetReference(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= n; i += 8)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref Unsafe.Add(ref s, 4 * i)).AsInt32());
                lo.StoreUnsafe(ref d, (nuint)i);
                hi.StoreUnsafe(ref d, (nuint)(i + 4));
            }
        }
        for (; i < n; i++) Unsafe.Add(ref d, i) = Unsafe.ReadUnaligned<int>(ref Unsafe.Add(ref s, 4 * i));
    }

    /// <summary>float → F16 bytes, round to nearest even (IEEE narrowing).</summary>
    public static void SingleToF16(ReadOnlySpan<float> src, Span<byte> dst) =>
        TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst));

    /// <summary>
    /// float → BF16 bytes, round to nearest even on the dropped 16 bits; NaN stays a (quiet) NaN
    /// rather than rounding into infinity.
    /// </summary>
    public static void SingleToBf16(ReadOnlySpan<float> src, Span<byte> dst)
    {
        int n = src.Length;
        if (dst.Length != 2 * n) throw new ArgumentException("length mismatch");
        ref float s = ref MemoryMarshal.GetReference(src);
        ref byte d = ref MemoryMarshal.GetReference(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var lo = RoundToBf16(Vector256.LoadUnsafe(ref s, (nuint)i).AsUInt32());
                var hi = RoundToBf16(Vector256.LoadUnsafe(ref s, (nuint)(i + 8)).AsUInt32());
                Vector256.Narrow(lo, hi).AsByte().StoreUnsafe(ref Unsafe.Add(ref d, 2 * i));
            }
        }
        for (; i < n; i++)
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref d, 2 * i), RoundToBf16(BitConverter.SingleToUInt32Bits(Unsafe.Add(ref s, i))));
    }

    /// <summary>Scalar BF16 rounding of one float's bits.</summary>
    public static ushort RoundToBf16(uint bits)
    {
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u) return (ushort)((bits >> 16) | 0x0040);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    static Vector256<uint> RoundToBf16(Vector256<uint> bits)
    {
        var rounded = (bits + Vector256.Create(0x7FFFu) + ((bits >> 16) & Vector256<uint>.One)) >> 16;
        var quietNan = (bits >> 16) | Vector256.Create(0x0040u);
        var isNan = Vector256.GreaterThan(bits & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
        return Vector256.ConditionalSelect(isNan, quietNan, rounded);
    }
}
