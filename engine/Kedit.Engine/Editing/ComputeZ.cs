using Kedit.Autodiff;
using Kedit.Editing.Inputs;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>compute_z's optimiser settings (spec §7, §8): Adam on δ with NLL + KL + norm penalty, clamp, early stop.</summary>
public sealed record ZSettings(int Steps, double Lr, double WeightDecay, double ClampNormFactor, double KlFactor,
    double EarlyStopLoss = 0.05, double Beta1 = 0.9, double Beta2 = 0.999, double Eps = 1e-8)
{
    public static ZSettings From(HParams h, int numLayers)
    {
        if (h.VLossLayer != numLayers - 1)
            throw new KeditException($"{h.Source}: v_loss_layer {h.VLossLayer} is not supported; the engine takes the loss at the model's output (v_loss_layer = {numLayers - 1}), as every published configuration does");
        return new(h.VNumGradSteps, h.VLr, h.VWeightDecay, h.ClampNormFactor, h.KlFactor, h.EarlyStopLoss, h.Adam.Beta1, h.Adam.Beta2, h.Adam.Eps);
    }
}

/// <summary>One evaluated iteration of compute_z (the quantities of the fixtures' z_traces.json).</summary>
public sealed record ZStep(int Iteration, double Loss, double Nll, double Kl, double WeightDecay, double AvgProb, double DeltaNorm);

public sealed record ZResult(float[] Z, float[] TargetInit, float[] Delta, float[] Grad0, IReadOnlyList<ZStep> Trace);

/// <summary>
/// compute_z (spec §7; ROME's compute_v with <see cref="HookPoint.MlpValue"/>): the vector z that,
/// written at the edited layer's output at the subject's last token, makes the model predict the
/// target. δ enters at the lookup row of every sequence; blocks up to the layer run once (they do
/// not depend on δ), each iteration runs only the blocks above it, forward and backward.
/// <para>
/// Several requests are optimised together (<see cref="RunBatch"/>): their rows share one padded batch,
/// so each step reads the weights once for all of them and the GEMMs get many rows, while every request
/// keeps its own δ, Adam state, loss and early stop — sequences do not interact, so each request's
/// δ follows the same iterates as when run alone (up to rounding: padding to a longer batch changes
/// some reduction orders).
/// </para>
/// </summary>
public static class ComputeZ
{
    /// <summary>Rows (sequences) one batched run holds at most; more requests run in several batches.</summary>
    public const int MaxBatchRows = 96;

    /// <summary>
    /// Bytes of saved activations one batched run may hold (the tape keeps each block's intermediates for every
    /// position above the edited layer): GPT-2-small at layer 5 fits ~2,400 positions, GPT-J one request.
    /// </summary>
    public const long MaxTapeBytes = 1L << 30;

    public static ZResult Run(Transformer model, PreparedRequest req, int layer, HookPoint point, ZSettings s, CancellationToken ct = default) =>
        RunBatch(model, new[] { req }, layer, point, s, ct)[0];

    /// <summary>compute_z for every request, batched up to <see cref="MaxBatchRows"/> rows and <see cref="MaxTapeBytes"/> of tape at a time.</summary>
    public static ZResult[] RunBatch(Transformer model, IReadOnlyList<PreparedRequest> requests, int layer, HookPoint point, ZSettings s, CancellationToken ct = default)
    {
        if (point is not (HookPoint.BlockOutput or HookPoint.MlpValue)) throw new ArgumentException("δ enters at the block output (MEMIT) or the MLP output (ROME)");
        var results = new List<ZResult>();
        foreach (var (start, count) in PlanBatches(model.Config, requests, layer, MaxTapeBytes))
            results.AddRange(RunTogether(model, requests.Skip(start).Take(count).ToList(), layer, point, s, ct));
        return results.ToArray();
    }

