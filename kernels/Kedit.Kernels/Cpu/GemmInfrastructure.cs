using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: InternalsVisibleTo("Kedit.Tests")]
[assembly: InternalsVisibleTo("kedit-bench")]

namespace Kedit.Kernels.Cpu;

/// <summary>Instruction-set level a GEMM micro-kernel is compiled for; chosen at runtime from IsSupported.</summary>
public enum GemmIsa
{
    /// <summary>Plain scalar code: runs on any architecture.</summary>
    Scalar,
    /// <summary>AVX2 + FMA3 with Vector256 registers.</summary>
    Avx2,
    /// <summary>AVX-512F with Vector512 registers.</summary>
    Avx512,
}

/// <summary>Compile-time integer for struct generics: the JIT folds <c>Value</c> into a constant and drops dead rows.</summary>
internal interface IConst { static abstract int Value { get; } }
internal struct C1 : IConst { public static int Value => 1; }
internal struct C2 : IConst { public static int Value => 2; }
internal struct C3 : IConst { public static int Value => 3; }
internal struct C4 : IConst { public static int Value => 4; }
internal struct C5 : IConst { public static int Value => 5; }
internal struct C6 : IConst { public static int Value => 6; }
internal struct C7 : IConst { public static int Value => 7; }
internal struct C8 : IConst { public static int Value => 8; }
internal struct C9 : IConst { public static int Value => 9; }
internal struct C10 : IConst { public static int Value => 10; }
internal struct C11 : IConst { public static int Value => 11; }
internal struct C12 : IConst { public static int Value => 12; }
internal struct C13 : IConst { public static int Value => 13; }
internal struct C14 : IConst { public static int Value => 14; }
/// <summary>Micro-kernel modes: read an already packed B panel, or pack it from B while computing.</summary>
internal struct ReadsPackedB : IConst { public static int Value => 0; }
internal struct PacksB : IConst { public static int Value => 1; }

/// <summary>
/// A register-tile micro-kernel for the packed GEMM driver. The packed A panel holds, for each p, MR
/// consecutive values (rows); the packed B panel holds, for each p, NR consecutive values (columns).
/// </summary>
internal unsafe interface IGemmKernel<T> where T : unmanaged
{
    static abstract int MR { get; }
    static abstract int NR { get; }
    /// <summary>Depth of one packed block (B micro-panel KC*NR should sit in L1).</summary>
    static abstract int KC { get; }
    /// <summary>Most rows of one compute item's A block (MC*KC sits in L2).</summary>
    static abstract int MC { get; }

    /// <summary>
    /// C[r, j] = alpha * sum_p ap[p*MR + r] * bp[p*NR + j] + beta * C[r, j] for r &lt; rows, j &lt; NR.
    /// beta == 0 means C is write-only (never read, so NaN in C does not propagate).
    /// </summary>
    static abstract void Run(int rows, nint kc, T* ap, T* bp, T* c, nint ldc, T alpha, T beta);

    /// <summary>
    /// Run with B read where it lies (kc rows of NR values, <paramref name="ldb"/> apart: the untransposed
    /// layout) and packed into <paramref name="bp"/> on the way, for the panel's later tiles. The AVX-512
    /// kernel does both in one loop, hiding the packing behind its FMAs; the others pack first (PanelCopy).
    /// </summary>
    static abstract void RunPackingB(int rows, nint kc, T* ap, T* b, nint ldb, T* bp, T* c, nint ldc, T alpha, T beta);
}

/// <summary>Copies kc rows of nr values, <paramref name="ldb"/> apart, into a packed B micro-panel.</summary>
internal static unsafe class PanelCopy
{
    public static void Untransposed<T>(nint kc, int nr, T* b, nint ldb, T* bp) where T : unmanaged
    {
        for (nint p = 0; p < kc; p++)
            new ReadOnlySpan<T>(b + p * ldb, nr).CopyTo(new Span<T>(bp + p * nr, nr));
    }
}

/// <summary>
/// Per-thread, 64-byte aligned scratch memory for packed panels. Grows on demand and is reused across
/// calls so small GEMMs do not allocate; the finalizer returns the memory when the thread dies.
/// </summary>
internal sealed unsafe class ScratchBuffer
{
    [ThreadStatic] private static ScratchBuffer? s_a;
    [ThreadStatic] private static ScratchBuffer? s_b;
    [ThreadStatic] private static ScratchBuffer? s_c;
    [ThreadStatic] private static ScratchBuffer? s_w;

    private void* _ptr;
    private nuint _bytes;

    /// <summary>Scratch for packed A panels.</summary>
    public static T* A<T>(long count) where T : unmanaged => (T*)(s_a ??= new ScratchBuffer()).Get((nuint)(count * sizeof(T)));
    /// <summary>Scratch for packed B panels.</summary>
    public static T* B<T>(long count) where T : unmanaged => (T*)(s_b ??= new ScratchBuffer()).Get((nuint)(count * sizeof(T)));
    /// <summary>Scratch for small auxiliary copies (skinny paths).</summary>
    public static T* C<T>(long count) where T : unmanaged => (T*)(s_c ??= new ScratchBuffer()).Get((nuint)(count * sizeof(T)));
    /// <summary>Scratch for a slab of 16-bit weights widened to float (<see cref="WideningGemm"/>).</summary>
    public static T* W<T>(long count) where T : unmanaged => (T*)(s_w ??= new ScratchBuffer()).Get((nuint)(count * sizeof(T)));

    private void* Get(nuint bytes)
    {
        // Slack past the end lets vector stores overrun a panel by up to one register.
        bytes += 256;
        if (bytes > _bytes)
        {
            if (_ptr != null) NativeMemory.AlignedFree(_ptr);
            _ptr = null;
            nuint size = Math.Max(bytes, _bytes * 3 / 2);
            _ptr = NativeMemory.AlignedAlloc(size, 64);
            _bytes = size;
        }
        return _ptr;
    }

    ~ScratchBuffer()
    {
        if (_ptr != null) NativeMemory.AlignedFree(_ptr);
    }
}
