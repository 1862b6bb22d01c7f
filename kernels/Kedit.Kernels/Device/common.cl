/* Work-group reductions over LSIZE(0) work-items (a power of two). scratch holds LSIZE(0) floats.
   Every work-item of the group must call these (they contain barriers). */
DEVICE_FN float group_sum(float v, LOCAL_PTR float* scratch)
{
    int t = LID(0);
    scratch[t] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1)
    {
        if (t < s) scratch[t] += scratch[t + s];
        BARRIER();
    }
    float r = scratch[0];
    BARRIER();
    return r;
}

DEVICE_FN float group_max(float v, LOCAL_PTR float* scratch)
{
    int t = LID(0);
    scratch[t] = v;
    BARRIER();
    for (int s = LSIZE(0) / 2; s > 0; s >>= 1)
    {
        if (t < s) scratch[t] = fmaxf(scratch[t], scratch[t + s]);
        BARRIER();
    }
    float r = scratch[0];
    BARRIER();
    return r;
}
