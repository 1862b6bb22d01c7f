using Kedit.Editing.LinearAlgebra;

namespace Kedit.Backends;

/// <summary>
/// The editing linear algebra on an ILGPU accelerator (CUDA, OpenCL or the CPU accelerator), mirroring the host implementations:
/// covariance accumulation (<see cref="DeviceCovariance"/>, float64 like <c>Covariance</c> where the device
/// has float64), rank-k weight updates in the stored layout (float32, like <c>EditedLayer.AddDelta</c>),
/// blocked Cholesky with the MEMIT / ROME triangular solves (<see cref="DeviceCholesky"/>, float64, like
/// <see cref="CholeskyFactor"/>) and σ_max by power iteration (PRUNE's threshold, float32 weights like
/// <see cref="Kedit.Editing.LinearAlgebra.SpectralNorm"/>'s products). The float64 kernels run only where the device
/// supports float64 (an OpenCL device may not); <see cref="HasFloat64"/> says whether it does.
/// <para>The editing code reaches it in two places: <c>Covariance</c> accumulates key statistics with
/// <see cref="DeviceCovariance"/> when the model runs on a float64 device, and <c>LinearAlgebraPlacement</c>
/// (<c>EditContext.Placement</c>) puts the λC / C factorisations and σ_max(W0) here above its size thresholds.
/// Weight updates still land on the host copy of the weights (re-uploaded on next use), so
/// <see cref="RankKUpdate(Tensor, bool, Tensor, Tensor)"/> is not yet called by an edit.</para>
/// </summary>
public sealed class DeviceLinearAlgebra
{
    internal const int Tile = 64, CholeskyBlock = 64, RowGroup = 64;

    /// <summary>Linear algebra on <paramref name="backend"/>'s device (tensors are that backend's).</summary>
    public DeviceLinearAlgebra(DeviceBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        Backend = backend;
    }

    /// <summary>The backend whose device runs the kernels.</summary>
    public DeviceBackend Backend { get; }

    internal DeviceRuntime Runtime => Backend.Runtime;

    /// <summary>True when the device runs float64 kernels.</summary>
    public bool HasFloat64 => Runtime.Float64Missing == null;

    /// <summary>Why the device cannot run the float64 kernels (empty when it can).</summary>
    public string Float64Failure => Runtime.Float64Missing ?? "";

    internal void RequireFloat64(string what)
    {
        if (!HasFloat64)
            throw new DeviceException($"{Runtime.DeviceName}: {what} needs float64 kernels, which this device cannot run: {Float64Failure}");
    }

    // ---- covariance ----------------------------------------------------------------------------

    /// <summary>
    /// A running key second-moment sum Σ k kᵀ [keyDim, keyDim] kept on the device: float64 sums of exact
    /// float products where the device has float64, else float32 Gram blocks per call added on the host in float64.
    /// </summary>
    public DeviceCovariance CreateCovariance(int keyDim) => new(this, keyDim, forceFloat32: false);

    internal DeviceCovariance CreateCovariance(int keyDim, bool forceFloat32) => new(this, keyDim, forceFloat32);

    // ---- rank-k weight updates -----------------------------------------------------------------

    /// <summary>
    /// W += U Vᵀ on a device weight in its stored layout: math orientation ΔW = U Vᵀ is d×f with U [d, r] and
    /// V [f, r]; <paramref name="weight"/> is stored [d, f], or [f, d] when <paramref name="inputMajor"/> (Conv1D).
    /// The r products of each element are summed in float32 and added once.
    /// </summary>
    public void RankKUpdate(Tensor weight, bool inputMajor, Tensor u, Tensor v)
    {
        int d = u.Rows, f = v.Rows, r = u.Cols;
        if (v.Cols != r) throw new ArgumentException($"RankKUpdate: U [{u.Rows}, {u.Cols}] and V [{v.Rows}, {v.Cols}] need the same number of columns");
        int rows = inputMajor ? f : d, cols = inputMajor ? d : f;
        if (weight.Rows != rows || weight.Cols != cols)
            throw new ArgumentException($"RankKUpdate: a {d}×{f} update does not fit the stored weight [{weight.Rows}, {weight.Cols}] (input-major: {inputMajor})");
        if (rows == 0 || cols == 0) return;
        var (a, b) = inputMajor ? (v, u) : (u, v);
        Runtime.Launch("rank_k_update", Groups(cols, RowGroup), Groups(rows, 4), RowGroup, 4,
            rows, cols, r, Backend.Dev(weight).Buffer, cols, Backend.Dev(a).Buffer, r, Backend.Dev(b).Buffer, r);
    }

