namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// A Cholesky factor M = RᵀR of a symmetric positive definite matrix, as the MEMIT / ROME solves use it:
/// the host's <see cref="CholeskyFactor"/> or a factor held on an accelerator (<c>Kedit.Backends.DeviceCholesky</c>).
/// Which one an edit gets is decided in one place, <c>Kedit.Editing.LinearAlgebraPlacement</c>, handed to the
/// solvers as an <see cref="SpdFactorizer"/> (so this folder depends on no backend).
/// </summary>
public interface ISpdFactor
{
    /// <summary>Order n of the factored matrix.</summary>
    int Size { get; }

    /// <summary>Overwrites every row b of the k×n <paramref name="rows"/> with the x solving M x = b (B ← B M⁻¹).</summary>
    void SolveRowsInPlace(MatrixD rows);

    /// <summary>Overwrites the n×k <paramref name="columns"/> with M⁻¹ B (columns are right-hand sides).</summary>
    void SolveInPlace(MatrixD columns);

    /// <summary>log det M = 2 Σ log R_ii.</summary>
    double LogDeterminant();
}

/// <summary>Factors a symmetric matrix where the caller's placement says; false, with the failing pivot, when it is not positive definite.</summary>
public delegate bool SpdFactorizer(MatrixD a, out ISpdFactor? factor, out int failedPivot, out double pivotValue);
