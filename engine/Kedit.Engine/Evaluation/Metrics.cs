using Kedit.Editing;
using Kedit.Editing.Inputs;
using Kedit.Editing.LinearAlgebra;
using Kedit.Models;
using Kedit.Tokenization;

namespace Kedit.Evaluation;

/// <summary>CounterFact scores (spec §15.1, MEMIT-orig definitions), each a mean over records × 100.</summary>
public sealed record CounterFactScores(int Records, double Efficacy, double EfficacyMagnitude, double Paraphrase, double ParaphraseMagnitude,
    double Neighborhood, double NeighborhoodMagnitude, double Score, double EfficacyAccuracy);

/// <summary>zsRE token accuracies (spec §15.2/§15.3), × 100.</summary>
public sealed record ZsreScores(int Records, double Efficacy, double Generalization, double Specificity);

/// <summary>
/// EasyEdit's token-level scores (KnowEdit, EasyEdit's CounterFact/zsRE runs), × 100: teacher-forced accuracy of the new
/// target at the rewrite prompt and its rephrasings, of the first answer of each portability probe, and locality as the
/// share of answer tokens whose arg-max the edit left unchanged (needs the original model; NaN without it).
/// </summary>
public sealed record EasyEditScores(int Records, double RewriteAccuracy, double RephraseAccuracy, double Locality, double Portability);

/// <summary>Magnitude and conditioning of an edited matrix (PRUNE's and D4S's tracked quantities).</summary>
public sealed record MatrixStats(string Name, double L1MeanAbs, double SigmaMax, double SigmaMin, double ConditionNumber);

/// <summary>
/// Scoring of candidates by mean per-token NLL of their continuation tokens (engine rule §4.3),
/// batched; the CounterFact / zsRE metrics; held-out perplexity; matrix statistics.
/// </summary>
public static class Metrics
{
    const int BatchRows = 16;

    /// <summary>(prompt, candidate) → (mean NLL of the continuation tokens, all of them arg-max under teacher forcing).</summary>
    public static (double Nll, bool AllTop1)[] Score(Transformer model, IReadOnlyList<(string Prompt, string Candidate)> pairs)
    {
        var tok = model.RequireTokenizer();
        var rows = new List<(int[] Ids, int PromptLen)>();
        foreach (var (p, c) in pairs)
        {
            string cand = EditRequest.NormalisedTarget(c);
            var target = RequestPreparer.TargetTokens(tok, p, cand, $"prompt \"{p}\"");
            var prompt = tok.Encode(p);
            rows.Add((prompt.Concat(target).ToArray(), prompt.Length));
        }
        var result = new (double, bool)[rows.Count];
        int V = model.Config.VocabSize;
        for (int start = 0; start < rows.Count; start += BatchRows)
        {
            var chunk = rows.Skip(start).Take(BatchRows).ToList();
            var batch = TokenBatch.RightPadded(chunk.Select(r => (IReadOnlyList<int>)r.Ids).ToList());
            // Logits only at the rows that predict a continuation token.
            var logitRows = new List<int>();
            foreach (var (i, (ids, n)) in chunk.Index())
                for (int j = n; j < ids.Length; j++) logitRows.Add(i * batch.Length + j - 1);
            var logits = model.Forward(batch, new ForwardOptions { Logits = LogitsMode.Rows, LogitRows = logitRows }).Logits;
            int next = 0;
            for (int i = 0; i < chunk.Count; i++)
            {
                var (ids, n) = chunk[i];
                double nll = 0; bool all = true;
                for (int j = n; j < ids.Length; j++)
                {
                    var row = logits.AsSpan(next++ * V, V);
                    var lp = ComputeZ.LogSoftmax(row);
                    nll -= lp[ids[j]];
                    if (Generator.ArgMax(row) != ids[j]) all = false;
                }
                result[start + i] = (nll / (ids.Length - n), all);
            }
        }
        return result;
    }