    /// <summary>
    /// W += U Vᵀ on a host weight array in its stored layout (uploaded, updated on the device, read back):
    /// U is d×f's left factor [d, r], V the right one [f, r], both narrowed to float32 first.
    /// </summary>
    public void RankKUpdate(float[] storedWeight, bool inputMajor, MatrixD u, MatrixD v)
    {
        ArgumentNullException.ThrowIfNull(storedWeight); ArgumentNullException.ThrowIfNull(u); ArgumentNullException.ThrowIfNull(v);
        if ((long)u.Rows * v.Rows != storedWeight.Length)
            throw new ArgumentException($"RankKUpdate: a {u.Rows}×{v.Rows} update does not fit a weight of {storedWeight.Length} values");
        int rows = inputMajor ? v.Rows : u.Rows, cols = inputMajor ? u.Rows : v.Rows;
        using var w = Backend.Allocate(rows, cols);
        using var du = Backend.Allocate(u.Rows, u.Cols);
        using var dv = Backend.Allocate(v.Rows, v.Cols);
        Backend.Upload(storedWeight, w);
        Backend.Upload(Narrow(u), du);
        Backend.Upload(Narrow(v), dv);
        RankKUpdate(w, inputMajor, du, dv);
        Backend.Download(w, storedWeight);
    }

    // ---- Cholesky ------------------------------------------------------------------------------

    /// <summary>
    /// Factors the symmetric positive definite <paramref name="a"/> (only its upper triangle is read) on the device
    /// in float64; throws <see cref="NotPositiveDefiniteException"/> naming <paramref name="what"/> and the first
    /// failing pivot, as <see cref="CholeskyFactor.Factor"/> does.
    /// </summary>
    public DeviceCholesky Factor(MatrixD a, string what = "matrix")
    {
        if (!TryFactor(a, out var f, out int p, out double v)) throw new NotPositiveDefiniteException(what, p, v);
        return f!;
    }