    /// <summary>
    /// Consecutive runs of requests that fit one batch: at most <see cref="MaxBatchRows"/> rows and
    /// <paramref name="tapeBytes"/> of saved activations (rows × longest row × per-position estimate); a
    /// request that alone exceeds them still runs, alone.
    /// </summary>
    internal static List<(int Start, int Count)> PlanBatches(ModelConfig c, IReadOnlyList<PreparedRequest> requests, int layer, long tapeBytes)
    {
        // Roughly what the tape saves per position: a block's d-wide and f-wide intermediates, for each layer above.
        long bytesPerPosition = Math.Max(1, c.Layers - layer - 1) * (8L * c.Hidden + 3L * c.Intermediate) * sizeof(float);
        var plan = new List<(int, int)>();
        for (int start = 0; start < requests.Count;)
        {
            int end = start, rows = 0, longest = 0;
            while (end < requests.Count)
            {
                var r = requests[end];
                int moreRows = rows + RowCount(r), moreLongest = Math.Max(longest, LongestRow(r));
                if (end > start && (moreRows > MaxBatchRows || (long)moreRows * moreLongest * bytesPerPosition > tapeBytes)) break;
                rows = moreRows; longest = moreLongest; end++;
            }
            plan.Add((start, end - start));
            start = end;
        }
        return plan;
    }

    static int RowCount(PreparedRequest r) => r.Contexts.Count() + r.KlRows.Count;

    static int LongestRow(PreparedRequest r) =>
        Math.Max(r.Contexts.Max(x => x.Ids.Length + r.Target.Length - 1), r.KlRows.Count > 0 ? r.KlRows.Max(x => x.Ids.Length) : 0);

    /// <summary>One request's part of a batched run: its rows and logit rows, and its own optimiser state.</summary>
    sealed class Problem
    {
        public required PreparedRequest Request;
        public required int FirstRow, Rewrites, T, FirstLogit, Kl;
        public required float[] TargetInit;
        public required double InitNorm;
        public float[] Delta = [];
        public double[] M = [], V = [];
        public double[]? Lp0;                // the KL rows' log-probabilities at the first iteration (δ = 0)
        public float[]? Grad0;
        public readonly List<ZStep> Trace = new();
        public bool Done;
        public int Rows => Rewrites + Kl;
        public int KlBase => FirstLogit + Rewrites * T; // first KL logit row
    }

