using System.Runtime.Intrinsics.X86;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// One core's L1 data and L2 cache sizes, which the GEMM blocking is sized from: CPUID's cache descriptors
/// (leaf 4 on Intel, 0x80000005/6 on AMD) — virtual machines here hide /sys/devices/system/cpu/*/cache —
/// else Linux sysfs, else 32 KiB / 256 KiB (the smallest of the x86 cores in use).
/// </summary>
internal static class CpuCaches
{
    public static int L1d { get; }
    public static int L2 { get; }

    static CpuCaches()
    {
        var (l1, l2) = FromCpuid();
        if (l1 <= 0 || l2 <= 0) (l1, l2) = FromSysfs();
        // Implausible answers (a hypervisor's zeros, or a shared L3 reported as L2) fall back to the small default.
        L1d = l1 is >= 16 << 10 and <= 1 << 20 ? l1 : 32 << 10;
        L2 = l2 is >= 128 << 10 and <= 16 << 20 ? l2 : 256 << 10;
    }

    private static (int L1d, int L2) FromCpuid()
    {
        if (!X86Base.IsSupported) return (0, 0);
        var (_, vb, vc, vd) = X86Base.CpuId(0, 0);
        bool amd = vb == 0x68747541 && vd == 0x69746e65 && vc == 0x444d4163;   // "AuthenticAMD"
        if (amd)
        {
            if ((uint)X86Base.CpuId(unchecked((int)0x80000000), 0).Eax < 0x80000006) return (0, 0);
            int l1 = (int)((uint)X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx >> 24) << 10;
            int l2 = (int)((uint)X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx >> 16) << 10;
            return (l1, l2);
        }
        int maxLeaf = X86Base.CpuId(0, 0).Eax, d1 = 0, d2 = 0;
        if (maxLeaf < 4) return (0, 0);
        for (int i = 0; i < 16; i++)
        {
            var (a, b, c, _) = X86Base.CpuId(4, i);
            int type = a & 31, level = (a >> 5) & 7;
            if (type == 0) break;
            // ways × partitions × line size × sets
            long size = (long)(((uint)b >> 22) + 1) * ((((uint)b >> 12) & 0x3ff) + 1) * (((uint)b & 0xfff) + 1) * ((uint)c + 1);
            if (level == 1 && type == 1) d1 = (int)Math.Min(size, int.MaxValue);
            if (level == 2 && type is 2 or 3) d2 = (int)Math.Min(size, int.MaxValue);
        }
        return (d1, d2);
    }

    private static (int L1d, int L2) FromSysfs()
    {
        int l1 = 0, l2 = 0;
        for (int i = 0; i < 8; i++)
        {
            string dir = $"/sys/devices/system/cpu/cpu0/cache/index{i}";
            try
            {
                if (!Directory.Exists(dir)) break;
                string level = File.ReadAllText(Path.Combine(dir, "level")).Trim(), type = File.ReadAllText(Path.Combine(dir, "type")).Trim();
                string sz = File.ReadAllText(Path.Combine(dir, "size")).Trim();
                int bytes = sz.EndsWith('K') ? int.Parse(sz[..^1]) << 10 : sz.EndsWith('M') ? int.Parse(sz[..^1]) << 20 : int.Parse(sz);
                if (level == "1" && type == "Data") l1 = bytes;
                if (level == "2" && type != "Instruction") l2 = bytes;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException)
            {
                break;
            }
        }
        return (l1, l2);
    }
}
