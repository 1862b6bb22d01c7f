/* Kedit device dialect, CUDA C++ target (compiled by NVRTC). See dialect_opencl.h. */
#define KERNEL extern "C" __global__
#define I64 long long
#define GLOBAL
#define LOCAL __shared__
#define LOCAL_PTR
#define DEVICE_FN static __device__ __forceinline__
#define BARRIER() __syncthreads()
#define KEDIT_DIM3(v, d) ((d) == 0 ? (int)v.x : (d) == 1 ? (int)v.y : (int)v.z)
#define LID(d) KEDIT_DIM3(threadIdx, d)
#define GROUP(d) KEDIT_DIM3(blockIdx, d)
#define LSIZE(d) KEDIT_DIM3(blockDim, d)
#define GID(d) (GROUP(d) * LSIZE(d) + LID(d))
#define INFINITY_F __int_as_float(0x7f800000)