    public static CounterFactScores CounterFact(Transformer model, IReadOnlyList<EditRequest> requests)
    {
        var withTrue = requests.Where(r => r.TargetTrue != null && r.TargetTrue != EditRequest.EndOfTextTarget).ToList();
        if (withTrue.Count == 0) throw new KeditException("CounterFact scores need requests with a target_true");
        var pairs = new List<(string, string)>();
        var layout = new List<(int Rewrite, int[] Para, int[] Neigh)>();
        foreach (var r in withTrue)
        {
            int a = pairs.Count;
            pairs.Add((r.Sentence, r.TargetNew)); pairs.Add((r.Sentence, r.TargetTrue!));
            var para = new List<int>();
            foreach (var p in r.ParaphrasePrompts) { para.Add(pairs.Count); pairs.Add((p, r.TargetNew)); pairs.Add((p, r.TargetTrue!)); }
            var neigh = new List<int>();
            foreach (var p in r.NeighborhoodPrompts) { neigh.Add(pairs.Count); pairs.Add((p.Prompt, r.TargetNew)); pairs.Add((p.Prompt, p.Answer)); }
            layout.Add((a, para.ToArray(), neigh.ToArray()));
        }
        var s = Score(model, pairs);
        double es = 0, em = 0, ps = 0, pm = 0, ns = 0, nm = 0, acc = 0;
        int nPara = 0, nNeigh = 0;
        foreach (var (a, para, neigh) in layout)
        {
            var (nNew, newTop) = s[a]; var (nTrue, _) = s[a + 1];
            es += nTrue > nNew ? 1 : 0; em += Math.Exp(-nNew) - Math.Exp(-nTrue); acc += newTop ? 1 : 0;
            if (para.Length > 0)
            {
                ps += para.Average(i => s[i + 1].Nll > s[i].Nll ? 1.0 : 0.0);
                pm += para.Average(i => Math.Exp(-s[i].Nll) - Math.Exp(-s[i + 1].Nll));
                nPara++;
            }
            if (neigh.Length > 0)
            {
                ns += neigh.Average(i => s[i + 1].Nll < s[i].Nll ? 1.0 : 0.0);
                nm += neigh.Average(i => Math.Exp(-s[i + 1].Nll) - Math.Exp(-s[i].Nll));
                nNeigh++;
            }
        }
        int n = layout.Count;
        double E = 100 * es / n, P = nPara > 0 ? 100 * ps / nPara : double.NaN, N = nNeigh > 0 ? 100 * ns / nNeigh : double.NaN;
        double score = double.IsNaN(P) || double.IsNaN(N) || E == 0 || P == 0 || N == 0 ? double.NaN : 3 / (1 / E + 1 / P + 1 / N);
        return new CounterFactScores(n, E, 100 * em / n, P, nPara > 0 ? 100 * pm / nPara : double.NaN, N, nNeigh > 0 ? 100 * nm / nNeigh : double.NaN, score, 100 * acc / n);
    }

    /// <summary>
    /// % of requests whose true object the model still predicts at the rewrite prompt (every target_true token
    /// arg-max under teacher forcing): on facts never edited, a direct measure of collateral damage.
    /// </summary>
    public static double FactAccuracy(Transformer model, IReadOnlyList<EditRequest> requests)
    {
        var withTrue = requests.Where(r => r.TargetTrue != null && r.TargetTrue != EditRequest.EndOfTextTarget).ToList();
        if (withTrue.Count == 0) throw new KeditException("fact accuracy needs requests with a target_true");
        return 100.0 * Score(model, withTrue.Select(r => (r.Sentence, r.TargetTrue!)).ToList()).Count(s => s.AllTop1) / withTrue.Count;
    }

    /// <summary>Teacher-forced token accuracy of candidate after prompt (spec §15.3).</summary>
    public static double TokenAccuracy(Transformer model, string prompt, string candidate)
    {
        var tok = model.RequireTokenizer();
        var target = RequestPreparer.TargetTokens(tok, prompt, EditRequest.NormalisedTarget(candidate), $"prompt \"{prompt}\"");
        var p = tok.Encode(prompt);
        var ids = p.Concat(target).ToArray();
        var logits = model.Forward(TokenBatch.Single(ids)).Logits;
        int V = model.Config.VocabSize, hit = 0;
        for (int j = 0; j < target.Length; j++)
            if (Generator.ArgMax(logits.AsSpan((p.Length - 1 + j) * V, V)) == target[j]) hit++;
        return (double)hit / target.Length;
    }

