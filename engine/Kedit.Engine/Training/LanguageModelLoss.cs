using Kedit.Autodiff;
using Kedit.Models;

namespace Kedit.Training;

/// <summary>
/// Next-token cross-entropy of a GPT-2 model over a padded batch, with its gradient for every
/// parameter: embeddings are computed here, the blocks and the (tied) head run on
/// <see cref="TransformerTape"/> from layer 0, and the tape's gradient at the residual stream is
/// scattered back into the token and position embedding gradients.
/// </summary>
public static class LanguageModelLoss
{
    /// <summary>
    /// Mean cross-entropy over every real position whose next token is real; accumulates the
    /// gradient of that mean into <paramref name="grads"/> (keyed by parameter array). Returns the
    /// loss and the number of predicted tokens.
    /// </summary>
    public static (double Loss, int Predicted) ForwardBackward(Transformer model, TokenBatch batch, ParameterGrads grads)
    {
        var (loss, n, tape, dLogits) = Forward(model, batch, wantGradient: true);
        if (n == 0) return (0, 0);
        var dx = tape!.Backward(dLogits!, grads);
        ScatterEmbeddingGrad(model, batch, dx, grads);
        return (loss, n);
    }

    /// <summary>Mean cross-entropy only (no gradient); also returns the number of predicted tokens.</summary>
    public static (double Loss, int Predicted) Evaluate(Transformer model, TokenBatch batch)
    {
        var (loss, n, _, _) = Forward(model, batch, wantGradient: false);
        return (loss, n);
    }

    static (double Loss, int N, TransformerTape? Tape, float[]? DLogits) Forward(Transformer model, TokenBatch batch, bool wantGradient)
    {
        var c = model.Config; var w = model.Weights;
        if (c.Architecture != Architecture.Gpt2) throw new KeditException($"training supports GPT-2 models only, not {c.ModelType}");
        int B = batch.Size, T = batch.Length, d = c.Hidden, V = c.VocabSize;
        var positions = Positions(batch);
        var x = new float[B * T * d];
        var logitRows = new List<int>();
        var targets = new List<int>();
        for (int r = 0; r < B * T; r++)
        {
            if (!batch.Mask[r]) continue;
            int id = batch.Ids[r], pos = positions[r];
            if ((uint)id >= (uint)V) throw new KeditException($"token id {id} is outside the model's vocabulary ({V})");
            if (pos >= c.MaxPositions) throw new KeditException($"position {pos} exceeds the model's {c.MaxPositions} positions");
            var dst = x.AsSpan(r * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(w.TokenEmbedding.AsSpan(id * d, d), w.PositionEmbedding!.AsSpan(pos * d, d), dst);
            if (r % T + 1 < T && batch.Mask[r + 1]) { logitRows.Add(r); targets.Add(batch.Ids[r + 1]); }
        }
        int n = logitRows.Count;
        if (n == 0) return (0, 0, null, null);
        var tape = new TransformerTape(model, batch, 0);
        var logits = tape.Forward(x, logitRows.ToArray());
        var rowLoss = new double[n];
        float inv = 1f / n;
        Parallel.For(0, n, i =>
        {
            var row = logits.AsSpan(i * V, V);
            float max = System.Numerics.Tensors.TensorPrimitives.Max(row);
            double sum = 0;
            for (int v = 0; v < V; v++) sum += Math.Exp(row[v] - max);
            int t = targets[i];
            rowLoss[i] = Math.Log(sum) - (row[t] - max);
            if (!wantGradient) return;
            float invSum = (float)(1.0 / sum);
            for (int v = 0; v < V; v++) row[v] = MathF.Exp(row[v] - max) * invSum * inv;
            row[t] -= inv;
        });
        return (rowLoss.Sum() / n, n, wantGradient ? tape : null, wantGradient ? logits : null);
    }

    /// <summary>Positions as the model assigns them: each sequence counts its real tokens from 0.</summary>
    internal static int[] Positions(TokenBatch batch)
    {
        var p = new int[batch.Size * batch.Length];
        for (int b = 0; b < batch.Size; b++)
            for (int t = 0, seen = 0; t < batch.Length; t++)
                p[b * batch.Length + t] = batch.Mask[b * batch.Length + t] ? seen++ : 0;
        return p;
    }

    static void ScatterEmbeddingGrad(Transformer model, TokenBatch batch, float[] dx, ParameterGrads grads)
    {
        var w = model.Weights; int d = model.Config.Hidden;
        var gWte = grads.For(w.TokenEmbedding);   // the same array the tied lm_head's gradient went into
        var gWpe = grads.For(w.PositionEmbedding!);
        var positions = Positions(batch);
        for (int r = 0; r < batch.Ids.Length; r++)
        {
            if (!batch.Mask[r]) continue;
            var g = dx.AsSpan(r * d, d);
            var te = gWte.AsSpan(batch.Ids[r] * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(te, g, te);
            var pe = gWpe.AsSpan(positions[r] * d, d);
            System.Numerics.Tensors.TensorPrimitives.Add(pe, g, pe);
        }
    }
}
