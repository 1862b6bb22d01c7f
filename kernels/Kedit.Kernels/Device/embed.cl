/* x[r, :] = table[ids[r], :] (+ positions[positions[r], :]). Ids and positions are range-checked on the host. */
KERNEL void embed(int rows, int d, GLOBAL const int* ids, GLOBAL const float* table,
                  GLOBAL const int* positions, GLOBAL const float* positionTable, int hasPositions, GLOBAL float* x)
{
    int c = GID(0), r = GID(1);
    if (c >= d || r >= rows) return;
    float v = table[(I64)ids[r] * d + c];
    if (hasPositions) v += positionTable[(I64)positions[r] * d + c];
    x[(I64)r * d + c] = v;
}
