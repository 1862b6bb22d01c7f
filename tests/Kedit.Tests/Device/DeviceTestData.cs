using Kedit.Backends;
using Xunit;

namespace Kedit.Tests.Device;

/// <summary>Seeded inputs and poisoned outputs shared by the device kernel tests.</summary>
internal static class DeviceTestData
{
    /// <summary>n values uniform in [−scale, scale), reproducible from <paramref name="seed"/>.</summary>
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>n NaNs: an output buffer a kernel must overwrite entirely.</summary>
    public static float[] Poison(int n) => Enumerable.Repeat(float.NaN, n).ToArray();

    /// <summary>A device tensor holding <paramref name="data"/>, or NaN everywhere (an output to be overwritten).</summary>
    public static Tensor Dev(DeviceBackend be, int rows, int cols, float[]? data = null)
    {
        var t = be.Allocate(rows, cols);
        be.Upload(data ?? Poison(rows * cols), t);
        return t;
    }

    /// <summary>A host tensor for the CPU reference, zeros unless <paramref name="data"/> is given.</summary>
    public static CpuTensor Host(int rows, int cols, float[]? data = null)
    {
        var t = new CpuTensor(rows, cols);
        data?.CopyTo(t.Data, 0);
        return t;
    }

    /// <summary>A device tensor's contents.</summary>
    public static float[] Get(DeviceBackend be, Tensor t)
    {
        var r = new float[t.Length];
        be.Download(t, r);
        return r;
    }

    /// <summary>Relative L2 error within <paramref name="tol"/> (float32 accumulation bounds) and no NaN anywhere.</summary>
    public static void Close(string what, ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tol = 2e-6)
    {
        Assert.Equal(expected.Length, actual.Length);
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.False(float.IsNaN(actual[i]), $"{what}: element {i} is NaN (not written)");
            double e = actual[i] - expected[i];
            num += e * e; den += (double)expected[i] * expected[i];
        }
        double rel = Math.Sqrt(num / Math.Max(den, 1e-30));
        Assert.True(rel <= tol, $"{what}: rel_l2 {rel:E2} > {tol:E1}");
    }
}
