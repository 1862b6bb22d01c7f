namespace Kedit.Models;

/// <summary>
/// A batch of token sequences padded to one length with an attention mask. Positions are
/// cumsum(mask) − 1 (pads clamped to 0), so a padded row gives the same values at its real tokens
/// as the unpadded sequence, whichever side it is padded on.
/// </summary>
public sealed class TokenBatch
{
    public TokenBatch(int size, int length, int[] ids, bool[] mask)
    {
        if (ids.Length != size * length || mask.Length != size * length) throw new ArgumentException("ids and mask must hold size × length entries");
        Size = size; Length = length; Ids = ids; Mask = mask;
    }

    public int Size { get; }
    public int Length { get; }
    /// <summary>[Size × Length] token ids, sequence-major.</summary>
    public int[] Ids { get; }
    /// <summary>[Size × Length] true where the token is real.</summary>
    public bool[] Mask { get; }

    public static TokenBatch Single(IReadOnlyList<int> ids) => RightPadded(new[] { ids });

    public static TokenBatch RightPadded(IReadOnlyList<IReadOnlyList<int>> seqs, int padId = 0) => Padded(seqs, padId, left: false);
    public static TokenBatch LeftPadded(IReadOnlyList<IReadOnlyList<int>> seqs, int padId = 0) => Padded(seqs, padId, left: true);

    static TokenBatch Padded(IReadOnlyList<IReadOnlyList<int>> seqs, int padId, bool left)
    {
        if (seqs.Count == 0) throw new ArgumentException("a batch needs at least one sequence");
        int T = seqs.Max(s => s.Count);
        if (T == 0) throw new KeditException("cannot run an empty token sequence");
        var ids = new int[seqs.Count * T]; var mask = new bool[seqs.Count * T];
        for (int b = 0; b < seqs.Count; b++)
        {
            int off = left ? T - seqs[b].Count : 0;
            for (int t = 0; t < T; t++) ids[b * T + t] = padId;
            for (int t = 0; t < seqs[b].Count; t++) { ids[b * T + off + t] = seqs[b][t]; mask[b * T + off + t] = true; }
        }
        return new TokenBatch(seqs.Count, T, ids, mask);
    }

    /// <summary>Number of real tokens in sequence b.</summary>
    public int RealLength(int b)
    {
        int n = 0;
        for (int t = 0; t < Length; t++) if (Mask[b * Length + t]) n++;
        return n;
    }

    /// <summary>Index within the row of the last real token of sequence b.</summary>
    public int LastRealIndex(int b)
    {
        for (int t = Length - 1; t >= 0; t--) if (Mask[b * Length + t]) return t;
        return Length - 1;
    }

    /// <summary>Index within the row of the k-th real token (0-based) of sequence b.</summary>
    public int RealIndex(int b, int k)
    {
        for (int t = 0, n = 0; t < Length; t++)
            if (Mask[b * Length + t] && n++ == k) return t;
        throw new ArgumentOutOfRangeException(nameof(k), $"sequence {b} has fewer than {k + 1} real tokens");
    }
}