    static ZResult[] RunTogether(Transformer model, IReadOnlyList<PreparedRequest> requests, int layer, HookPoint point, ZSettings s, CancellationToken ct)
    {
        var c = model.Config;
        int d = c.Hidden, V = c.VocabSize;
        // Rows: each request's rewriting rows (context + target prefix) then its KL rows.
        var rows = new List<LookupRow>();
        foreach (var req in requests) { rows.AddRange(req.Contexts.Select(req.RewriteRow)); rows.AddRange(req.KlRows); }
        var batch = TokenBatch.RightPadded(rows.Select(r => (IReadOnlyList<int>)r.Ids).ToList());
        int L = batch.Length;

        // Blocks 0..layer once: the residual after the edited layer, and h* at each request's first row's lookup.
        var hooks = new ForwardHooks { StopAfterLayer = layer }.Capture(layer, HookPoint.BlockOutput);
        if (point == HookPoint.MlpValue) hooks.Capture(layer, HookPoint.MlpValue);
        model.Forward(batch, new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
        var baseResidual = hooks.Captured(layer, HookPoint.BlockOutput);
        var initSource = hooks.Captured(layer, point);

        // Logit rows: per request, each rewriting row's last T positions (predicting the target), then each KL lookup.
        var logitRows = new List<int>();
        var problems = new Problem[requests.Count];
        var owner = new List<int>(); // logit row → problem
        for (int j = 0, row = 0; j < requests.Count; j++)
        {
            var req = requests[j];
            int T = req.Target.Length, rewrites = req.Contexts.Count();
            var init = initSource.AsSpan(rows[row].Index * d + row * L * d, d).ToArray();
            var pr = problems[j] = new Problem
            {
                Request = req, FirstRow = row, Rewrites = rewrites, T = T, FirstLogit = logitRows.Count, Kl = req.KlRows.Count,
                TargetInit = init, InitNorm = Norm(init), Delta = new float[d], M = new double[d], V = new double[d],
            };
            for (int i = 0; i < rewrites; i++)
                for (int t = 0; t < T; t++) logitRows.Add((row + i) * L + rows[row + i].Ids.Length - T + t);
            for (int k = 0; k < pr.Kl; k++) logitRows.Add((row + rewrites + k) * L + rows[row + rewrites + k].Index);
            while (owner.Count < logitRows.Count) owner.Add(j);
            row += pr.Rows;
        }
        var logitRowArray = logitRows.ToArray();

        using var tape = new TransformerTape(model, batch, layer + 1);
        // Buffers of every step, allocated once: residual in, logits out, their gradients, and the
        // float64 log-probabilities / probabilities of each logit row.
        int nLogit = logitRowArray.Length;
        var x = new float[baseResidual.Length];
        var dx = new float[baseResidual.Length];
        var logits = new float[nLogit * V];
        var dLogits = new float[nLogit * V];
        var logProbs = new double[nLogit * V];
        var probs = new double[nLogit * V];
        var rowLoss = new double[nLogit];
        for (int it = 0; it < s.Steps && problems.Any(p => !p.Done); it++)
        {
            ct.ThrowIfCancellationRequested();
            baseResidual.CopyTo(x, 0);
            foreach (var pr in problems)
                for (int r = pr.FirstRow; r < pr.FirstRow + pr.Rows; r++)
                {
                    var dst = x.AsSpan((r * L + rows[r].Index) * d, d);
                    System.Numerics.Tensors.TensorPrimitives.Add(dst, pr.Delta, dst);
                }
            tape.Forward(x, logitRowArray, logits);

            foreach (var pr in problems) pr.Lp0 ??= new double[pr.Kl * V];
            bool firstStep = it == 0;
            // Each logit row is independent (50k-wide softmax in float64): one row per work item.
            Parallel.For(0, nLogit, lr =>
            {
                var pr = problems[owner[lr]];
                var lp = logProbs.AsSpan(lr * V, V); var p = probs.AsSpan(lr * V, V); var g = dLogits.AsSpan(lr * V, V);
                if (pr.Done) { g.Clear(); return; }
                LogSoftmax(logits.AsSpan(lr * V, V), lp, p);
                if (lr < pr.KlBase)
                {
                    // NLL: mean over rewriting rows of the mean over target tokens; ∂(−lp[t]/(T·n))/∂logits = (p − onehot)/(T·n).
                    double nllScale = 1.0 / (pr.T * pr.Rewrites);
                    int target = pr.Request.Target[(lr - pr.FirstLogit) % pr.T];
                    rowLoss[lr] = -lp[target];
                    for (int q = 0; q < V; q++) g[q] = (float)(nllScale * p[q]);
                    g[target] -= (float)nllScale;
                }
                else
                {
                    // KL(p ‖ p0) against the first iteration's distribution; ∂f/∂z_q = p_q · ((lp_q − lp0_q) − f).
                    double klScale = s.KlFactor / pr.Kl;
                    var reference = pr.Lp0.AsSpan((lr - pr.KlBase) * V, V);
                    if (firstStep) lp.CopyTo(reference);
                    double f = 0;
                    for (int q = 0; q < V; q++) f += p[q] * (lp[q] - reference[q]);
                    rowLoss[lr] = f;
                    for (int q = 0; q < V; q++) g[q] = (float)(klScale * p[q] * ((lp[q] - reference[q]) - f));
                }
            });

            // Each request's loss and early stop; a request that stops before its first gradient still takes
            // the backward below (grad0 is part of its result).
            var stopping = new bool[problems.Length];
            bool needBackward = false;
            for (int j = 0; j < problems.Length; j++)
            {
                var pr = problems[j];
                if (pr.Done) continue;
                double nll = 0, avgProb = 0;
                for (int i = 0; i < pr.Rewrites; i++)
                {
                    double rowNll = 0;
                    for (int t = 0; t < pr.T; t++) rowNll += rowLoss[pr.FirstLogit + i * pr.T + t];
                    rowNll /= pr.T;
                    nll += rowNll;
                    avgProb += Math.Exp(-rowNll);
                }
                nll /= pr.Rewrites; avgProb /= pr.Rewrites;
                double kl = 0;
                for (int k = 0; k < pr.Kl; k++) kl += rowLoss[pr.KlBase + k];
                kl *= s.KlFactor / pr.Kl;
                double dn = Norm(pr.Delta);
                double wd = s.WeightDecay * dn / (pr.InitNorm * pr.InitNorm);
                double loss = nll + kl + wd;
                pr.Trace.Add(new ZStep(it, loss, nll, kl, wd, avgProb, dn));
                stopping[j] = loss < s.EarlyStopLoss || it == s.Steps - 1;
                if (stopping[j] && pr.Grad0 != null) pr.Done = true;
                else needBackward = true;
            }
            if (!needBackward) continue;

            tape.Backward(dLogits, dx);
            for (int j = 0; j < problems.Length; j++)
            {
                var pr = problems[j];
                if (pr.Done) continue;
                var grad = new double[d];
                for (int r = pr.FirstRow; r < pr.FirstRow + pr.Rows; r++)
                {
                    int o = (r * L + rows[r].Index) * d;
                    for (int q = 0; q < d; q++) grad[q] += dx[o + q];
                }
                double dn = Norm(pr.Delta), n2 = pr.InitNorm * pr.InitNorm;
                if (dn > 0) for (int q = 0; q < d; q++) grad[q] += s.WeightDecay * pr.Delta[q] / dn / n2;
                pr.Grad0 ??= grad.Select(g => (float)g).ToArray();
                if (stopping[j]) { pr.Done = true; continue; }
                AdamStep(pr, grad, it + 1, s);
            }
        }
        return problems.Select(pr =>
        {
            var z = new float[d];
            for (int q = 0; q < d; q++) z[q] = pr.TargetInit[q] + pr.Delta[q];
            return new ZResult(z, pr.TargetInit, pr.Delta, pr.Grad0 ?? new float[d], pr.Trace);
        }).ToArray();
    }

    /// <summary>torch Adam (no weight decay), bias-corrected, then the norm clamp of δ.</summary>
    static void AdamStep(Problem pr, double[] grad, int t, ZSettings s)
    {
        var delta = pr.Delta;
        double bc1 = 1 - Math.Pow(s.Beta1, t), bc2 = 1 - Math.Pow(s.Beta2, t);
        for (int q = 0; q < delta.Length; q++)
        {
            pr.M[q] = s.Beta1 * pr.M[q] + (1 - s.Beta1) * grad[q];
            pr.V[q] = s.Beta2 * pr.V[q] + (1 - s.Beta2) * grad[q] * grad[q];
            delta[q] -= (float)(s.Lr / bc1 * pr.M[q] / (Math.Sqrt(pr.V[q]) / Math.Sqrt(bc2) + s.Eps));
        }
        double maxNorm = s.ClampNormFactor * pr.InitNorm, newNorm = Norm(delta);
        if (newNorm > maxNorm)
            for (int q = 0; q < delta.Length; q++) delta[q] = (float)(delta[q] * (maxNorm / newNorm));
    }

    internal static double Norm(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (var v in x) s += (double)v * v;
        return Math.Sqrt(s);
    }

    /// <summary>Log-softmax of one logit row in float64 (a new array).</summary>
    internal static double[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        var logProbs = new double[logits.Length];
        LogSoftmax(logits, logProbs, new double[logits.Length]);
        return logProbs;
    }

    /// <summary>
    /// Log-softmax of one logit row in float64: <paramref name="logProbs"/> = z − logsumexp(z) and
    /// <paramref name="probs"/> = exp(logProbs) (vectorised; the exponentials are computed once).
    /// </summary>
    internal static void LogSoftmax(ReadOnlySpan<float> logits, Span<double> logProbs, Span<double> probs)
    {
        double max = System.Numerics.Tensors.TensorPrimitives.Max(logits);
        for (int i = 0; i < logits.Length; i++) logProbs[i] = logits[i] - max; // exact: a difference of two floats
        System.Numerics.Tensors.TensorPrimitives.Exp(logProbs, probs);
        double sum = System.Numerics.Tensors.TensorPrimitives.Sum(probs);
        System.Numerics.Tensors.TensorPrimitives.Subtract(logProbs, Math.Log(sum), logProbs);
        System.Numerics.Tensors.TensorPrimitives.Multiply(probs, 1 / sum, probs);
    }
}
