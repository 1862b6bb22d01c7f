/* Rotates the q and k heads of fused qkv rows in place. Work-item (i, r·nHeads + h) turns pair i of
   head h in row r by the angle of positions[r]. layout 1: interleaved pairs (2i, 2i+1) (GPT-J);
   layout 2: rotate-half pairs (i, i + halfDim) (Llama). */
KERNEL void rope(int rows, int cols, int nHeads, int headDim, int halfDim, int layout,
                 GLOBAL const int* positions, GLOBAL const float* cosTable, GLOBAL const float* sinTable, GLOBAL float* qkv)
{
    int i = GID(0), rh = GID(1);
    if (i >= halfDim || rh >= rows * nHeads) return;
    int r = rh / nHeads, h = rh % nHeads;
    GLOBAL float* x = qkv + (I64)r * cols + (I64)h * headDim;
    float c = cosTable[(I64)positions[r] * halfDim + i], s = sinTable[(I64)positions[r] * halfDim + i];
    int ia = layout == 1 ? 2 * i : i, ib = layout == 1 ? 2 * i + 1 : i + halfDim;
    float a = x[ia], b = x[ib];
    x[ia] = a * c - b * s;
    x[ib] = b * c + a * s;
}
