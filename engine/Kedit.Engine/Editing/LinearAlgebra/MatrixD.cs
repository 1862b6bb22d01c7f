namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// A dense float64 matrix stored row-major in one array: element (r, c) is <c>Data[r * Cols + c]</c>.
/// This is the only matrix type of the editing linear algebra; all routines take and return it.
/// Math orientation follows the spec: a rewrite matrix is d×f (output × input), keys are columns of an
/// f×n matrix.
/// </summary>
public sealed class MatrixD
{
    /// <summary>Number of rows.</summary>
    public int Rows { get; }
    /// <summary>Number of columns (also the row stride of <see cref="Data"/>).</summary>
    public int Cols { get; }
    /// <summary>Row-major storage, length Rows·Cols; writable, shared (not copied).</summary>
    public double[] Data { get; }

    /// <summary>A zero matrix of the given shape.</summary>
    public MatrixD(int rows, int cols)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(nameof(rows), $"matrix shape {rows}×{cols} is negative");
        Rows = rows; Cols = cols;
        Data = new double[checked((long)rows * cols)];
    }

    /// <summary>Wraps an existing row-major array (not copied); its length must be rows·cols.</summary>
    public MatrixD(int rows, int cols, double[] data)
    {
        if (rows < 0 || cols < 0) throw new ArgumentOutOfRangeException(nameof(rows), $"matrix shape {rows}×{cols} is negative");
        ArgumentNullException.ThrowIfNull(data);
        if (data.LongLength != (long)rows * cols)
            throw new ArgumentException($"array of length {data.LongLength} cannot hold a {rows}×{cols} matrix", nameof(data));
        Rows = rows; Cols = cols; Data = data;
    }

    /// <summary>Element (r, c).</summary>
    public double this[int r, int c]
    {
        get => Data[(long)r * Cols + c];
        set => Data[(long)r * Cols + c] = value;
    }

    /// <summary>Row r as a writable span.</summary>
    public Span<double> Row(int r) => Data.AsSpan(r * Cols, Cols);

    /// <summary>The n×n identity.</summary>
    public static MatrixD Identity(int n)
    {
        var m = new MatrixD(n, n);
        for (int i = 0; i < n; i++) m.Data[(long)i * n + i] = 1.0;
        return m;
    }

    /// <summary>Builds a matrix from a float32 row-major array (widening every element).</summary>
    public static MatrixD FromSingle(int rows, int cols, ReadOnlySpan<float> data)
    {
        var m = new MatrixD(rows, cols);
        if (data.Length != m.Data.Length)
            throw new ArgumentException($"span of length {data.Length} cannot hold a {rows}×{cols} matrix", nameof(data));
        for (int i = 0; i < data.Length; i++) m.Data[i] = data[i];
        return m;
    }

    /// <summary>A deep copy.</summary>
    public MatrixD Clone() => new(Rows, Cols, (double[])Data.Clone());

    /// <summary>The transpose as a new matrix (cache-blocked copy).</summary>
    public MatrixD Transpose()
    {
        var t = new MatrixD(Cols, Rows);
        const int B = 32;
        for (int i0 = 0; i0 < Rows; i0 += B)
            for (int j0 = 0; j0 < Cols; j0 += B)
            {
                int i1 = Math.Min(Rows, i0 + B), j1 = Math.Min(Cols, j0 + B);
                for (int i = i0; i < i1; i++)
                    for (int j = j0; j < j1; j++)
                        t.Data[(long)j * Rows + i] = Data[(long)i * Cols + j];
            }
        return t;
    }

    /// <summary>Frobenius norm, computed with scaling so that it neither overflows nor underflows.</summary>
    public double FrobeniusNorm() => VectorOps.Norm2(Data);

    /// <summary>Matrix product op(a)·op(b) as a new matrix (op = transpose when the flag is set).</summary>
    public static MatrixD Multiply(MatrixD a, MatrixD b, bool transA = false, bool transB = false)
    {
        int m = transA ? a.Cols : a.Rows, n = transB ? b.Rows : b.Cols;
        var c = new MatrixD(m, n);
        DenseOps.Gemm(transA, transB, 1.0, a, b, 0.0, c);
        return c;
    }

    /// <summary>Element-wise a − b as a new matrix.</summary>
    public static MatrixD Subtract(MatrixD a, MatrixD b)
    {
        RequireSameShape(a, b, nameof(b));
        var c = new MatrixD(a.Rows, a.Cols);
        for (long i = 0; i < c.Data.LongLength; i++) c.Data[i] = a.Data[i] - b.Data[i];
        return c;
    }

    /// <summary>Element-wise a + b as a new matrix.</summary>
    public static MatrixD Add(MatrixD a, MatrixD b)
    {
        RequireSameShape(a, b, nameof(b));
        var c = new MatrixD(a.Rows, a.Cols);
        for (long i = 0; i < c.Data.LongLength; i++) c.Data[i] = a.Data[i] + b.Data[i];
        return c;
    }

    /// <summary>In place: this += alpha·other.</summary>
    public void AddScaled(double alpha, MatrixD other)
    {
        RequireSameShape(this, other, nameof(other));
        VectorOps.Axpy(alpha, other.Data, Data);
    }

    /// <summary>In place: this *= alpha.</summary>
    public void Scale(double alpha) => VectorOps.Scale(alpha, Data);

    /// <summary>The sub-block of <paramref name="rows"/>×<paramref name="cols"/> starting at (r0, c0), copied.</summary>
    public MatrixD Block(int r0, int c0, int rows, int cols)
    {
        if (r0 < 0 || c0 < 0 || rows < 0 || cols < 0 || r0 + rows > Rows || c0 + cols > Cols)
            throw new ArgumentOutOfRangeException(nameof(r0), $"block ({r0},{c0}) {rows}×{cols} is outside a {Rows}×{Cols} matrix");
        var b = new MatrixD(rows, cols);
        for (int i = 0; i < rows; i++)
            Array.Copy(Data, (long)(r0 + i) * Cols + c0, b.Data, (long)i * cols, cols);
        return b;
    }

    /// <inheritdoc/>
    /// <summary>Columns of several matrices with the same row count, side by side.</summary>
    public static MatrixD ConcatColumns(IReadOnlyList<MatrixD> parts, int rows)
    {
        var m = new MatrixD(rows, parts.Sum(p => p.Cols));
        int c = 0;
        foreach (var p in parts)
        {
            if (p.Rows != rows) throw new ArgumentException($"cannot place a {p.Rows}-row matrix among {rows}-row columns", nameof(parts));
            for (int j = 0; j < p.Cols; j++, c++)
                for (int i = 0; i < rows; i++) m[i, c] = p[i, j];
        }
        return m;
    }

    public override string ToString() => $"MatrixD {Rows}×{Cols}";

    internal static void RequireSameShape(MatrixD a, MatrixD b, string name)
    {
        if (a.Rows != b.Rows || a.Cols != b.Cols)
            throw new ArgumentException($"shape mismatch: {a.Rows}×{a.Cols} vs {b.Rows}×{b.Cols}", name);
    }

    internal static void RequireShape(MatrixD m, int rows, int cols, string name)
    {
        ArgumentNullException.ThrowIfNull(m, name);
        if (m.Rows != rows || m.Cols != cols)
            throw new ArgumentException($"{name} must be {rows}×{cols}, got {m.Rows}×{m.Cols}", name);
    }
}