    /// <summary>Factors <paramref name="a"/>; false, with the failing pivot and its value, when it is not positive definite.</summary>
    public bool TryFactor(MatrixD a, out DeviceCholesky? factor, out int failedPivot, out double pivotValue)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rows != a.Cols) throw new ArgumentException($"Cholesky needs a square matrix, got {a.Rows}×{a.Cols}", nameof(a));
        RequireFloat64("Cholesky factorisation");
        var f = DeviceCholesky.FactorOnDevice(this, a, out failedPivot, out pivotValue);
        factor = failedPivot < 0 ? f : null;
        if (factor == null) f.Dispose();
        return factor != null;
    }

    // ---- σ_max ---------------------------------------------------------------------------------

    /// <summary>
    /// σ_max of a rows×cols device matrix (a weight in either stored layout: σ_max(W) = σ_max(Wᵀ)) by power
    /// iteration on WᵀW with float32 products on the device and float64 normalisation on the host. Each step
    /// gives the lower bound ‖Wᵀu‖ (u = Wv/‖Wv‖); it stops when the residual ‖Wᵀu − ‖Wv‖·v‖ is below
    /// <paramref name="relativeTolerance"/>·σ, or after <paramref name="maxSteps"/> steps (Converged false).
    /// Convergence goes as (σ₂/σ₁)² per step. Deterministic for a given <paramref name="seed"/>.
    /// </summary>
    public SpectralNormResult SpectralNorm(Tensor w, int maxSteps = 1000, double relativeTolerance = 1e-5, int seed = 1)
    {
        int rows = w.Rows, cols = w.Cols;
        if (rows == 0 || cols == 0) return new SpectralNormResult(0, 0, true);
        var rng = new Random(seed);
        var v = new double[cols];
        for (int i = 0; i < cols; i++) v[i] = 2 * rng.NextDouble() - 1;
        Scale(v, 1.0 / Norm(v));
        var vf = new float[cols]; var uf = new float[rows]; var gf = new float[cols];
        using var dv = Backend.Allocate(1, cols); using var du = Backend.Allocate(1, rows); using var dg = Backend.Allocate(1, cols);
        double sigma = 0;
        for (int step = 1; step <= maxSteps; step++)
        {
            for (int i = 0; i < cols; i++) vf[i] = (float)v[i];
            Backend.Upload(vf, dv);
            Backend.MatVec(w, dv, du);
            Backend.Download(du, uf);
            double nu = Norm(uf);
            if (nu == 0) return new SpectralNormResult(sigma, step, true);   // v in the null space: W = 0 here
            for (int i = 0; i < rows; i++) uf[i] = (float)(uf[i] / nu);
            Backend.Upload(uf, du);
            Backend.MatVec(w, du, dg, transpose: true);
            Backend.Download(dg, gf);
            double ng = Norm(gf);
            sigma = Math.Max(sigma, ng);
            // residual of the singular pair (u, v) with value ‖Wv‖ (uᵀWv = ‖Wv‖)
            double res = 0;
            for (int i = 0; i < cols; i++) { double e = gf[i] - nu * vf[i]; res += e * e; }
            if (Math.Sqrt(res) <= relativeTolerance * sigma) return new SpectralNormResult(sigma, step, true);
            for (int i = 0; i < cols; i++) v[i] = gf[i] / ng;
        }
        return new SpectralNormResult(sigma, maxSteps, false);
    }

    /// <summary>
    /// σ_max of a rows×cols device matrix by the host's Golub–Kahan–Lanczos iteration (<see cref="Kedit.Editing.LinearAlgebra.SpectralNorm"/>,
    /// float64 recurrences and reorthogonalisation) with the products W x and Wᵀ y run on the device in float32.
    /// Far fewer products than <see cref="SpectralNorm(Tensor, int, double, int)"/> when σ₁ and σ₂ are close; the float32
    /// products bound the attainable accuracy near 1e-6 relative, so tolerances below that are not meaningful.
    /// </summary>
    public SpectralNormResult SpectralNormLanczos(Tensor w, int maxSteps = 100, double relativeTolerance = 1e-6, int seed = 1)
    {
        int rows = w.Rows, cols = w.Cols;
        var xf = new float[Math.Max(rows, cols)]; var yf = new float[Math.Max(rows, cols)];
        using var dcols = Backend.Allocate(1, cols); using var drows = Backend.Allocate(1, rows);
        void Product(ReadOnlySpan<double> x, Span<double> y, bool transpose)
        {
            var (input, output) = transpose ? (drows, dcols) : (dcols, drows);
            for (int i = 0; i < x.Length; i++) xf[i] = (float)x[i];
            Backend.Upload(xf.AsSpan(0, x.Length), input);
            Backend.MatVec(w, input, output, transpose);
            Backend.Download(output, yf);
            for (int i = 0; i < y.Length; i++) y[i] = yf[i];
        }
        return Kedit.Editing.LinearAlgebra.SpectralNorm.Largest(rows, cols, (x, y) => Product(x, y, false), (x, y) => Product(x, y, true),
            maxSteps, relativeTolerance, seed);
    }

    /// <summary>σ_max of a host rows×cols float32 matrix (e.g. a stored weight), uploaded for the iteration.</summary>
    public SpectralNormResult SpectralNorm(float[] matrix, int rows, int cols, int maxSteps = 1000, double relativeTolerance = 1e-5, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        if ((long)rows * cols != matrix.Length) throw new ArgumentException($"SpectralNorm: {matrix.Length} values are not a {rows}×{cols} matrix");
        using var w = Backend.Allocate(rows, cols);
        Backend.Upload(matrix, w);
        return SpectralNorm(w, maxSteps, relativeTolerance, seed);
    }

    // ---- shared helpers ------------------------------------------------------------------------

    internal static int Groups(long n, int size) => (int)((n + size - 1) / size);

    internal void LaunchGemm(string kernel, int m, int n, int k, DeviceBuffer a, long offA, int lda, DeviceBuffer b, long offB, int ldb,
        DeviceBuffer c, long offC, int ldc, float alpha, float beta, int triangle)
    {
        if (m <= 0 || n <= 0) return;
        Runtime.Launch(kernel, Groups(n, Tile), Groups(m, Tile), 16, 16, m, n, k, a, offA, lda, b, offB, ldb, c, offC, ldc, alpha, beta, triangle);
    }

    internal unsafe DeviceBuffer UploadDoubles(double[] data)
    {
        var buf = Runtime.Allocate((long)data.Length * sizeof(double));
        fixed (double* p = data) Runtime.Write(buf, 0, p, (long)data.Length * sizeof(double));
        return buf;
    }

    internal unsafe void DownloadDoubles(DeviceBuffer buf, double[] data)
    {
        fixed (double* p = data) Runtime.Read(buf, 0, p, (long)data.Length * sizeof(double));
    }

    static float[] Narrow(MatrixD m)
    {
        var r = new float[m.Data.Length];
        for (int i = 0; i < r.Length; i++) r[i] = (float)m.Data[i];
        return r;
    }

    static double Norm(ReadOnlySpan<double> x) { double s = 0; foreach (var e in x) s += e * e; return Math.Sqrt(s); }
    static double Norm(ReadOnlySpan<float> x) { double s = 0; foreach (var e in x) s += (double)e * e; return Math.Sqrt(s); }
    static void Scale(Span<double> x, double a) { for (int i = 0; i < x.Length; i++) x[i] *= a; }
}

