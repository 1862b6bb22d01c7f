using Kedit.IO;
using Kedit.Kernels.Cpu;

namespace Kedit.Models;

/// <summary>
/// A weight matrix's values, resident either as float32 or, for an F16/BF16 checkpoint, in its stored 16-bit form
/// (one copy, half the bytes), which the CPU matrix products widen to float32 slab by slab (<see cref="WideningGemm"/>).
/// Reading <see cref="F32"/> promotes a 16-bit matrix to float32 for good: that happens where an edit lands (the edited
/// layers) and for training and export, never in a forward or backward pass (the device backends widen 16-bit too).
/// </summary>
public sealed class WeightMatrix
{
    float[]? _f32;
    ushort[]? _bits;
    readonly HalfFormat _format;
    readonly object _promote = new();
    // Described from its header only (kedit info): the size and form it would hold, no values.
    readonly long _describedLength = -1;
    readonly bool _describedHalf;

    public WeightMatrix(float[] values) => _f32 = values ?? throw new ArgumentNullException(nameof(values));

    public WeightMatrix(ushort[] bits, HalfFormat format)
    {
        _bits = bits ?? throw new ArgumentNullException(nameof(bits));
        _format = format;
    }

    WeightMatrix(long length, HalfFormat? format)
    {
        _describedLength = length;
        _describedHalf = format != null;
        _format = format ?? default;
    }

    /// <summary>A matrix described by its header alone (<see cref="ModelWeights.Load"/> with headersOnly): its values cannot be read.</summary>
    public static WeightMatrix Described(long length, HalfFormat? format) => new(length, format);

    /// <summary>True for a matrix described by its header alone.</summary>
    public bool IsDescribed => _describedLength >= 0;

    /// <summary>Number of values.</summary>
    public long Length => _describedLength >= 0 ? _describedLength : Volatile.Read(ref _f32)?.LongLength ?? _bits!.LongLength;

    /// <summary>The 16-bit format the matrix is held in, or null when it is float32.</summary>
    public HalfFormat? HeldFormat { get { lock (_promote) return _bits != null || _describedHalf ? _format : null; } }

    /// <summary>The stored 16-bit values and their format while the matrix is held that way; null once it is float32.</summary>
    public (ushort[] Bits, HalfFormat Format)? Half
    {
        get
        {
            lock (_promote) return _bits is { } b ? (b, _format) : null;
        }
    }

    /// <summary>Bytes this matrix holds resident.</summary>
    public long ResidentBytes => Length * (HeldFormat != null ? 2 : 4);

    /// <summary>The values as float32; a 16-bit matrix is widened once and held as float32 from then on.</summary>
    public float[] F32 => Volatile.Read(ref _f32) ?? Promote();

    float[] Promote()
    {
        lock (_promote)
        {
            if (_f32 != null) return _f32;
            if (_bits == null) throw new InvalidOperationException("this model's weights were described from their headers only; load it to read them");
            var f = new float[_bits!.LongLength];
            Widen(_bits, _format, 0, f);
            Volatile.Write(ref _f32, f);
            _bits = null;
            return f;
        }
    }

    /// <summary>Values [offset, offset + destination.Length) as float32, without promoting (an embedding row).</summary>
    public void Read(long offset, Span<float> destination)
    {
        if (Half is { } h) Widen(h.Bits, h.Format, offset, destination);
        else _f32.AsSpan((int)offset, destination.Length).CopyTo(destination);
    }

    /// <summary>A private copy in the same form (16-bit stays 16-bit).</summary>
    public WeightMatrix Clone() => Half is { } h ? new WeightMatrix((ushort[])h.Bits.Clone(), h.Format) : new WeightMatrix((float[])F32.Clone());

    /// <summary>The 16-bit format of a stored dtype, or null for one held as float32.</summary>
    public static HalfFormat? FormatOf(DType t) => t switch { DType.BF16 => HalfFormat.BFloat16, DType.F16 => HalfFormat.Float16, _ => null };

    static unsafe void Widen(ushort[] bits, HalfFormat format, long offset, Span<float> destination)
    {
        if ((ulong)offset + (ulong)destination.Length > (ulong)bits.LongLength) throw new ArgumentOutOfRangeException(nameof(offset));
        fixed (ushort* s = bits) fixed (float* d = destination)
            for (long i = 0; i < destination.Length; i += 1 << 24)
                WideningGemm.Widen(format, s + offset + i, d + i, (int)Math.Min(1 << 24, destination.Length - i));
    }
}
