using System.Globalization;
using System.Net;
using System.Text;

namespace Kedit.Evaluation;

/// <summary>
/// A self-contained HTML report: the claims tested and whether the run supports them, warnings, one inline
/// SVG line chart per metric (no plotting package, no scripts, no external files), tables and sample
/// generations. Axes sit at round ticks; percentages always span 0–100; each series has its own colour,
/// dash pattern and marker, so lines that lie on top of each other stay distinguishable.
/// </summary>
public static class HtmlReport
{
    static readonly string[] Colors = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b" };
    static readonly string[] Dashes = { "", "7 4", "2 3", "9 3 2 3", "4 2", "1 2" };

    public enum Axis { Linear, Percent, Log }

    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);
    public sealed record Chart(string Title, string YLabel, IReadOnlyList<Series> Series, Axis Y = Axis.Linear);
    public sealed record Table(string Title, IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows);

    public static string Render(string title, string intro, IReadOnlyList<ClaimResult> claims, IReadOnlyList<string> warnings, IReadOnlyList<Chart> charts,
        IReadOnlyList<Table> tables, IReadOnlyList<(string Label, string Text)> samples)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title><style>")
          .Append("body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:22px}.charts{display:flex;flex-wrap:wrap;gap:16px}")
          .Append("figure{margin:0;border:1px solid #ddd;padding:8px}figcaption{font-weight:bold;font-size:14px;margin-bottom:4px}")
          .Append("table{border-collapse:collapse;margin:16px 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}")
          .Append("ul.claims{padding-left:0;list-style:none}ul.claims li{margin:6px 0;font-size:14px}.yes{color:#1a7f37;font-weight:bold}.no{color:#c62828;font-weight:bold}")
          .Append(".warn{background:#fff4e5;border-left:4px solid #ff9800;padding:6px 10px;font-size:13px}.detail{color:#555;font-size:13px}")
          .Append("pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;font-size:13px}</style></head><body>");
        sb.Append("<h1>").Append(E(title)).Append("</h1><p>").Append(E(intro)).Append("</p>");
        if (claims.Count > 0)
        {
            sb.Append("<h2>Claims tested</h2><ul class=\"claims\">");
            foreach (var c in claims)
                sb.Append("<li><span class=\"").Append(c.Supported ? "yes\">supported" : "no\">not supported").Append("</span> — ").Append(E(c.Claim))
                  .Append("<br><span class=\"detail\">").Append(E(c.Detail)).Append("</span></li>");
            sb.Append("</ul>");
        }
        foreach (var w in warnings) sb.Append("<p class=\"warn\">").Append(E(w)).Append("</p>");
        sb.Append("<div class=\"charts\">");
        foreach (var c in charts) sb.Append("<figure><figcaption>").Append(E(c.Title)).Append("</figcaption>").Append(Svg(c)).Append("</figure>");
        sb.Append("</div>");
        foreach (var t in tables)
        {
            sb.Append("<h2>").Append(E(t.Title)).Append("</h2><table><tr>");
            foreach (var h in t.Header) sb.Append("<th>").Append(E(h)).Append("</th>");
            sb.Append("</tr>");
            foreach (var row in t.Rows)
            {
                sb.Append("<tr>");
                foreach (var cell in row) sb.Append("<td>").Append(E(cell)).Append("</td>");
                sb.Append("</tr>");
            }
            sb.Append("</table>");
        }
        if (samples.Count > 0)
        {
            sb.Append("<h2>Generations</h2>");
            foreach (var (label, text) in samples) sb.Append("<p><b>").Append(E(label)).Append("</b></p><pre>").Append(E(text)).Append("</pre>");
        }
        sb.Append("</body></html>");
        return sb.ToString();
    }

    /// <summary>A line chart as inline SVG: axes at round ticks, one styled polyline per series, a legend.</summary>
    public static string Svg(Chart c, int width = 360, int height = 240)
    {
        const int left = 56, right = 12, top = 10, bottom = 40;
        bool log = c.Y == Axis.Log;
        var pts = c.Series.SelectMany(s => s.Points).Where(p => Plottable(p.Y, log)).ToList();
        var xTicks = LinearTicks(pts.Count > 0 ? pts.Min(p => p.X) : 0, pts.Count > 0 ? pts.Max(p => p.X) : 1);
        var yTicks = c.Y switch
        {
            Axis.Percent => new[] { 0.0, 20, 40, 60, 80, 100 },
            Axis.Log => LogTicks(pts.Count > 0 ? pts.Min(p => p.Y) : 1, pts.Count > 0 ? pts.Max(p => p.Y) : 10),
            _ => LinearTicks(pts.Count > 0 ? pts.Min(p => p.Y) : 0, pts.Count > 0 ? pts.Max(p => p.Y) : 1),
        };
        double Ty(double y) => log ? Math.Log10(y) : y;
        double x0 = xTicks[0], x1 = xTicks[^1], y0 = Ty(yTicks[0]), y1 = Ty(yTicks[^1]);
        int pw = width - left - right, ph = height - top - bottom;
        double Px(double x) => left + (x - x0) / (x1 - x0) * pw;
        double Py(double y) => top + ph - (Ty(y) - y0) / (y1 - y0) * ph;
        int legendRows = (c.Series.Count + 1) / 2;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height + 18 * legendRows}\" role=\"img\" aria-label=\"{E(c.Title)}\">");
        foreach (double yv in yTicks)
        {
            string yy = F(Py(yv));
            sb.Append($"<line x1=\"{left}\" y1=\"{yy}\" x2=\"{left + pw}\" y2=\"{yy}\" stroke=\"#e4e4e4\"/>");
            sb.Append($"<text x=\"{left - 4}\" y=\"{F(Py(yv) + 4)}\" font-size=\"10\" text-anchor=\"end\">{Label(yv)}</text>");
        }
        foreach (double xv in xTicks)
            sb.Append($"<text x=\"{F(Px(xv))}\" y=\"{top + ph + 14}\" font-size=\"10\" text-anchor=\"middle\">{Label(xv)}</text>");
        sb.Append($"<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>");
        sb.Append($"<text x=\"{left + pw / 2}\" y=\"{top + ph + 30}\" font-size=\"11\" text-anchor=\"middle\">edits</text>");
        sb.Append($"<text x=\"12\" y=\"{top + ph / 2}\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 {top + ph / 2})\">{E(c.YLabel)}</text>");
        for (int s = 0; s < c.Series.Count; s++)
        {
            var ser = c.Series[s];
            string color = Colors[s % Colors.Length], dash = Dashes[s % Dashes.Length];
            string dashAttr = dash.Length > 0 ? $" stroke-dasharray=\"{dash}\"" : "";
            var valid = ser.Points.Where(p => Plottable(p.Y, log)).ToList();
            if (valid.Count > 0)
            {
                sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dashAttr} stroke-opacity=\"0.9\" points=\"{string.Join(" ", valid.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))}\"/>");
                foreach (var p in valid) sb.Append(Marker(s, Px(p.X), Py(p.Y), color));
            }
            int lx = left + (s % 2) * (pw / 2), ly = height + 6 + 18 * (s / 2);
            sb.Append($"<line x1=\"{lx}\" y1=\"{ly - 5}\" x2=\"{lx + 24}\" y2=\"{ly - 5}\" stroke=\"{color}\" stroke-width=\"2\"{dashAttr}/>")
              .Append(Marker(s, lx + 12, ly - 5, color))
              .Append($"<text x=\"{lx + 30}\" y=\"{ly - 1}\" font-size=\"11\">{E(ser.Name)}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    static bool Plottable(double y, bool log) => double.IsFinite(y) && (!log || y > 0);

    // Circle, square, triangle, diamond, …: the marker tells series apart where their lines coincide.
    static string Marker(int series, double x, double y, string color) => (series % 4) switch
    {
        0 => $"<circle cx=\"{F(x)}\" cy=\"{F(y)}\" r=\"3\" fill=\"{color}\"/>",
        1 => $"<rect x=\"{F(x - 3)}\" y=\"{F(y - 3)}\" width=\"6\" height=\"6\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>",
        2 => $"<polygon points=\"{F(x)},{F(y - 4)} {F(x + 4)},{F(y + 3)} {F(x - 4)},{F(y + 3)}\" fill=\"{color}\"/>",
        _ => $"<polygon points=\"{F(x)},{F(y - 4.5)} {F(x + 4.5)},{F(y)} {F(x)},{F(y + 4.5)} {F(x - 4.5)},{F(y)}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>",
    };

    /// <summary>Round ticks (steps of 1, 2, 2.5 or 5 × 10ᵏ) covering [lo, hi], about five of them.</summary>
    public static double[] LinearTicks(double lo, double hi)
    {
        if (hi - lo < 1e-12 * Math.Max(1, Math.Abs(hi))) { double pad = Math.Abs(hi) > 0 ? Math.Abs(hi) * 0.1 : 1; lo -= pad; hi += pad; }
        double raw = (hi - lo) / 5, mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * mag).First(s => s >= raw);
        double start = Math.Floor(lo / step + 1e-9) * step, end = Math.Ceiling(hi / step - 1e-9) * step;
        var ticks = new List<double>();
        for (double t = start; t <= end + step * 1e-6; t += step) ticks.Add(Math.Round(t / step) * step);
        return ticks.ToArray();
    }

    /// <summary>Log-axis ticks at 1, 2, 5 × 10ᵏ covering [lo, hi] (1, 1.5, 2, 3, 5, 7 × 10ᵏ within one decade).</summary>
    public static double[] LogTicks(double lo, double hi)
    {
        if (!(lo > 0)) lo = hi > 0 ? hi / 10 : 1;
        if (!(hi > lo)) hi = lo * 1.5;
        int k0 = (int)Math.Floor(Math.Log10(lo)), k1 = (int)Math.Ceiling(Math.Log10(hi));
        double[] mantissas = k1 - k0 <= 1 ? new[] { 1, 1.5, 2, 3, 4, 5, 7 } : k1 - k0 <= 3 ? new[] { 1.0, 2, 5 } : new[] { 1.0 };
        var all = Enumerable.Range(k0, k1 - k0 + 1).SelectMany(k => mantissas.Select(m => m * Math.Pow(10, k))).ToList();
        double below = all.Last(t => t <= lo * (1 + 1e-9)), above = all.First(t => t >= hi * (1 - 1e-9));
        return all.Where(t => t >= below && t <= above).ToArray();
    }

    static string Label(double v) => Math.Abs(v) >= 1e5 || (Math.Abs(v) < 1e-3 && v != 0)
        ? v.ToString("0.##E+0", CultureInfo.InvariantCulture) : Math.Round(v, 6).ToString("G6", CultureInfo.InvariantCulture);
    static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
    static string E(string s) => WebUtility.HtmlEncode(s);
}
