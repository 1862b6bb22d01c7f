using System.Text.Json;
using Kedit.Editing;
using Kedit.Editing.Inputs;

namespace Kedit.Cli;

/// <summary>
/// kedit plan: the predicted peak host and device memory of an edit or of kedit stats (<see cref="MemoryPlan"/>), and
/// the check edit, stats and serve run before any work (refused with one line unless --force).
/// </summary>
internal static class PlanCommand
{
    public static int Run(Args a, TextWriter o)
    {
        string model = a.Req("model");
        var work = ParseWork(a.Req("method"));
        bool json = a.Flag("json");
        bool sequential = a.Flag("sequential");
        int batch = a.Int("batch-size", 1);
        string device = a.Opt("device") ?? "cpu";
        IReadOnlyList<int> layers;
        bool float64 = false;
        int requests = 1;
        if (work == PlannedWork.Stats)
        {
            layers = a.Opt("layers") is string l ? Args.ParseIds(l, "layers") : HParamsFor(a.Req("hparams"), work).Layers;
            float64 = (a.Opt("mom2-dtype") ?? "float32") == "float64";
            a.Opt("corpus"); a.Opt("samples");   // accepted so stats' own arguments plan as they are
        }
        else
        {
            var h = HParamsFor(a.Req("hparams"), work);
            layers = h.Layers;
            float64 = !Kedit.Editing.Covariance.HeldAsFloat32(h.Mom2Dtype);
            if (a.Opt("requests") is string r) requests = RequestLoader.Load(r).Count;
            a.Opt("stats"); a.Opt("corpus"); a.Opt("samples");
        }
        a.EnsureAllUsed();
        if (batch < 1) throw new UsageException("plan: --batch-size must be at least 1");
        var plan = MemoryPlan.ForModel(model, work, layers, requests, sequential || work == PlannedWork.Prune, batch, float64, device);
        if (json) { o.WriteLine(JsonSerializer.Serialize(plan.ToJson(), Commands.JsonOut)); return 0; }
        o.WriteLine($"host peak    {Mib(plan.HostPeakBytes)}");
        foreach (var (k, v) in plan.HostParts) o.WriteLine($"  {k,-14} {Mib(v)}");
        if (plan.DeviceParts.Count > 0)
        {
            o.WriteLine($"device peak  {Mib(plan.DevicePeakBytes)}");
            foreach (var (k, v) in plan.DeviceParts) o.WriteLine($"  {k,-14} {Mib(v)}");
        }
        if (MemoryPlan.AvailableHostBytes() is long avail) o.WriteLine($"available    {Mib(avail)} ({(plan.HostPeakBytes <= avail ? "fits" : "does not fit")})");
        return 0;
    }

    /// <summary>Before an edit: refuses (KeditException) when its plan does not fit the available memory, unless forced.</summary>
    public static void CheckEdit(EditJob job, bool force)
    {
        if (force) return;
        var work = job.Prune != null && job.Method != EditMethod.D4S ? PlannedWork.Prune : ParseWork(job.Method.ToString());
        MemoryPlan plan;
        // Bad inputs are the run's to report, with its own messages: the plan only refuses work that would not fit.
        try
        {
            var h = HParams.Load(job.HParamsPath, job.Method);
            int requests = RequestLoader.Load(job.RequestsPath).Count;
            plan = MemoryPlan.ForModel(job.ModelDir, work, h.Layers, requests, job.Sequential, job.BatchSize, !Covariance.HeldAsFloat32(h.Mom2Dtype), job.Device);
        }
        catch (KeditException) { return; }
        plan.Check(MemoryPlan.AvailableHostBytes(), "edit");
    }

    /// <summary>Before kedit stats or serve: as <see cref="CheckEdit"/>.</summary>
    public static void Check(string modelDir, PlannedWork work, IReadOnlyList<int> layers, bool float64, string device, string command, bool force)
    {
        if (force) return;
        MemoryPlan plan;
        try { plan = MemoryPlan.ForModel(modelDir, work, layers, 1, work != PlannedWork.Stats, 1, float64, device); }
        catch (KeditException) { return; }
        plan.Check(MemoryPlan.AvailableHostBytes(), command);
    }

    static PlannedWork ParseWork(string s)
    {
        try { return MemoryPlan.ParseWork(s); }
        catch (KeditException e) { throw new UsageException($"plan: {e.Message}"); }
    }

    // PRUNE restrains MEMIT's sequential updates; its hparams are MEMIT's.
    static HParams HParamsFor(string path, PlannedWork work) => HParams.Load(path, work switch
    {
        PlannedWork.Rome => EditMethod.Rome, PlannedWork.D4S => EditMethod.D4S, PlannedWork.AlphaEdit => EditMethod.AlphaEdit, _ => EditMethod.Memit,
    });

    static string Mib(long b) => $"{b / 1048576.0,9:F0} MiB";
}
