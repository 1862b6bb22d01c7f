using System.Text.Json.Nodes;
using Xunit;

namespace Kedit.Tests.Demo;

/// <summary>
/// `kedit demo --quick` on the shipped default model shows what the D4S and PRUNE papers show (issue #12's
/// "done means"), asserted on the numbers of report.json rather than on the report's own verdicts.
/// </summary>
public class DemoTests
{
    [Fact]
    public void QuickDemoShowsThePapersPicture()
    {
        string outDir = Path.Combine(Directory.CreateTempSubdirectory("kedit-demo-").FullName, "report");
        var o = new StringWriter(); var e = new StringWriter();
        int code = Cli.Cli.Run(new[] { "demo", "--quick", "--out", outDir }, o, e);
        Assert.True(code == 0, e.ToString());
        var r = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")))!;
        var variants = r["variants"]!.AsObject();
        Assert.Equal(new[] { "memit", "d4s", "memit+prune", "d4s+prune" }, variants.Select(v => v.Key));
        int layers = r["layers"]!.AsArray().Count;
        JsonNode Last(string v) => variants[v]!.AsArray()[^1]!;
        double Get(JsonNode p, string metric, int i = -1) => i < 0 ? p[metric]!.GetValue<double>() : p[metric]![i]!.GetValue<double>();
        double MaxKappa(JsonNode p) => p["condition_number"]!.AsArray().Max(k => k!.GetValue<double>());
        var b = r["baseline"]!;
        var memit = Last("memit"); var d4s = Last("d4s");
        string Report(string v) => $"{v}: efficacy {Get(Last(v), "efficacy"):F1}, perplexity {Get(Last(v), "perplexity"):F2}, facts {Get(Last(v), "untouched_facts"):F1}, max κ {MaxKappa(Last(v)):F1}";

        foreach (var (name, points) in variants)
            foreach (var p in points!.AsArray())
            {
                Assert.Equal(layers, p!["regime"]!.AsArray().Count);
                foreach (var l in p["regime"]!.AsArray())
                    Assert.True(l!["accumulated_sigma_ratio"]!.GetValue<double>() > 0 && l["single_median_sigma_ratio"]!.GetValue<double>() > 0, $"{name}: regime");
                Assert.Equal(name.EndsWith("+prune"), p["regime"]![0]!["prune_restrained"] != null);
            }

        // The edits take (0 before), and the D4S paper's picture: general ability and the facts never edited stay
        // closer to the original than under plain sequential MEMIT; the edited layers' norm grows less at every layer.
        Assert.Equal(0.0, Get(b, "efficacy"));
        Assert.True(Get(d4s, "efficacy") >= 80, Report("d4s"));
        Assert.True(Math.Abs(Get(d4s, "perplexity") - Get(b, "perplexity")) < Math.Abs(Get(memit, "perplexity") - Get(b, "perplexity")), $"{Report("d4s")}; {Report("memit")}; original {Get(b, "perplexity"):F2}");
        Assert.True(Math.Abs(Get(d4s, "untouched_facts") - Get(b, "untouched_facts")) < Math.Abs(Get(memit, "untouched_facts") - Get(b, "untouched_facts")),
            $"{Report("d4s")}; {Report("memit")}; original facts {Get(b, "untouched_facts"):F1}");
        for (int l = 0; l < layers; l++)
            Assert.True(Get(d4s, "l1_mean_abs", l) < Get(memit, "l1_mean_abs", l), $"layer {l}: mean |w| d4s {Get(d4s, "l1_mean_abs", l):G4} vs memit {Get(memit, "l1_mean_abs", l):G4}");

        // The PRUNE paper's: the restraint keeps most of each base method's edits while holding the condition number near the original's.
        double kappa0 = MaxKappa(b);
        foreach (var (pruned, baseName) in new[] { ("memit+prune", "memit"), ("d4s+prune", "d4s") })
        {
            Assert.True(Get(Last(pruned), "efficacy") >= 0.8 * Get(Last(baseName), "efficacy"), $"{Report(pruned)}; {Report(baseName)}");
            Assert.True(MaxKappa(Last(pruned)) <= 2 * kappa0, $"{Report(pruned)}; original max κ {kappa0:F1}");
        }

        // The report says so itself, and is readable where it is shared: claims, the regime, charts, no machine paths.
        Assert.All(r["claims"]!.AsArray(), c => Assert.True(c!["supported"]!.GetValue<bool>(), c["claim"] + ": " + c["detail"]));
        string html = File.ReadAllText(Path.Combine(outDir, "report.html"));
        Assert.Equal(8, html.Split("<svg").Length - 1);
        Assert.Contains("Claims tested", html);
        Assert.Contains("Regime per edited layer", html);
        Assert.DoesNotContain("<script", html);
        Assert.DoesNotContain(Path.GetTempPath(), html);
        Assert.DoesNotContain(TestPaths.Repo, html);
        Assert.Contains("claims tested:", o.ToString());
        Assert.Contains("report.html", o.ToString());
    }
}
