using System.Globalization;
using System.Net;
using System.Text;

namespace Kedit.Evaluation;

/// <summary>
/// A self-contained HTML report: one inline SVG line chart per metric (no plotting package, no
/// scripts, no external files), a comparison table and sample generations.
/// </summary>
public static class HtmlReport
{
    static readonly string[] Colors = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b" };

    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);
    public sealed record Chart(string Title, string YLabel, IReadOnlyList<Series> Series, bool LogY = false);

    public static string Render(string title, string intro, IReadOnlyList<Chart> charts, IReadOnlyList<string> tableHeader, IReadOnlyList<IReadOnlyList<string>> table, IReadOnlyList<(string Label, string Text)> samples)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title><style>")
          .Append("body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:22px}.charts{display:flex;flex-wrap:wrap;gap:16px}")
          .Append("figure{margin:0;border:1px solid #ddd;padding:8px}figcaption{font-weight:bold;font-size:14px;margin-bottom:4px}")
          .Append("table{border-collapse:collapse;margin:16px 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}")
          .Append("pre{background:#f7f7f7;padding:8px;white-space:pre-wrap;font-size:13px}</style></head><body>");
        sb.Append("<h1>").Append(E(title)).Append("</h1><p>").Append(E(intro)).Append("</p><div class=\"charts\">");
        foreach (var c in charts) sb.Append("<figure><figcaption>").Append(E(c.Title)).Append("</figcaption>").Append(Svg(c)).Append("</figure>");
        sb.Append("</div><h2>Comparison</h2><table><tr>");
        foreach (var h in tableHeader) sb.Append("<th>").Append(E(h)).Append("</th>");
        sb.Append("</tr>");
        foreach (var row in table)
        {
            sb.Append("<tr>");
            foreach (var cell in row) sb.Append("<td>").Append(E(cell)).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</table>");
        if (samples.Count > 0)
        {
            sb.Append("<h2>Generations</h2>");
            foreach (var (label, text) in samples) sb.Append("<p><b>").Append(E(label)).Append("</b></p><pre>").Append(E(text)).Append("</pre>");
        }
        sb.Append("</body></html>");
        return sb.ToString();
    }

    /// <summary>A line chart as inline SVG: axes with ticks, one polyline per series, a legend.</summary>
    public static string Svg(Chart c, int width = 360, int height = 240)
    {
        const int left = 56, right = 10, top = 10, bottom = 40;
        var pts = c.Series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.Y) && (!c.LogY || p.Y > 0)).ToList();
        double Ty(double y) => c.LogY ? Math.Log10(y) : y;
        double x0 = pts.Count > 0 ? pts.Min(p => p.X) : 0, x1 = pts.Count > 0 ? pts.Max(p => p.X) : 1;
        double y0 = pts.Count > 0 ? pts.Min(p => Ty(p.Y)) : 0, y1 = pts.Count > 0 ? pts.Max(p => Ty(p.Y)) : 1;
        if (x1 - x0 < 1e-12) x1 = x0 + 1;
        if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
        double pad = 0.05 * (y1 - y0); y0 -= pad; y1 += pad;
        int pw = width - left - right, ph = height - top - bottom;
        string X(double x) => F(left + (x - x0) / (x1 - x0) * pw);
        string Y(double y) => F(top + ph - (Ty(y) - y0) / (y1 - y0) * ph);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height + 18 * ((c.Series.Count + 1) / 2)}\" role=\"img\" aria-label=\"{E(c.Title)}\">");
        sb.Append($"<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>");
        for (int i = 0; i <= 4; i++)
        {
            double yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
            double yy = top + ph - (double)i / 4 * ph, xx = left + (double)i / 4 * pw;
            string ylab = c.LogY ? Math.Pow(10, yv).ToString("G3", CultureInfo.InvariantCulture) : yv.ToString("G3", CultureInfo.InvariantCulture);
            sb.Append($"<line x1=\"{left}\" y1=\"{F(yy)}\" x2=\"{left + pw}\" y2=\"{F(yy)}\" stroke=\"#eee\"/>");
            sb.Append($"<text x=\"{left - 4}\" y=\"{F(yy + 4)}\" font-size=\"10\" text-anchor=\"end\">{ylab}</text>");
            sb.Append($"<text x=\"{F(xx)}\" y=\"{top + ph + 14}\" font-size=\"10\" text-anchor=\"middle\">{xv.ToString("G4", CultureInfo.InvariantCulture)}</text>");
        }
        sb.Append($"<text x=\"{left + pw / 2}\" y=\"{top + ph + 30}\" font-size=\"11\" text-anchor=\"middle\">edits</text>");
        sb.Append($"<text x=\"12\" y=\"{top + ph / 2}\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 {top + ph / 2})\">{E(c.YLabel)}</text>");
        for (int s = 0; s < c.Series.Count; s++)
        {
            var ser = c.Series[s];
            string color = Colors[s % Colors.Length];
            var valid = ser.Points.Where(p => double.IsFinite(p.Y) && (!c.LogY || p.Y > 0)).ToList();
            if (valid.Count > 0)
            {
                sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(" ", valid.Select(p => $"{X(p.X)},{Y(p.Y)}"))}\"/>");
                foreach (var p in valid) sb.Append($"<circle cx=\"{X(p.X)}\" cy=\"{Y(p.Y)}\" r=\"2.5\" fill=\"{color}\"/>");
            }
            int lx = left + (s % 2) * (pw / 2), ly = height + 6 + 18 * (s / 2);
            sb.Append($"<rect x=\"{lx}\" y=\"{ly - 8}\" width=\"12\" height=\"4\" fill=\"{color}\"/><text x=\"{lx + 16}\" y=\"{ly - 3}\" font-size=\"11\">{E(ser.Name)}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
    static string E(string s) => WebUtility.HtmlEncode(s);
}
