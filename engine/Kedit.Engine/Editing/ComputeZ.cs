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
/// </summary>
public static class ComputeZ
{
    public static ZResult Run(Transformer model, PreparedRequest req, int layer, HookPoint point, ZSettings s, CancellationToken ct = default)
    {
        if (point is not (HookPoint.BlockOutput or HookPoint.MlpValue)) throw new ArgumentException("δ enters at the block output (MEMIT) or the MLP output (ROME)");
        var c = model.Config;
        int d = c.Hidden, V = c.VocabSize, T = req.Target.Length;
        var rewrite = req.Contexts.Select(req.RewriteRow).ToList();
        var rows = rewrite.Concat(req.KlRows).ToList();
        var batch = TokenBatch.RightPadded(rows.Select(r => (IReadOnlyList<int>)r.Ids).ToList());
        int L = batch.Length;

        // Blocks 0..layer once: the residual after the edited layer, and h* at the first row's lookup.
        var hooks = new ForwardHooks { StopAfterLayer = layer }.Capture(layer, HookPoint.BlockOutput);
        if (point == HookPoint.MlpValue) hooks.Capture(layer, HookPoint.MlpValue);
        model.Forward(batch, new ForwardOptions { Hooks = hooks, Logits = LogitsMode.None });
        var baseResidual = hooks.Captured(layer, HookPoint.BlockOutput);
        var initSource = hooks.Captured(layer, point);
        var targetInit = initSource.AsSpan(rows[0].Index * d, d).ToArray();
        double initNorm = Norm(targetInit);

        // Logit rows: each rewriting row's last T positions (predicting the target), then each KL lookup.
        var logitRows = new List<int>();
        for (int i = 0; i < rewrite.Count; i++)
            for (int j = 0; j < T; j++) logitRows.Add(i * L + rewrite[i].Ids.Length - T + j);
        for (int k = 0; k < req.KlRows.Count; k++) logitRows.Add((rewrite.Count + k) * L + req.KlRows[k].Index);
        var logitRowArray = logitRows.ToArray();
        int nKl = req.KlRows.Count, klBase = rewrite.Count * T;

        using var tape = new TransformerTape(model, batch, layer + 1);
        var delta = new float[d];
        var m = new double[d]; var v = new double[d];
        float[]? grad0 = null;
        var trace = new List<ZStep>();
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
        double[]? lp0 = null; // the KL rows' log-probabilities at the first iteration (δ = 0)
        double nllScale = 1.0 / (T * rewrite.Count), klScale = s.KlFactor / nKl;
        for (int it = 0; it < s.Steps; it++)
        {
            ct.ThrowIfCancellationRequested();
            baseResidual.CopyTo(x, 0);
            for (int r = 0; r < rows.Count; r++)
            {
                var dst = x.AsSpan((r * L + rows[r].Index) * d, d);
                System.Numerics.Tensors.TensorPrimitives.Add(dst, delta, dst);
            }
            tape.Forward(x, logitRowArray, logits);

            bool firstStep = lp0 == null;
            lp0 ??= new double[nKl * V];
            // Each logit row is independent (50k-wide softmax in float64): one row per work item.
            Parallel.For(0, nLogit, lr =>
            {
                var lp = logProbs.AsSpan(lr * V, V); var p = probs.AsSpan(lr * V, V); var g = dLogits.AsSpan(lr * V, V);
                LogSoftmax(logits.AsSpan(lr * V, V), lp, p);
                if (lr < klBase)
                {
                    // NLL: mean over rewriting rows of the mean over target tokens; ∂(−lp[t]/(T·n))/∂logits = (p − onehot)/(T·n).
                    int target = req.Target[lr % T];
                    rowLoss[lr] = -lp[target];
                    for (int q = 0; q < V; q++) g[q] = (float)(nllScale * p[q]);
                    g[target] -= (float)nllScale;
                }
                else
                {
                    // KL(p ‖ p0) against the first iteration's distribution; ∂f/∂z_q = p_q · ((lp_q − lp0_q) − f).
                    var reference = lp0.AsSpan((lr - klBase) * V, V);
                    if (firstStep) lp.CopyTo(reference);
                    double f = 0;
                    for (int q = 0; q < V; q++) f += p[q] * (lp[q] - reference[q]);
                    rowLoss[lr] = f;
                    for (int q = 0; q < V; q++) g[q] = (float)(klScale * p[q] * ((lp[q] - reference[q]) - f));
                }
            });
            double nll = 0, avgProb = 0;
            for (int i = 0; i < rewrite.Count; i++)
            {
                double rowNll = 0;
                for (int j = 0; j < T; j++) rowNll += rowLoss[i * T + j];
                rowNll /= T;
                nll += rowNll;
                avgProb += Math.Exp(-rowNll);
            }
            nll /= rewrite.Count; avgProb /= rewrite.Count;
            double kl = 0;
            for (int k = 0; k < nKl; k++) kl += rowLoss[klBase + k];
            kl *= klScale;

            double dn = Norm(delta);
            double wd = s.WeightDecay * dn / (initNorm * initNorm);
            double loss = nll + kl + wd;
            trace.Add(new ZStep(it, loss, nll, kl, wd, avgProb, dn));

            bool stop = loss < s.EarlyStopLoss || it == s.Steps - 1;
            if (stop && grad0 != null) break;

            tape.Backward(dLogits, dx);
            var grad = new double[d];
            for (int r = 0; r < rows.Count; r++)
            {
                int o = (r * L + rows[r].Index) * d;
                for (int q = 0; q < d; q++) grad[q] += dx[o + q];
            }
            if (dn > 0) for (int q = 0; q < d; q++) grad[q] += s.WeightDecay * delta[q] / dn / (initNorm * initNorm);
            grad0 ??= grad.Select(g => (float)g).ToArray();
            if (stop) break;

            // torch Adam (no weight decay): bias-corrected first and second moments.
            int t = it + 1;
            double bc1 = 1 - Math.Pow(s.Beta1, t), bc2 = 1 - Math.Pow(s.Beta2, t);
            for (int q = 0; q < d; q++)
            {
                m[q] = s.Beta1 * m[q] + (1 - s.Beta1) * grad[q];
                v[q] = s.Beta2 * v[q] + (1 - s.Beta2) * grad[q] * grad[q];
                delta[q] -= (float)(s.Lr / bc1 * m[q] / (Math.Sqrt(v[q]) / Math.Sqrt(bc2) + s.Eps));
            }
            double maxNorm = s.ClampNormFactor * initNorm, newNorm = Norm(delta);
            if (newNorm > maxNorm)
                for (int q = 0; q < d; q++) delta[q] = (float)(delta[q] * (maxNorm / newNorm));
        }
        var z = new float[d];
        for (int q = 0; q < d; q++) z[q] = targetInit[q] + delta[q];
        return new ZResult(z, targetInit, delta, grad0 ?? new float[d], trace);
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