    /// <summary>
    /// ROME's n-gram entropy of one text (<c>compute_n_gram_entropy</c>): the bigram and trigram entropies in bits
    /// over word tokens, weighted 2/3 and 4/3, averaged. Words and punctuation split as nltk's <c>word_tokenize</c>
    /// does for plain English (a regex approximation: contractions and special cases may differ).
    /// </summary>
    public static double NGramEntropy(string text)
    {
        var words = System.Text.RegularExpressions.Regex.Matches(text, @"\w+(?:'\w+)?|[^\w\s]").Select(m => m.Value).ToList();
        double[] ns = [2, 3], weights = [2.0 / 3, 4.0 / 3];
        double sum = 0;
        for (int k = 0; k < ns.Length; k++)
        {
            int n = (int)ns[k];
            var counts = new Dictionary<string, int>();
            for (int i = 0; i + n <= words.Count; i++)
            {
                string key = string.Join("\u0001", words.Skip(i).Take(n));
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
            double total = counts.Values.Sum(), h = 0;
            foreach (int c in counts.Values) { double p = c / total; h -= p * Math.Log2(p); }
            sum += weights[k] * h;
        }
        return sum / ns.Length;
    }

    /// <summary>
    /// ROME/MEMIT's generation tests: each record's <c>generation_prompts</c> continued by up to <paramref name="maxNewTokens"/>
    /// tokens with top-5 sampling (their <c>generate_fast</c>; seeded here, one seed per prompt, so a run repeats).
    /// Entropy ("GE", fluency): the n-gram entropy of each text, averaged per record, then over records. Reference score
    /// ("RS", consistency; only with <paramref name="references"/>): TF-IDF similarity of the record's generations, joined,
    /// to the snippets about its new object, joined, averaged over the records that have snippets. NaN where no record counts.
    /// </summary>
    public static (double Entropy, double Reference) Generation(Transformer model, IReadOnlyList<EditRequest> requests, ReferenceScore? references = null, int maxNewTokens = 100)
    {
        var tok = model.RequireTokenizer();
        double entropy = 0, reference = 0; int n = 0, nr = 0, seed = 0;
        foreach (var r in requests)
        {
            if (r.GenerationPrompts.Count == 0) continue;
            var texts = r.GenerationPrompts.Select(p =>
            {
                var ids = tok.Encode(p);
                int room = Math.Max(0, Math.Min(maxNewTokens, model.Config.MaxPositions - ids.Length));
                var output = Generator.Generate(model, ids, new GenerationOptions { MaxNewTokens = room, Temperature = 1f, TopK = 5, Seed = seed++ });
                return tok.Decode(ids.Concat(output).ToArray(), skipSpecialTokens: true);
            }).ToList();
            entropy += texts.Average(NGramEntropy);
            n++;
            if (references?.SnippetsFor(r) is { } snippets) { reference += references.Similarity(string.Join(" ", texts), string.Join(" ", snippets)); nr++; }
        }
        return (n > 0 ? entropy / n : double.NaN, nr > 0 ? reference / nr : double.NaN);
    }

    /// <summary>Arg-max predictions at the positions that predict <paramref name="answer"/>'s tokens after <paramref name="prompt"/> (teacher forced).</summary>
    static int[] PredictedTokens(Transformer model, string prompt, string answer)
    {
        var tok = model.RequireTokenizer();
        var target = RequestPreparer.TargetTokens(tok, prompt, EditRequest.NormalisedTarget(answer), $"prompt \"{prompt}\"");
        var p = tok.Encode(prompt);
        var logits = model.Forward(TokenBatch.Single(p.Concat(target).ToArray())).Logits;
        int V = model.Config.VocabSize;
        return Enumerable.Range(0, target.Length).Select(j => Generator.ArgMax(logits.AsSpan((p.Length - 1 + j) * V, V))).ToArray();
    }

    /// <summary>EasyEdit's token-level family; <paramref name="original"/> (the unedited model) enables locality.</summary>
    public static EasyEditScores EasyEdit(Transformer model, IReadOnlyList<EditRequest> requests, Transformer? original)
    {
        double rw = 0, rp = 0, loc = 0, port = 0; int nrp = 0, nloc = 0, nport = 0;
        foreach (var r in requests)
        {
            rw += TokenAccuracy(model, r.Sentence, r.TargetNew);
            if (r.ParaphrasePrompts.Count > 0) { rp += r.ParaphrasePrompts.Average(p => TokenAccuracy(model, p, r.TargetNew)); nrp++; }
            if (r.Portability.Count > 0) { port += r.Portability.Average(p => TokenAccuracy(model, p.Prompt, p.Answers[0])); nport++; }
            var localities = r.NeighborhoodPrompts.Select(p => (p.Prompt, p.Answer)).ToList();
            if (r.LocalityPrompt != null && r.LocalityAnswer != null) localities.Add((r.LocalityPrompt, r.LocalityAnswer));
            if (original != null && localities.Count > 0)
            {
                loc += localities.Average(p =>
                {
                    var after = PredictedTokens(model, p.Item1, p.Item2);
                    var before = PredictedTokens(original, p.Item1, p.Item2);
                    return after.Zip(before).Average(t => t.First == t.Second ? 1.0 : 0.0);
                });
                nloc++;
            }
        }
        int n = requests.Count;
        return new EasyEditScores(n, 100 * rw / n, nrp > 0 ? 100 * rp / nrp : double.NaN, nloc > 0 ? 100 * loc / nloc : double.NaN, nport > 0 ? 100 * port / nport : double.NaN);
    }

    public static ZsreScores Zsre(Transformer model, IReadOnlyList<EditRequest> requests)
    {
        double e = 0, g = 0, s = 0; int ng = 0, ns = 0;
        foreach (var r in requests)
        {
            e += TokenAccuracy(model, r.Sentence, r.TargetNew);
            if (r.ParaphrasePrompts.Count > 0) { g += r.ParaphrasePrompts.Average(p => TokenAccuracy(model, p, r.TargetNew)); ng++; }
            if (r.LocalityPrompt != null && r.LocalityAnswer != null) { s += TokenAccuracy(model, r.LocalityPrompt, r.LocalityAnswer); ns++; }
        }
        int n = requests.Count;
        return new ZsreScores(n, 100 * e / n, ng > 0 ? 100 * g / ng : double.NaN, ns > 0 ? 100 * s / ns : double.NaN);
    }

    /// <summary>Most windows in one perplexity forward (the batch the PyTorch peer uses).</summary>
    const int PerplexityBatch = 32;

    /// <summary>
    /// exp(Σ NLL / Σ predicted tokens) over documents cut into windows (first token of each window not predicted).
    /// Windows run in padded batches of similar length (at most 32 a forward and 4,096 padded tokens); only the
    /// predicting rows get logits, a chunk of rows at a time, so memory does not grow with the batch.
    /// </summary>
    public static double Perplexity(Transformer model, IEnumerable<int[]> documents, int window = 512)
    {
        window = Math.Min(window, model.Config.MaxPositions);
        var windows = new List<int[]>();
        foreach (var doc in documents)
            for (int start = 0; start < doc.Length; start += window)
                if (Math.Min(window, doc.Length - start) >= 2) windows.Add(doc.AsSpan(start, Math.Min(window, doc.Length - start)).ToArray());
        if (windows.Count == 0) throw new KeditException("perplexity: the corpus holds no predictable tokens");
        windows.Sort((x, y) => y.Length.CompareTo(x.Length));
        double nll = 0; long count = 0;
        int V = model.Config.VocabSize;
        for (int i = 0; i < windows.Count;)
        {
            int n = 1;
            while (i + n < windows.Count && n < PerplexityBatch && (n + 1) * windows[i].Length <= 4096) n++;
            var part = windows.GetRange(i, n);
            i += n;
            var batch = TokenBatch.RightPadded(part);
            // Row (b, t) predicts token t + 1 of window b.
            var rows = new List<int>(); var targets = new List<int>();
            for (int b = 0; b < part.Count; b++)
                for (int t = 0; t + 1 < part[b].Length; t++) { rows.Add(b * batch.Length + t); targets.Add(part[b][t + 1]); }
            var rowNll = new double[rows.Count];
            model.Forward(batch, new ForwardOptions
            {
                Logits = LogitsMode.Rows, LogitRows = rows,
                OnLogits = (first, count, logits) =>
                {
                    var z = logits;
                    unsafe
                    {
                        fixed (float* p = z)
                        {
                            float* pz = p;
                            Parallel.For(0, count, () => (new double[V], new double[V]), (r, _, buf) =>
                            {
                                ComputeZ.LogSoftmax(new ReadOnlySpan<float>(pz + (long)r * V, V), buf.Item1, buf.Item2);
                                rowNll[first + r] = -buf.Item1[targets[first + r]];
                                return buf;
                            }, _ => { });
                        }
                    }
                },
            });
            foreach (double v in rowNll) nll += v;
            count += rows.Count;
        }
        return Math.Exp(nll / count);
    }

    /// <summary>Mean |w| and the condition number σ_max/σ_min over the d non-zero singular values.</summary>
    public static MatrixStats Matrix(EditedLayer layer)
    {
        var w = layer.CurrentMath();
        double l1 = 0;
        foreach (var v in layer.Weight.Weight) l1 += Math.Abs(v);
        // A matrix holding NaN or ±∞ has no singular values to report (and would stall the eigensolver).
        if (!double.IsFinite(l1)) return new MatrixStats(layer.Name, l1, double.NaN, double.NaN, double.NaN);
        var c = new ConditionNumber(w).Compute();
        return new MatrixStats(layer.Name, l1 / layer.Weight.Weight.Length, c.SigmaMax, c.SigmaMin, c.Kappa);
    }
}
