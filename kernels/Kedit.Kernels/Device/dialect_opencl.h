/* Macros for the OpenCL C kernels of --device opencl: qualifiers, indices, barriers and C99 float math
   names (expf, tanhf, ...). The CUDA path is the C# ILGPU kernels in ../Ilgpu. */
#define KERNEL __kernel
#define I64 long
#define GLOBAL __global
#define LOCAL __local
#define LOCAL_PTR __local
#define DEVICE_FN static inline
/* Both fences: work-items exchange data through local memory and, in a few kernels, global memory. */
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#define GID(d) ((int)get_global_id(d))
#define LID(d) ((int)get_local_id(d))
#define GROUP(d) ((int)get_group_id(d))
#define LSIZE(d) ((int)get_local_size(d))
#define expf(x) exp(x)
#define tanhf(x) tanh(x)
#define sqrtf(x) sqrt(x)
#define erff(x) erf(x)
#define fmaxf(a, b) fmax(a, b)
#define INFINITY_F INFINITY
