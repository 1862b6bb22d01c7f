using Kedit.Editing.LinearAlgebra;
using Kedit.Models;

namespace Kedit.Editing;

/// <summary>
/// The rewrite matrix of one layer (the MLP down projection) with its original weights kept.
/// All updates are given in math orientation ΔW (d × f, output × input, spec §2.1) and mapped to the
/// stored layout here, the one place that knows about Conv1D's transposed storage.
/// </summary>
public sealed class EditedLayer
{
    public EditedLayer(Transformer model, int layer)
    {
        if (layer < 0 || layer >= model.Config.Layers) throw new KeditException($"layer {layer} is outside the model's {model.Config.Layers} layers");
        Layer = layer;
        Weight = model.Weights.Layers[layer].MlpOut;
        Original = (float[])Weight.Weight.Clone();
        D = Weight.Out; F = Weight.In;
        Name = model.Config.DownProjName(layer);
    }

    public int Layer { get; }
    /// <summary>HF tensor name of the edited weight.</summary>
    public string Name { get; }
    public Linear Weight { get; }
    /// <summary>W0 in the stored layout (bit-exact copy, for rollback and for D4S's restore).</summary>
    public float[] Original { get; }
    public int D { get; }
    public int F { get; }

    int Index(int row, int col) => Weight.InputMajor ? col * D + row : row * F + col;

    /// <summary>W = W0 + float32(scale·ΔW) (one rounding, as the reference's W0 + upd.float()).</summary>
    public void SetDelta(MatrixD delta, double scale = 1.0)
    {
        Check(delta);
        var w = Weight.Weight;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < F; j++)
            {
                int k = Index(i, j);
                w[k] = Original[k] + (float)(scale * delta[i, j]);
            }
        Weight.MarkChanged();
    }

    /// <summary>W += float32(scale·ΔW) (plain sequential accumulation).</summary>
    public void AddDelta(MatrixD delta, double scale = 1.0)
    {
        Check(delta);
        var w = Weight.Weight;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < F; j++) w[Index(i, j)] += (float)(scale * delta[i, j]);
        Weight.MarkChanged();
    }

    public void Restore()
    {
        Original.CopyTo(Weight.Weight, 0);
        Weight.MarkChanged();
    }

    /// <summary>Current W − W0 in math orientation (float64).</summary>
    public MatrixD CurrentDelta() => ToMath(Weight.Weight, subtractOriginal: true);

    /// <summary>
    /// σ₁ of <see cref="CurrentDelta"/>, built in <paramref name="scratch"/> (made on first use): callers walking every
    /// edited layer reuse one d×f float64 matrix (the layers have the same shape) instead of one each.
    /// </summary>
    public double CurrentDeltaNorm(ref MatrixD? scratch) =>
        SpectralNorm.Largest(ToMath(Weight.Weight, subtractOriginal: true, scratch ??= new MatrixD(D, F))).Value;

    /// <summary>W0 in math orientation (float64).</summary>
    public MatrixD OriginalMath() => ToMath(Original, subtractOriginal: false);

    public MatrixD CurrentMath() => ToMath(Weight.Weight, subtractOriginal: false);

    MatrixD ToMath(float[] w, bool subtractOriginal, MatrixD? into = null)
    {
        var m = into ?? new MatrixD(D, F);
        Check(m);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < F; j++)
            {
                int k = Index(i, j);
                m[i, j] = subtractOriginal ? (double)w[k] - Original[k] : w[k];
            }
        return m;
    }

    /// <summary>A math-orientation matrix (d × f) in this weight's stored layout, as float32.</summary>
    public float[] ToStored(MatrixD delta)
    {
        var r = new float[D * F];
        WriteStored(delta, r);
        return r;
    }

    /// <summary>Writes <see cref="ToStored"/> of <paramref name="delta"/> into <paramref name="into"/> (d·f values).</summary>
    public void WriteStored(MatrixD delta, Span<float> into)
    {
        Check(delta);
        CheckStored(into);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < F; j++) into[Index(i, j)] = (float)delta[i, j];
    }

    /// <summary>
    /// Writes ToStored(CurrentDelta()) into <paramref name="into"/> (d·f values) without the float64 d×f matrix between:
    /// the same values, as each is W − W0 in float64 rounded once to float32.
    /// </summary>
    public void WriteCurrentDelta(Span<float> into)
    {
        CheckStored(into);
        var w = Weight.Weight;
        for (int k = 0; k < into.Length; k++) into[k] = (float)((double)w[k] - Original[k]);
    }

    void CheckStored(Span<float> into)
    {
        if (into.Length != D * F) throw new ArgumentException($"layer {Layer}: a stored matrix has {D * F} values, the buffer {into.Length}", nameof(into));
    }

    /// <summary>Shape of the stored tensor ([f, d] for Conv1D, [d, f] for Linear).</summary>
    public long[] StoredShape => Weight.InputMajor ? new long[] { F, D } : new long[] { D, F };

    /// <summary>Sets W from a full matrix in math orientation (PRUNE's restrained weights).</summary>
    public void SetMath(MatrixD w)
    {
        Check(w);
        for (int i = 0; i < D; i++)
            for (int j = 0; j < F; j++) Weight.Weight[Index(i, j)] = (float)w[i, j];
        Weight.MarkChanged();
    }

    void Check(MatrixD m)
    {
        if (m.Rows != D || m.Cols != F) throw new ArgumentException($"update for layer {Layer} is {m.Rows}×{m.Cols}, expected {D}×{F} (d × f)");
    }
}