/// <summary>
/// Σ k kᵀ over key rows, accumulated on the device (see <see cref="DeviceLinearAlgebra.CreateCovariance(int)"/>):
/// each block of rows adds one triangle of its Gram matrix, mirrored, so the sum is exactly symmetric.
/// </summary>
public sealed class DeviceCovariance : IDisposable
{
    readonly DeviceLinearAlgebra _la;
    readonly DeviceBuffer? _sum64;          // float64 running sum on the device
    readonly DeviceBuffer? _block32;        // float32 Gram block (devices without float64)
    readonly double[]? _hostSum;            // its float64 running sum on the host

    internal DeviceCovariance(DeviceLinearAlgebra la, int keyDim, bool forceFloat32)
    {
        if (keyDim <= 0) throw new ArgumentOutOfRangeException(nameof(keyDim), keyDim, "the key width must be positive");
        _la = la; KeyDim = keyDim;
        long cells = (long)keyDim * keyDim;
        UsesFloat64 = !forceFloat32 && la.HasFloat64;
        if (UsesFloat64)
        {
            _sum64 = la.UploadDoubles(new double[cells]);
        }
        else
        {
            _block32 = la.Runtime.Allocate(cells * sizeof(float));
            _hostSum = new double[cells];
        }
    }

    /// <summary>Width f of the keys (the sum is f×f).</summary>
    public int KeyDim { get; }
    /// <summary>Key rows added so far.</summary>
    public long Count { get; private set; }
    /// <summary>True when sums accumulate in float64 on the device; false for float32 blocks summed in float64 on the host.</summary>
    public bool UsesFloat64 { get; }

