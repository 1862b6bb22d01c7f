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
}
