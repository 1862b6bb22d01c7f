using Kedit.Models;

namespace Kedit.Backends;

/// <summary>Argument checks shared by every <see cref="IBackwardBackend"/>, so all backends reject the same calls.</summary>
internal static class BackwardShapes
{
    public static void Shape(string op, string name, Tensor t, int rows, int cols)
    {
        if (t.Rows != rows || t.Cols != cols)
            throw new ArgumentException($"{op}: {name} is [{t.Rows}, {t.Cols}], expected [{rows}, {cols}]");
    }

    public static void LinearInput(Tensor dy, Linear w, Tensor dx)
    {
        Shape($"{w.Name} input backward", "dy", dy, dy.Rows, w.Out);
        Shape($"{w.Name} input backward", "dx", dx, dy.Rows, w.In);
    }

    public static void LinearWeight(Tensor x, Tensor dy, Linear w, Tensor dWeight, Tensor? dBias)
    {
        string op = $"{w.Name} weight backward";
        Shape(op, "x", x, x.Rows, w.In);
        Shape(op, "dy", dy, x.Rows, w.Out);
        Shape(op, "dWeight", dWeight, w.InputMajor ? w.In : w.Out, w.InputMajor ? w.Out : w.In);
        if (dBias != null) Shape(op, "dBias", dBias, 1, w.Out);
    }

    public static void Norm(string op, Tensor x, Tensor dy, float[] gamma, Tensor dx, Tensor? dGamma, Tensor? dBeta)
    {
        Shape(op, "dy", dy, x.Rows, x.Cols);
        Shape(op, "dx", dx, x.Rows, x.Cols);
        if (gamma.Length != x.Cols) throw new ArgumentException($"{op}: γ has {gamma.Length} values for rows of {x.Cols}");
        if (dGamma != null) Shape(op, "dγ", dGamma, 1, x.Cols);
        if (dBeta != null) Shape(op, "dβ", dBeta, 1, x.Cols);
    }

    public static void Attention(Tensor qkv, Tensor dOut, int batch, int tokens, bool[] keyValid, int heads, int kvHeads, int headDim, Tensor dQkv)
    {
        const string op = "attention backward";
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0 || headDim <= 0)
            throw new ArgumentException($"{op}: {heads} query heads cannot share {kvHeads} kv heads of dimension {headDim}");
        int rows = batch * tokens, cols = (heads + 2 * kvHeads) * headDim;
        Shape(op, "qkv", qkv, rows, cols);
        Shape(op, "dOut", dOut, rows, heads * headDim);
        Shape(op, "dQkv", dQkv, rows, cols);
        if (keyValid.Length < rows) throw new ArgumentException($"{op}: {keyValid.Length} key-validity flags for {rows} rows");
    }

    public static void Rope(Tensor dQkv, int heads, int kvHeads, int headDim, ReadOnlySpan<int> positions, RopeTables tables)
    {
        if ((heads + kvHeads) * headDim > dQkv.Cols) throw new ArgumentException($"rope backward: {heads}+{kvHeads} heads of {headDim} exceed rows of {dQkv.Cols}");
        if (2 * tables.Half > headDim) throw new ArgumentException($"rope backward: rotary dimension {2 * tables.Half} exceeds the head dimension {headDim}");
        if (positions.Length < dQkv.Rows) throw new ArgumentException($"rope backward: {positions.Length} positions for {dQkv.Rows} rows");
        for (int r = 0; r < dQkv.Rows; r++)
            if ((uint)positions[r] >= (uint)tables.MaxPositions) throw new KeditException($"position {positions[r]} exceeds the model's {tables.MaxPositions} positions");
    }

    public static void LossRows(string op, Tensor logits, int firstRow, int count, Tensor dLogits, int outLength)
    {
        Shape(op, "dLogits", dLogits, logits.Rows, logits.Cols);
        if (firstRow < 0 || firstRow + count > logits.Rows) throw new ArgumentOutOfRangeException(nameof(firstRow), $"{op}: rows {firstRow}…{firstRow + count - 1} of {logits.Rows} logit rows");
        if (outLength < count) throw new ArgumentException($"{op}: an output span of {outLength} for {count} rows");
    }

    public static void Targets(ReadOnlySpan<int> targets, int vocab)
    {
        foreach (int t in targets)
            if ((uint)t >= (uint)vocab) throw new KeditException($"target token id {t} is outside the vocabulary (size {vocab})");
    }

    public static void Embedding(Tensor dx, ReadOnlySpan<int> ids, Tensor dTable)
    {
        if (dTable.Cols != dx.Cols) throw new ArgumentException($"embedding backward: dx rows of {dx.Cols} for a table of width {dTable.Cols}");
        if (ids.Length > dx.Rows) throw new ArgumentException($"embedding backward: {ids.Length} ids for {dx.Rows} gradient rows");
        foreach (int id in ids)
            if (id >= dTable.Rows) throw new KeditException($"embedding backward: token id {id} is outside the table of {dTable.Rows} rows");
    }
}
