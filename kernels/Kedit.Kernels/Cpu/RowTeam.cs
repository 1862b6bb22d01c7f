using System.Diagnostics;

namespace Kedit.Kernels.Cpu;

/// <summary>
/// One one-row product in flight: its operands and its chunks, claimed one at a time by any thread of the team.
/// One reused object per calling thread (decoding allocates nothing per product).
/// </summary>
internal sealed unsafe class RowJob
{
    public enum Work { DotsF32, DotsBf16, StreamF32, StreamBf16 }

    /// <summary>No chunk is claimable while the fields are rewritten (a late helper's claim lands far past Chunks).</summary>
    private const int Closed = int.MaxValue / 2;
    /// <summary>Most threads one product is shared among.</summary>
    public const int MaxParticipants = 64;
    /// <summary>Ints between two participants' cursors: a cache line each, so claims do not contend for one line.</summary>
    private const int CursorStride = 16;

    [ThreadStatic] private static RowJob? t_job;

    public Work Kind;
    public int N, K, RowsPerChunk, Chunks;
    public float Alpha, Beta;
    public float* X, Y, Partial;
    public byte* B;
    public nint Incx, Ldb, PartialStride;
    /// <summary>Threads taking chunks, the caller's included.</summary>
    public int Participants;
    // Participant i starts on its own contiguous run of chunks (one stream through memory each; claims dealt out
    // alternately ran ~20% slower), then helps with the others'.
    private readonly int[] _cursor = new int[MaxParticipants * CursorStride];
    private int _remaining, _opened;

    /// <summary>The calling thread's job, closed to claims until <see cref="Open"/>.</summary>
    public static RowJob ForThisThread()
    {
        var job = t_job ??= CreateClosed();
        for (int r = 0; r < job._opened; r++) Interlocked.Exchange(ref job._cursor[r * CursorStride], Closed);
        return job;
    }

    private static RowJob CreateClosed()
    {
        var job = new RowJob();
        for (int r = 0; r < MaxParticipants; r++) job._cursor[r * CursorStride] = Closed;
        return job;
    }

    private int RunStart(int r) => (int)((long)Chunks * r / Participants);

    /// <summary>Makes the chunks claimable by <paramref name="participants"/> threads (after every other field is written).</summary>
    public void Open(int participants)
    {
        Participants = _opened = participants;
        Volatile.Write(ref _remaining, Chunks);
        for (int r = 0; r < participants; r++) Interlocked.Exchange(ref _cursor[r * CursorStride], RunStart(r));
    }

    public bool Done => Volatile.Read(ref _remaining) == 0;

    /// <summary>Runs unclaimed chunks, participant <paramref name="self"/>'s own run first, until none is left.</summary>
    public void Take(int self)
    {
        // Participants may be a later product's by now for a helper late to this one: cursors it never opened stay Closed.
        int parts = Volatile.Read(ref Participants);
        for (int i = 0; i < parts; i++)
        {
            int r = (self + i) % parts;
            // A claim is a full fence: the fields read after it are this product's (a cursor never opened stays Closed).
            for (int c; (c = Interlocked.Increment(ref _cursor[r * CursorStride]) - 1) < Closed && c < RunStart(r + 1);)
            {
                OneRowGemm.Chunk(this, c);
                Interlocked.Decrement(ref _remaining);
            }
        }
    }
}

/// <summary>
/// Helper threads for one-row products (decoding), kept between products: a token's ~50 products each last a fraction of
/// a millisecond, and handing one to a pool thread and joining it again (Parallel.For) cost a sizeable share of that. A
/// helper spins briefly for the next product before it sleeps; the caller takes chunks too and never waits for a helper
/// that has not started (it takes that helper's chunks itself), only for chunks already being run.
/// </summary>
internal static class RowTeam
{
    /// <summary>How long an idle helper keeps polling before it sleeps: longer than the gap between a step's products.</summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 2000;

    private static readonly object s_gate = new();
    private static readonly List<Thread> s_helpers = new();
    private static RowJob? s_job;
    private static int s_generation, s_sleeping, s_busy;

