namespace Kedit.Kernels.Ilgpu;

/// <summary>
/// The index space of a grid-stride kernel: Total items (a Width × rows grid flattened row-major, or a 1-D range
/// with Width = Total) visited by Stride lanes, lane l taking items l, l + Stride, … . GPUs launch a lane per item
/// (one pass each, as a thread-per-item kernel); ILGPU's CPU accelerator launches only as many lanes as it has
/// threads, because it pays a thread barrier per work-group (about 100× the launch cost of a few lanes on tiny
/// shapes, measured: 17 ms against 0.15 ms for 4,096 items on 2 cores).
/// </summary>
public struct Lanes
{
    public long Total;
    public int Width, Stride;

    /// <summary>Width × height items over at most <paramref name="maxLanes"/> lanes.</summary>
    public static Lanes Of(long width, long height, int maxLanes)
    {
        if (width < 0 || height < 0) throw new ArgumentOutOfRangeException(nameof(width), $"negative extent {width} × {height}");
        if (maxLanes < 1) throw new ArgumentOutOfRangeException(nameof(maxLanes), maxLanes, "at least one lane");
        long total = width * height;
        // Width only splits 2-D ranges (an int dimension); a 1-D range past int's range never reads it.
        return new Lanes { Total = total, Width = (int)Math.Clamp(width, 1, int.MaxValue), Stride = (int)Math.Max(1, Math.Min(total, maxLanes)) };
    }

    /// <summary>The lanes to launch (0 for an empty range).</summary>
    public readonly int Count => Total == 0 ? 0 : Stride;
}
