namespace Kedit.Cli;

/// <summary><c>kedit apply --model DIR --deltas F --out DIR</c>: a saved edit applied to the original model.</summary>
internal static class ApplyCommand
{
    public static int Run(Args a, TextWriter o)
    {
        string model = a.ModelDir(), deltas = a.Req("deltas"), outDir = a.Req("out");
        a.EnsureAllUsed();
        var edited = Kedit.Editing.DeltaApplier.Apply(model, deltas, outDir);
        o.WriteLine($"applied {edited.Count} delta(s) ({string.Join(", ", edited)}) to {model}; wrote {outDir}");
        return 0;
    }
}