    /// <summary>A product in this many is run the way not currently chosen, to keep both costs current (a probe the
    /// slower way costs a quiet machine ~2 %).</summary>
    private const int ProbeEvery = 32;
    /// <summary>Running averages of ticks per weight byte, team and caller alone (0: not measured yet). Caller-only state.</summary>
    private static double s_teamCost, s_soloCost;
    private static int s_products;
    /// <summary>Off: every product the team can take is run by the team (tests that exercise the team's hand-offs).</summary>
    internal static bool Adaptive = true;

    /// <summary>
    /// Runs every chunk of <paramref name="job"/> (<paramref name="bytes"/> of weights) on up to <paramref name="threads"/>
    /// threads, the caller's included. On a shared machine the helper's core may be taken: a helper preempted while it
    /// holds a chunk stalls the product until it runs again, and there two threads ran the products ~25 % slower than
    /// the caller alone. So the team times its products per byte against the caller alone (one product in
    /// <see cref="ProbeEvery"/> is run the other way) and runs the rest the cheaper way. The chunks depend on the shape
    /// only, so the choice never changes a result.
    /// </summary>
    public static void Run(RowJob job, int threads, long bytes)
    {
        threads = Math.Min(threads, job.Chunks);
        // One team: a second caller while it is busy runs its product alone (same chunks, same result).
        if (threads <= 1 || Interlocked.CompareExchange(ref s_busy, 1, 0) != 0)
        {
            RunAlone(job);
            return;
        }
        try
        {
            bool team = !Adaptive || s_teamCost == 0 || s_soloCost == 0 || s_teamCost <= s_soloCost;
            if (Adaptive && ++s_products % ProbeEvery == 0) team = !team;
            long start = Stopwatch.GetTimestamp();
            if (team)
            {
                threads = Math.Min(threads, RowJob.MaxParticipants);
                EnsureHelpers(threads - 1);
                job.Open(threads);
                Volatile.Write(ref s_job, job);
                Interlocked.Increment(ref s_generation);
                if (Volatile.Read(ref s_sleeping) > 0)
                    lock (s_gate) Monitor.PulseAll(s_gate);
                job.Take(0);
                WaitDone(job);
            }
            else RunAlone(job);
            double cost = (double)(Stopwatch.GetTimestamp() - start) / bytes;
            if (team) s_teamCost = s_teamCost == 0 ? cost : s_teamCost + (cost - s_teamCost) / 8;
            else s_soloCost = s_soloCost == 0 ? cost : s_soloCost + (cost - s_soloCost) / 4;
        }
        finally
        {
            Volatile.Write(ref s_busy, 0);
        }
    }

    private static void RunAlone(RowJob job)
    {
        job.Open(1);
        job.Take(0);
        WaitDone(job); // a helper still on its way out of an earlier product may have taken a chunk
    }

    /// <summary>Only chunks a helper is running remain; give its core back if it was preempted (a loaded machine).</summary>
    private static void WaitDone(RowJob job)
    {
        long start = Stopwatch.GetTimestamp();
        while (!job.Done)
        {
            if (Stopwatch.GetTimestamp() - start > SpinTicks) Thread.Yield();
            else Thread.SpinWait(8);
        }
    }

    private static void EnsureHelpers(int count)
    {
        if (s_helpers.Count >= count) return;
        lock (s_helpers)
            while (s_helpers.Count < count)
            {
                int index = s_helpers.Count;
                var t = new Thread(() => HelperLoop(index)) { IsBackground = true, Name = $"kedit row team {index + 1}" };
                t.Start();
                s_helpers.Add(t);
            }
    }

    private static void HelperLoop(int index)
    {
        int seen = Volatile.Read(ref s_generation) - 1;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref s_generation) == seen)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    Thread.SpinWait(8);
                    continue;
                }
                lock (s_gate)
                {
                    Interlocked.Increment(ref s_sleeping);
                    while (Volatile.Read(ref s_generation) == seen) Monitor.Wait(s_gate);
                    Interlocked.Decrement(ref s_sleeping);
                }
            }
            seen = Volatile.Read(ref s_generation);
            var job = Volatile.Read(ref s_job);
            if (job != null && index + 1 < job.Participants) job.Take(index + 1);
        }
    }
}
