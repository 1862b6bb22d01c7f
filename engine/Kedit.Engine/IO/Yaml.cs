using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Kedit.IO;

/// <summary>
/// Reads the YAML that configuration files use — EasyEdit's hparams and the like — into JSON nodes: block mappings
/// and sequences by indentation (including "- key: value" items), flow collections ([a, b], {k: v}, nested, over
/// several lines), plain, single- and double-quoted scalars, literal (|) and folded (&gt;) block scalars, comments,
/// one document ("---" / "..."). Scalars resolve by YAML 1.2's core schema (null, booleans, integers, floats,
/// else strings; quoted scalars are always strings). Anchors, aliases, tags, complex keys and several documents are
/// refused with the line they are on, as are duplicate keys and tabs in indentation.
/// </summary>
public static class Yaml
{
    sealed record Line(int Number, int Indent, string Text);

    /// <summary>Parses <paramref name="text"/>; <paramref name="source"/> names the file in errors.</summary>
    /// <exception cref="KeditException">Malformed or unsupported YAML, naming the file and line.</exception>
    public static JsonNode? Parse(string text, string source)
    {
        var p = new Parser(Lines(text, source), source);
        if (p.Done) return null;
        var node = p.Block(p.Peek.Indent);
        if (!p.Done) throw p.Fail(p.Peek, $"unexpected content \"{Short(p.Peek.Text)}\" (wrong indentation?)");
        return node;
    }

    static List<Line> Lines(string text, string source)
    {
        var lines = new List<Line>();
        var raw = text.Replace("\r\n", "\n").Split('\n');
        bool started = false;
        for (int i = 0; i < raw.Length; i++)
        {
            string l = raw[i];
            if (i == 0 && l.StartsWith('\uFEFF')) l = l[1..];
            int indent = 0;
            while (indent < l.Length && l[indent] == ' ') indent++;
            string rest = l[indent..];
            if (rest.StartsWith('\t') && rest.Trim().Length > 0 && !rest.TrimStart().StartsWith('#'))
                throw new KeditException($"{source}: line {i + 1}: a tab in the indentation (YAML indents with spaces)");
            string content = StripComment(rest).TrimEnd();
            if (content.Length == 0) { lines.Add(new Line(i + 1, -1, "")); continue; }   // blank: kept for block scalars
            if (indent == 0 && (content == "---" || content.StartsWith("--- ", StringComparison.Ordinal)))
            {
                if (started) throw new KeditException($"{source}: line {i + 1}: a second YAML document; give one document per file");
                started = true;
                if (content.Length > 3) lines.Add(new Line(i + 1, 4, content[4..].TrimStart()));
                continue;
            }
            if (indent == 0 && content == "...") break;
            if (indent == 0 && content.StartsWith('%')) throw new KeditException($"{source}: line {i + 1}: YAML directives (\"{Short(content)}\") are not supported");
            started = true;
            lines.Add(new Line(i + 1, indent, content));
        }
        return lines;
    }