    /// <summary>Adds the rows of the device tensor <paramref name="keys"/> [n, f].</summary>
    public void Add(Tensor keys)
    {
        if (keys.Cols != KeyDim) throw new ArgumentException($"keys of width {keys.Cols} for a {KeyDim}×{KeyDim} covariance");
        if (keys.Rows == 0) return;
        var k = _la.Backend.Dev(keys).Buffer;
        int f = KeyDim;
        if (UsesFloat64)
            _la.LaunchGemm("syrk_f32_f64", f, f, keys.Rows, k, 0, f, k, 0, f, _sum64!, 0, f, 1f, 1f, 2);
        else
        {
            _la.LaunchGemm("syrk_f32", f, f, keys.Rows, k, 0, f, k, 0, f, _block32!, 0, f, 1f, 0f, 2);
            var block = new float[(long)f * f];
            unsafe { fixed (float* p = block) _la.Runtime.Read(_block32!, 0, p, block.LongLength * sizeof(float)); }
            for (long i = 0; i < block.LongLength; i++) _hostSum![i] += block[i];
        }
        Count += keys.Rows;
    }

    /// <summary>Adds <paramref name="rows"/> key rows given row-major on the host (uploaded first).</summary>
    public void Add(ReadOnlySpan<float> keys, int rows)
    {
        if ((long)rows * KeyDim != keys.Length) throw new ArgumentException($"{keys.Length} values are not {rows} keys of width {KeyDim}");
        if (rows == 0) return;
        using var t = _la.Backend.Allocate(rows, KeyDim);
        _la.Backend.Upload(keys, t);
        Add(t);
    }

    /// <summary>The running sum Σ k kᵀ as a new float64 matrix.</summary>
    public MatrixD Sum()
    {
        var m = new MatrixD(KeyDim, KeyDim);
        if (UsesFloat64) _la.DownloadDoubles(_sum64!, m.Data);
        else _hostSum!.CopyTo(m.Data, 0);
        return m;
    }

    /// <summary>Releases the device buffers.</summary>
    public void Dispose() { _sum64?.Dispose(); _block32?.Dispose(); }
}

/// <summary>
/// A float64 Cholesky factor M = RᵀR held on the device (R upper, row-major, as <see cref="CholeskyFactor"/>),
/// from <see cref="DeviceLinearAlgebra.Factor"/>: blocked right-looking (64-wide diagonal block by one work-group,
/// panel by forward substitution per column, trailing update by the tiled product on its upper triangle).
/// </summary>
public sealed class DeviceCholesky : ISpdFactor, IDisposable
{
    readonly DeviceLinearAlgebra _la;
    readonly DeviceBuffer _r;

    DeviceCholesky(DeviceLinearAlgebra la, DeviceBuffer r, int n) { _la = la; _r = r; Size = n; }

    /// <summary>Order n of the factored matrix.</summary>
    public int Size { get; }

    internal static DeviceCholesky FactorOnDevice(DeviceLinearAlgebra la, MatrixD a, out int failedPivot, out double pivotValue)
    {
        int n = a.Rows, nb = DeviceLinearAlgebra.CholeskyBlock;
        var rt = la.Runtime;
        var f = new DeviceCholesky(la, la.UploadDoubles(a.Data), n);
        using var status = la.UploadDoubles(new[] { -1.0, 0.0 });
        for (int k0 = 0; k0 < n; k0 += nb)
        {
            int b = Math.Min(nb, n - k0), k1 = k0 + b, t = n - k1;
            rt.Launch("chol_diag_f64", 1, 1, 256, 1, n, k0, b, f._r, status);
            if (t == 0) break;
            rt.Launch("chol_panel_f64", DeviceLinearAlgebra.Groups(t, DeviceLinearAlgebra.RowGroup), 1, DeviceLinearAlgebra.RowGroup, 1, n, k0, b, f._r);
            la.LaunchGemm("dgemm_tn", t, t, b, f._r, (long)k0 * n + k1, n, f._r, (long)k0 * n + k1, n, f._r, (long)k1 * n + k1, n, -1f, 1f, 1);
        }
        // One read at the end: after a failed pivot the diagonal kernel skips every later block.
        var st = new double[2];
        la.DownloadDoubles(status, st);
        failedPivot = (int)st[0];
        pivotValue = st[1];
        return f;
    }

