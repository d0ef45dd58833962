// Helpers shared by the library's .cu files and attention.cuh (internal): launch shapes (from
// schedule.h, which schedules/cuda.py renders: change them there) and status,
// storage types and their conversions, element types by size, host tables passed by value, the
// error flag, and reductions through warp shuffles and shared memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.h"
#include "schedule.h"

namespace flowc::cuda {

// A kernel's per-element body: __host__ too, so a host harness can run it against the CPU kernels.
#define FLOWC_CUDA_HD __host__ __device__ __forceinline__
// #pragma unroll in such a body (the host compiler does not know it).
#ifdef __CUDA_ARCH__
#define FLOWC_CUDA_UNROLL _Pragma("unroll")
#else
#define FLOWC_CUDA_UNROLL
#endif

constexpr int kThreads = schedule::elementwise::kThreads;  // a block of the one-thread-per-element kernels
constexpr unsigned kFullMask = 0xffffffffu;

// Storage types: float, __half, __nv_bfloat16. Kernels compute in float: load widens an element,
// store<T> rounds a float to the nearest even T (both the identity for float).
FLOWC_CUDA_HD float load(float v) { return v; }
FLOWC_CUDA_HD float load(__half v) { return __half2float(v); }
FLOWC_CUDA_HD float load(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
FLOWC_CUDA_HD T store(float v) {
  if constexpr (std::is_same_v<T, __half>) return __float2half_rn(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __float2bfloat16_rn(v);
  else return v;
}

// Static text by storage type T (string literals F32, F16, BF16); FLOWC_CUDA_NAMED(T, "flowc_cuda_gemm",
// ": a negative size") names the entry point of T, "flowc_cuda_gemm_f16: a negative size" for __half.
#define FLOWC_CUDA_BY_TYPE(T, F32, F16, BF16) \
  (std::is_same_v<T, __half> ? F16 : std::is_same_v<T, __nv_bfloat16> ? BF16 : F32)
#define FLOWC_CUDA_NAMED(T, NAME, TEXT) FLOWC_CUDA_BY_TYPE(T, NAME "_f32" TEXT, NAME "_f16" TEXT, NAME "_bf16" TEXT)

// Blocks of a grid-stride loop over n items: enough to fill any current GPU (kernels loop over the
// rest), at least one.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(blocks, schedule::elementwise::kMaxBlocks)));
}

// Whether offsets below n fit the 32-bit index path (64-bit division costs ~10x on the GPU).
inline bool fits_u32(int64_t n) { return n >= 0 && n < (int64_t(1) << 31); }

// null after a good launch, else the launch's error (static text).
inline const char* launch_status() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

#define FLOWC_CUDA_TRY(expr)                \
  do {                                      \
    if (const char* e_ = (expr)) return e_; \
  } while (0)

// for (i = this thread's first item; i < n; i += all threads): I is uint32_t or int64_t.
#define FLOWC_GRID_LOOP(I, i, n)                                                     \
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < I(n); \
       i += I(blockDim.x) * I(gridDim.x))

// Up to Rank sizes or strides, copied into a kernel's arguments.
template <int Rank>
struct Table {
  int64_t v[Rank];
};

template <int Rank>
inline Table<Rank> table_of(int n, const int64_t* values, int64_t fill = 0) {
  Table<Rank> t;
  for (int d = 0; d < Rank; ++d) t.v[d] = d < n ? values[d] : fill;
  return t;
}

// Calls f(element) with a value of the unsigned type of that size (uint4 for 16): copies move whole
// elements. Other sizes give a message.
template <class F>
const char* by_size(int size, F&& f) {
  switch (size) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    case 16: return f(uint4{});
    default: return "flowc_cuda: element size must be 1, 2, 4, 8 or 16 bytes";
  }
}

// Sets the request's error flag to `code` unless an earlier error holds it.
__device__ __forceinline__ void raise_error(int* flag, int code) {
  if (flag) atomicCAS(flag, 0, code);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {  // fmaxf: a NaN lane is ignored
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// v from lane (this lane ^ lane_mask), for any T of whole 32-bit words (a value and its index).
template <class T>
__device__ __forceinline__ T shuffle_xor(T v, int lane_mask) {
  static_assert(sizeof(T) % 4 == 0, "shuffle_xor moves 32-bit words");
  int words[sizeof(T) / 4];
  memcpy(words, &v, sizeof(T));
#pragma unroll
  for (int w = 0; w < int(sizeof(T) / 4); ++w) words[w] = __shfl_xor_sync(kFullMask, words[w], lane_mask);
  memcpy(&v, words, sizeof(T));
  return v;
}

// combine(a, b) over the 32 lanes (a butterfly: every lane gets the result).
template <class T, class Combine>
__device__ __forceinline__ T warp_reduce(T v, Combine combine) {
  for (int o = 16; o > 0; o >>= 1) v = combine(v, shuffle_xor(v, o));
  return v;
}

// combine over the whole block (blockDim.x a multiple of 32, at most 1024), every thread getting
// the result. `shared` holds 32 T; the first barrier lets a previous call's readers finish.
template <class T, class Combine>
__device__ __forceinline__ T block_reduce(T v, Combine combine, T identity, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce(v, combine);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? shared[lane] : identity;
    w = warp_reduce(w, combine);
    if (lane == 0) shared[0] = w;
  }
  __syncthreads();
  return shared[0];
}

// A row shared by Lanes threads: 32 (one warp per row) or the whole block.
template <int Lanes, class T, class Combine>
__device__ __forceinline__ T row_reduce(T v, Combine combine, T identity, T* shared) {
  if constexpr (Lanes == 32) return warp_reduce(v, combine);
  else return block_reduce(v, combine, identity, shared);
}

// A block of (kColumnWidth, kColumnRows) threads over kColumnWidth columns: combine of v over
// threadIdx.y, in order, every thread of a column getting the result. `part` is the block's
// [kColumnRows][kColumnWidth + 1].
constexpr int kColumnWidth = schedule::columns::kWidth;
constexpr int kColumnRows = schedule::columns::kRows;
template <class T, class Combine>
__device__ __forceinline__ T column_reduce(T v, Combine combine, T (*part)[kColumnWidth + 1]) {
  __syncthreads();
  part[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  v = part[0][threadIdx.x];
  for (int k = 1; k < kColumnRows; ++k) v = combine(v, part[k][threadIdx.x]);
  return v;
}

struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {  // fmaxf: a NaN operand is ignored
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct NanMaxOp {  // numpy's max: a NaN operand wins
  __device__ float operator()(float a, float b) const { return (a != a || a > b) ? a : b; }
};

// Threads per row for a row of n elements: a warp for short rows (blocks of kWarpRowThreads, a
// row per warp), a block of kBlockRowThreads otherwise.
constexpr int kWarpRowThreads = schedule::rows::kWarpBlockThreads;
constexpr int kBlockRowThreads = schedule::rows::kBlockThreads;
inline bool warp_per_row(int64_t n) { return n <= schedule::rows::kWarpRowLimit; }

// flowc_cuda_gemm_f32 and its fp16 and bf16 siblings (kernels.h) for storage type T; gemm.cu
// instantiates float, __half and __nv_bfloat16. The convolutions call it too.
template <class T>
const char* gemm(int64_t batch, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const T* A,
                 int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b, float beta, T* C,
                 int64_t ldc, int64_t stride_c, const T* bias, flowc_cuda_epilogue epilogue, const flowc_cuda* cu);

}  // namespace flowc::cuda
