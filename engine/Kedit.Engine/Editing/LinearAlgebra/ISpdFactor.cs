namespace Kedit.Editing.LinearAlgebra;

/// <summary>
/// A Cholesky factor M = RᵀR of a symmetric positive definite matrix, as the MEMIT / ROME solves use it:
/// the host's <see cref="CholeskyFactor"/> or a factor held on an accelerator (<see cref="Kedit.Backends.DeviceCholesky"/>).
/// Which one an edit gets is decided in one place, <see cref="Kedit.Editing.LinearAlgebraPlacement"/>.
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