    /// <summary>The upper factor R (M = RᵀR) as a new matrix, its strict lower triangle zero.</summary>
    public MatrixD Upper()
    {
        var m = new MatrixD(Size, Size);
        _la.DownloadDoubles(_r, m.Data);
        for (int i = 1; i < Size; i++) m.Row(i)[..i].Clear();
        return m;
    }

    /// <summary>log det M = 2 Σ log R_ii.</summary>
    public double LogDeterminant()
    {
        var r = Upper();
        double s = 0;
        for (int i = 0; i < Size; i++) s += Math.Log(r[i, i]);
        return 2 * s;
    }

    /// <summary>
    /// Overwrites every row b of the k×n <paramref name="b"/> with the x solving M x = b (B ← B M⁻¹), as
    /// <see cref="CholeskyFactor.SolveRowsInPlace"/>: Y R = B forward, then X Rᵀ = Y backward, each over 64-column
    /// blocks (the block's dependence on earlier ones by the tiled product, the block itself per row).
    /// </summary>
    public void SolveRowsInPlace(MatrixD b)
    {
        ArgumentNullException.ThrowIfNull(b);
        if (b.Cols != Size) throw new ArgumentException($"right-hand-side rows have length {b.Cols}, factor is {Size}×{Size}", nameof(b));
        int n = Size, k = b.Rows, nb = DeviceLinearAlgebra.CholeskyBlock;
        if (k == 0 || n == 0) return;
        var rt = _la.Runtime;
        using var x = _la.UploadDoubles(b.Data);
        int rowGroups = DeviceLinearAlgebra.Groups(k, DeviceLinearAlgebra.RowGroup);
        for (int j0 = 0; j0 < n; j0 += nb)
        {
            int jb = Math.Min(nb, n - j0);
            _la.LaunchGemm("dgemm_nn", k, jb, j0, x, 0, n, _r, j0, n, x, j0, n, -1f, 1f, 0);
            rt.Launch("trsm_fwd_f64", rowGroups, 1, DeviceLinearAlgebra.RowGroup, 1, k, n, j0, jb, x, _r);
        }
        for (int j0 = (n - 1) / nb * nb; j0 >= 0; j0 -= nb)
        {
            int jb = Math.Min(nb, n - j0), j1 = j0 + jb;
            _la.LaunchGemm("dgemm_nt", k, jb, n - j1, x, j1, n, _r, (long)j0 * n + j1, n, x, j0, n, -1f, 1f, 0);
            rt.Launch("trsm_bwd_f64", rowGroups, 1, DeviceLinearAlgebra.RowGroup, 1, k, n, j0, jb, x, _r);
        }
        _la.DownloadDoubles(x, b.Data);
    }

    /// <summary>Overwrites the n×k <paramref name="b"/> with M⁻¹ b (columns are right-hand sides).</summary>
    public void SolveInPlace(MatrixD b) => CholeskyFactor.SolveColumnsByRows(Size, b, SolveRowsInPlace);

    /// <summary>M⁻¹ b as a new matrix (columns of the n×k <paramref name="b"/> are right-hand sides).</summary>
    public MatrixD Solve(MatrixD b) { var x = b.Clone(); SolveInPlace(x); return x; }

    /// <summary>Releases the device copy of the factor.</summary>
    public void Dispose() => _r.Dispose();
}