    /// <summary>Drops a comment: '#' at the start or after whitespace, outside quotes.</summary>
    static string StripComment(string s)
    {
        char quote = '\0';
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (quote != '\0')
            {
                if (quote == '"' && c == '\\') { i++; continue; }
                if (c == quote)
                {
                    if (quote == '\'' && i + 1 < s.Length && s[i + 1] == '\'') { i++; continue; }
                    quote = '\0';
                }
            }
            else if (c is '"' or '\'' && (i == 0 || " \t[{,:-".Contains(s[i - 1]))) quote = c;
            else if (c == '#' && (i == 0 || s[i - 1] is ' ' or '\t')) return s[..i];
        }
        return s;
    }

    static string Short(string s) => s.Length <= 40 ? s : s[..40] + "…";

    sealed class Parser(List<Line> lines, string source)
    {
        int _i;

        public bool Done { get { SkipBlank(); return _i >= lines.Count; } }
        public Line Peek { get { SkipBlank(); return lines[_i]; } }
        void SkipBlank() { while (_i < lines.Count && lines[_i].Indent < 0) _i++; }

        public KeditException Fail(Line l, string message) => new($"{source}: line {l.Number}: {message}");

        /// <summary>The block node starting at the current line, whose lines are indented by <paramref name="indent"/>.</summary>
        public JsonNode? Block(int indent)
        {
            var l = Peek;
            if (IsSequenceItem(l.Text)) return Sequence(indent);
            if (KeyAt(l.Text) >= 0) return Mapping(indent);
            _i++;
            return Inline(l, l.Text, indent);
        }

        static bool IsSequenceItem(string t) => t == "-" || t.StartsWith("- ", StringComparison.Ordinal);

        JsonArray Sequence(int indent)
        {
            var items = new JsonArray();
            while (!Done && Peek.Indent == indent && IsSequenceItem(Peek.Text))
            {
                var l = Peek;
                string rest = l.Text.Length > 1 ? l.Text[2..].TrimStart() : "";
                if (rest.Length == 0) { _i++; items.Add(Child(indent, l, allowSameIndentSequence: false)); continue; }
                // "- key: value" or "- - x": the item is a block whose first line starts after the dash.
                int inner = indent + (l.Text.Length - rest.Length);
                if (KeyAt(rest) >= 0 || IsSequenceItem(rest))
                {
                    lines[_i] = new Line(l.Number, inner, rest);
                    items.Add(Block(inner));
                }
                else { _i++; items.Add(Inline(l, rest, indent)); }
            }
            if (!Done && Peek.Indent > indent) throw Fail(Peek, "this line is indented more than the sequence item above it");
            return items;
        }

        JsonObject Mapping(int indent)
        {
            var map = new JsonObject();
            while (!Done && Peek.Indent == indent)
            {
                var l = Peek;
                int colon = KeyAt(l.Text);
                if (colon < 0)
                {
                    if (IsSequenceItem(l.Text)) throw Fail(l, "a sequence item where a mapping key was expected (indent the list under its key)");
                    throw Fail(l, $"expected \"key: value\", got \"{Short(l.Text)}\"");
                }
                string key = Key(l, l.Text[..colon]);
                if (map.ContainsKey(key)) throw Fail(l, $"key '{key}' appears twice in the same mapping");
                string rest = l.Text[(colon + 1)..].Trim();
                _i++;
                map[key] = rest.Length == 0 ? Child(indent, l, allowSameIndentSequence: true) : Inline(l, rest, indent);
            }
            if (!Done && Peek.Indent > indent) throw Fail(Peek, "this line is indented more than the mapping key above it");
            return map;
        }

        /// <summary>The value of a key or dash with nothing after it: the more-indented block below, or null.</summary>
        JsonNode? Child(int indent, Line owner, bool allowSameIndentSequence)
        {
            if (Done) return null;
            var next = Peek;
            if (next.Indent > indent) return Block(next.Indent);
            // "key:\n- a\n- b": YAML lets a mapping's sequence value sit at the key's own indentation.
            if (allowSameIndentSequence && next.Indent == indent && IsSequenceItem(next.Text)) return Sequence(indent);
            return null;
        }

        /// <summary>A value written on the key's line: a flow collection, a block scalar header or a scalar.</summary>
        JsonNode? Inline(Line l, string text, int indent)
        {
            if (text.StartsWith('&') || text.StartsWith('*')) throw Fail(l, "YAML anchors and aliases (& and *) are not supported");
            if (text.StartsWith('!')) throw Fail(l, "YAML tags (!) are not supported");
            if (text[0] is '[' or '{')
            {
                // A flow collection may continue over the following lines until its brackets close.
                var sb = new StringBuilder(text);
                var flow = new Flow(sb.ToString());
                while (!flow.Balanced && _i < lines.Count)
                {
                    if (lines[_i].Indent >= 0) sb.Append(' ').Append(lines[_i].Text);
                    _i++;
                    flow = new Flow(sb.ToString());
                }
                if (!flow.Balanced) throw Fail(l, "a flow collection ([ or {) that is never closed");
                try { return flow.Read(); }
                catch (FormatException e) { throw Fail(l, e.Message); }
            }
            if (text[0] is '|' or '>') return BlockScalar(l, text, indent);
            if (text[0] is '"' or '\'')
            {
                try
                {
                    var f = new Flow(text);
                    var v = f.ReadQuoted();
                    if (!f.AtEnd) throw new FormatException($"text after the closing quote: \"{Short(text)}\"");
                    return v;
                }
                catch (FormatException e) { throw Fail(l, e.Message); }
            }
            // A plain scalar may continue on more-indented lines (folded with spaces).
            var plain = new StringBuilder(text);
            while (!Done && Peek.Indent > indent && KeyAt(Peek.Text) < 0 && !IsSequenceItem(Peek.Text)) { plain.Append(' ').Append(Peek.Text); _i++; }
            return Resolve(plain.ToString());
        }

        JsonNode BlockScalar(Line header, string text, int indent)
        {
            bool literal = text[0] == '|';
            string chomp = text.Length > 1 ? text[1..].Trim() : "";
            if (chomp is not ("" or "-" or "+")) throw Fail(header, $"block scalar indicator \"{text}\" is not supported (use |, |-, |+, >, >- or >+)");
            var body = new List<string>();
            int bodyIndent = -1;
            while (_i < lines.Count)
            {
                var l = lines[_i];
                if (l.Indent < 0) { body.Add(""); _i++; continue; }
                if (l.Indent <= indent) break;
                if (bodyIndent < 0) bodyIndent = l.Indent;
                if (l.Indent < bodyIndent) break;
                body.Add(new string(' ', l.Indent - bodyIndent) + l.Text);
                _i++;
            }
            int trailing = 0;
            while (body.Count > 0 && body[^1].Length == 0) { body.RemoveAt(body.Count - 1); trailing++; }
            string s;
            if (literal) s = string.Join("\n", body);
            else
            {
                var sb = new StringBuilder();
                for (int k = 0; k < body.Count; k++)
                {
                    if (k > 0) sb.Append(body[k].Length == 0 || body[k - 1].Length == 0 || body[k].StartsWith(' ') ? "\n" : " ");
                    sb.Append(body[k]);
                }
                s = sb.ToString().Replace("\n\n", "\n");
            }
            if (body.Count > 0 && chomp != "-") s += "\n";
            if (chomp == "+") s += new string('\n', trailing);
            return JsonValue.Create(s)!;
        }

        string Key(Line l, string raw)
        {
            raw = raw.Trim();
            if (raw.StartsWith('?')) throw Fail(l, "complex mapping keys (?) are not supported");
            if (raw.StartsWith('&') || raw.StartsWith('*') || raw.StartsWith('!')) throw Fail(l, "anchors, aliases and tags on keys are not supported");
            if (raw.Length > 0 && raw[0] is '"' or '\'')
            {
                try { var f = new Flow(raw); var v = f.ReadQuoted(); return v!.GetValue<string>(); }
                catch (FormatException e) { throw Fail(l, e.Message); }
            }
            return raw;
        }

        /// <summary>Index of the ':' that ends a mapping key on this line (followed by space or end), or -1.</summary>
        static int KeyAt(string t)
        {
            if (t.Length == 0 || t[0] is '[' or '{' or '|' or '>' || IsSequenceItem(t)) return -1;
            int start = 0;
            if (t[0] is '"' or '\'')
            {
                char q = t[0];
                int k = 1;
                while (k < t.Length && t[k] != q) k += t[k] == '\\' && q == '"' ? 2 : 1;
                start = k + 1;
                if (start > t.Length) return -1;
            }
            for (int k = start; k < t.Length; k++)
                if (t[k] == ':' && (k + 1 == t.Length || t[k + 1] == ' ')) return k;
            return -1;
        }
    }

    static readonly Regex IntPattern = new(@"^[-+]?[0-9]+$", RegexOptions.CultureInvariant);
    static readonly Regex FloatPattern = new(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$", RegexOptions.CultureInvariant);

    /// <summary>YAML 1.2 core schema resolution of a plain scalar.</summary>
    static JsonNode? Resolve(string s)
    {
        switch (s)
        {
            case "~" or "null" or "Null" or "NULL" or "": return null;
            case "true" or "True" or "TRUE": return JsonValue.Create(true);
            case "false" or "False" or "FALSE": return JsonValue.Create(false);
        }
        if (IntPattern.IsMatch(s) && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long i)) return JsonValue.Create(i);
        if (s.StartsWith("0x", StringComparison.Ordinal) && long.TryParse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long h)) return JsonValue.Create(h);
        if (s.StartsWith("0o", StringComparison.Ordinal) && s.Length > 2 && s[2..].All(c => c is >= '0' and <= '7')) return JsonValue.Create(Convert.ToInt64(s[2..], 8));
        if (FloatPattern.IsMatch(s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)) return JsonValue.Create(d);
        // .inf / .nan have no JSON form: they stay strings, and the field that receives one says it wants a number.
        return JsonValue.Create(s);
    }

    /// <summary>A flow collection or quoted scalar, read character by character.</summary>
    sealed class Flow(string s)
    {
        int _p;

        public bool AtEnd { get { Ws(); return _p >= s.Length; } }

        /// <summary>True when every bracket opened outside quotes is closed.</summary>
        public bool Balanced
        {
            get
            {
                int depth = 0; char q = '\0';
                for (int k = 0; k < s.Length; k++)
                {
                    char c = s[k];
                    if (q != '\0') { if (q == '"' && c == '\\') k++; else if (c == q) q = '\0'; }
                    else if (c is '"' or '\'') q = c;
                    else if (c is '[' or '{') depth++;
                    else if (c is ']' or '}') depth--;
                }
                return depth <= 0;
            }
        }

        public JsonNode? Read()
        {
            var v = Value();
            if (!AtEnd) throw new FormatException($"text after the closing bracket: \"{Short(s[_p..])}\"");
            return v;
        }

        void Ws() { while (_p < s.Length && s[_p] is ' ' or '\t') _p++; }

        JsonNode? Value()
        {
            Ws();
            if (_p >= s.Length) throw new FormatException("a flow collection ends early");
            char c = s[_p];
            if (c == '[')
            {
                _p++;
                var arr = new JsonArray();
                while (true)
                {
                    Ws();
                    if (_p < s.Length && s[_p] == ']') { _p++; return arr; }
                    arr.Add(Value());
                    Ws();
                    if (_p < s.Length && s[_p] == ',') { _p++; continue; }
                    if (_p < s.Length && s[_p] == ']') { _p++; return arr; }
                    throw new FormatException("expected ',' or ']' in a flow sequence");
                }
            }
            if (c == '{')
            {
                _p++;
                var map = new JsonObject();
                while (true)
                {
                    Ws();
                    if (_p < s.Length && s[_p] == '}') { _p++; return map; }
                    var keyNode = s[_p] is '"' or '\'' ? ReadQuoted() : JsonValue.Create(Plain(stopAtColon: true));
                    string key = keyNode?.ToString() ?? "";
                    Ws();
                    JsonNode? v = null;
                    if (_p < s.Length && s[_p] == ':') { _p++; Ws(); if (_p < s.Length && s[_p] is not (',' or '}')) v = Value(); }
                    if (map.ContainsKey(key)) throw new FormatException($"key '{key}' appears twice in the same mapping");
                    map[key] = v;
                    Ws();
                    if (_p < s.Length && s[_p] == ',') { _p++; continue; }
                    if (_p < s.Length && s[_p] == '}') { _p++; return map; }
                    throw new FormatException("expected ',' or '}' in a flow mapping");
                }
            }
            if (c is '"' or '\'') return ReadQuoted();
            if (c is '&' or '*' or '!') throw new FormatException("YAML anchors, aliases and tags are not supported");
            return Resolve(Plain(stopAtColon: false));
        }

        string Plain(bool stopAtColon)
        {
            int start = _p;
            while (_p < s.Length && s[_p] is not (',' or ']' or '}') && !(stopAtColon && s[_p] == ':' && (_p + 1 == s.Length || s[_p + 1] is ' ' or ',' or '}'))) _p++;
            return s[start.._p].Trim();
        }

        public JsonNode? ReadQuoted()
        {
            Ws();
            char q = s[_p++];
            var sb = new StringBuilder();
            while (true)
            {
                if (_p >= s.Length) throw new FormatException($"a {(q == '"' ? "double" : "single")}-quoted string is never closed");
                char c = s[_p++];
                if (c == q)
                {
                    if (q == '\'' && _p < s.Length && s[_p] == '\'') { sb.Append('\''); _p++; continue; }
                    return JsonValue.Create(sb.ToString());
                }
                if (q == '"' && c == '\\')
                {
                    if (_p >= s.Length) throw new FormatException("a backslash at the end of a double-quoted string");
                    char e = s[_p++];
                    switch (e)
                    {
                        case 'n': sb.Append('\n'); break;
                        case 't': sb.Append('\t'); break;
                        case 'r': sb.Append('\r'); break;
                        case '0': sb.Append('\0'); break;
                        case '"' or '\\' or '/' or ' ': sb.Append(e); break;
                        case 'u' or 'x' or 'U':
                            int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                            if (_p + n > s.Length || !int.TryParse(s.AsSpan(_p, n), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code) || code > 0x10FFFF || code is >= 0xD800 and <= 0xDFFF)
                                throw new FormatException($"a bad \\{e} escape in a double-quoted string");
                            sb.Append(char.ConvertFromUtf32(code)); _p += n; break;
                        default: throw new FormatException($"unknown escape \\{e} in a double-quoted string");
                    }
                    continue;
                }
                sb.Append(c);
            }
        }
    }
}
