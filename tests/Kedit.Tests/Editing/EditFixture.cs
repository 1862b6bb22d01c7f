using System.Text.Json;
using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.IO;
using Kedit.Models;

namespace Kedit.Tests.Editing;

/// <summary>One fixture model with its edit inputs and goldens (tests/fixtures/{name}).</summary>
public sealed class EditFixture : IDisposable
{
    public EditFixture(string name)
    {
        Name = name;
        Dir = TestPaths.Fixture(name);
        Model = Transformer.Load(Dir);
        Gold = SafetensorsFile.Open(Path.Combine(Dir, "golden_edits.safetensors"));
        Inputs = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir, "edit_inputs.json"))).RootElement;
    }

    public string Name { get; }
    public string Dir { get; }
    public Transformer Model { get; }
    public SafetensorsFile Gold { get; }
    public JsonElement Inputs { get; }

    public HParams HParams(string section) => Kedit.Editing.Inputs.HParams.FromFixtureSection(Path.Combine(Dir, "hparams.json"), section);

    public IEnumerable<int[]> CovSequences => Inputs.GetProperty("cov_sequences").EnumerateArray().Select(Ids);

    static int[] Ids(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
    static LookupRow Row(JsonElement e) => new(Ids(e.GetProperty("ids")), e.GetProperty("idx").GetInt32());

    /// <summary>The fixture's expanded rows (expanded_memit / expanded_rome) as prepared requests.</summary>
    public List<PreparedRequest> Requests(string expanded) =>
        Inputs.GetProperty(expanded).EnumerateArray().Select(r => new PreparedRequest(
            r.GetProperty("ctx_groups").EnumerateArray().Select(g => (IReadOnlyList<LookupRow>)g.EnumerateArray().Select(Row).ToList()).ToList(),
            r.GetProperty("kl").EnumerateArray().Select(Row).ToList(),
            Row(r.GetProperty("bare")),
            Ids(r.GetProperty("target")))).ToList();

    public Covariance Covariance(IEnumerable<int> layers)
    {
        var cov = new Covariance(layers, Model.Config.Intermediate);
        cov.Accumulate(Model, CovSequences);
        return cov;
    }

    public EditContext Context(string section)
    {
        var h = HParams(section);
        return new EditContext(Model, h.Layers, Covariance(h.Layers), h.Mom2UpdateWeight ?? 0, ZSettings.From(h, Model.Config.Layers));
    }

    public double[] G(string name) => Gold.ReadFloat64(name);

    public static double[] Column(MatrixD m, int j) => Enumerable.Range(0, m.Rows).Select(i => m[i, j]).ToArray();

    /// <summary>Columns of a d×n matrix as the fixtures' (n, d) rows.</summary>
    public static double[] AsRows(MatrixD m) => m.Transpose().Data;

    public static double[] ToDouble(float[] x) => x.Select(v => (double)v).ToArray();

    public void Dispose() { Gold.Dispose(); Model.Dispose(); }
}
