// Reductions over f32, f16 or bf16 (accumulating in f32), arg-reductions and top-k over f32, and
// running sums over f32, f64, i32 and i64, as runtime/kernels/cpu/reduce.cpp: numpy's semantics (NaN
// propagates through max and min, each kind's identity over no elements, a NaN counts as the extreme
// for argmax/argmin and top-k).
//
//  - reduce_trailing: one warp per row up to 1024 elements, else one block of 512 per row;
//  - reduce_middle and the middle-axis arg-reduce: blocks of (32 columns, 8 threads along the
//    reduced axis) combined in shared memory; an arg-reduce with inner == 1 runs like a row;
//  - cumsum: one thread per column (o, i), summing in order as numpy does (bitwise the CPU's sums);
//  - top-k: one block per column, k rounds of a block-wide selection of the next element in the
//    order (value, then lower index); O(k n / 512) per column, fine for the usual small k.
// The block shapes are schedule.h's (schedules/cuda.py's ROWS, COLUMNS and TOPK).
#include "common.cuh"

namespace flowc::cuda {
namespace {

// A reduction is a map of each element, then a combine from an identity (as the CPU's).
struct Same {
  FLOWC_CUDA_HD static float map(float v) { return v; }
};
struct Square {
  FLOWC_CUDA_HD static float map(float v) { return v * v; }
};
struct Abs {
  FLOWC_CUDA_HD static float map(float v) { return fabsf(v); }
};
struct Add {
  FLOWC_CUDA_HD static float identity() { return 0.0f; }
  FLOWC_CUDA_HD float operator()(float a, float b) const { return a + b; }
};
struct Multiply {
  FLOWC_CUDA_HD static float identity() { return 1.0f; }
  FLOWC_CUDA_HD float operator()(float a, float b) const { return a * b; }
};
struct Max {  // a NaN, once met, stays
  FLOWC_CUDA_HD static float identity() { return -INFINITY; }
  FLOWC_CUDA_HD float operator()(float a, float b) const { return (b > a || b != b) ? b : a; }
};
struct Min {
  FLOWC_CUDA_HD static float identity() { return INFINITY; }
  FLOWC_CUDA_HD float operator()(float a, float b) const { return (b < a || b != b) ? b : a; }
};

template <class Run>
const char* dispatch(flowc_reduce_op op, Run&& run) {
  switch (op) {
    case FLOWC_REDUCE_MAX: return run(Same{}, Max{});
    case FLOWC_REDUCE_MIN: return run(Same{}, Min{});
    case FLOWC_REDUCE_PROD: return run(Same{}, Multiply{});
    case FLOWC_REDUCE_SUM_SQUARE:
    case FLOWC_REDUCE_L2: return run(Square{}, Add{});
    case FLOWC_REDUCE_L1: return run(Abs{}, Add{});
    default: return run(Same{}, Add{});  // SUM, MEAN, LOG_SUM
  }
}

__device__ __forceinline__ float finish(flowc_reduce_op op, float v, int64_t r) {
  switch (op) {
    case FLOWC_REDUCE_MEAN: return v / float(r);  // 0 / 0: NaN over no elements, as numpy
    case FLOWC_REDUCE_L2: return sqrtf(v);
    case FLOWC_REDUCE_LOG_SUM: return logf(v);
    default: return v;
  }
}

// log-sum-exp's shift: the largest finite element, 0 when there is none (so exp never sees
// inf - inf); a NaN is skipped here and poisons the sum instead.
__device__ __forceinline__ float finite_max(float m, float v) { return v > m && v < INFINITY ? v : m; }
__device__ __forceinline__ float shift_of(float largest_finite) {
  return largest_finite == -INFINITY ? 0.0f : largest_finite;
}

template <int Lanes, class Map, class Combine, class T>
__global__ void __launch_bounds__(kBlockRowThreads)
    reduce_rows_kernel(flowc_reduce_op op, int64_t outer, int64_t inner, const T* __restrict__ x, T* __restrict__ y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < outer; r += gridDim.x * per_block) {
    const T* xr = x + r * inner;
    float acc = Combine::identity();
    for (int64_t i = lane; i < inner; i += Lanes) acc = Combine{}(acc, Map::map(load(xr[i])));
    acc = row_reduce<Lanes>(acc, Combine{}, Combine::identity(), shared);
    if (lane == 0) y[r] = store<T>(finish(op, acc, inner));
  }
}

template <int Lanes, class T>
__global__ void __launch_bounds__(kBlockRowThreads)
    log_sum_exp_rows_kernel(int64_t outer, int64_t inner, const T* __restrict__ x, T* __restrict__ y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < outer; r += gridDim.x * per_block) {
    const T* xr = x + r * inner;
    float m = -INFINITY;
    for (int64_t i = lane; i < inner; i += Lanes) m = finite_max(m, load(xr[i]));
    m = shift_of(row_reduce<Lanes>(m, MaxOp{}, -INFINITY, shared));
    float s = 0.0f;
    for (int64_t i = lane; i < inner; i += Lanes) s += expf(load(xr[i]) - m);
    s = row_reduce<Lanes>(s, AddOp{}, 0.0f, shared);
    if (lane == 0) y[r] = store<T>(logf(s) + m);
  }
}

// x as [outer, r, inner]: a block per (o, 32 columns), threadIdx.y walking r.
template <class Map, class Combine, class T>
__global__ void __launch_bounds__(kColumnWidth * kColumnRows)
    reduce_middle_kernel(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner, const T* __restrict__ x,
                         T* __restrict__ y) {
  __shared__ float part[kColumnRows][kColumnWidth + 1];
  const int64_t tiles = (inner + kColumnWidth - 1) / kColumnWidth;
  for (int64_t job = blockIdx.x; job < outer * tiles; job += gridDim.x) {
    const int64_t o = job / tiles, col = job % tiles * kColumnWidth + threadIdx.x;
    const bool active = col < inner;
    float acc = Combine::identity();
    if (active)
      for (int64_t k = threadIdx.y; k < r; k += kColumnRows)
        acc = Combine{}(acc, Map::map(load(x[(o * r + k) * inner + col])));
    acc = column_reduce(acc, Combine{}, part);
    if (active && threadIdx.y == 0) y[o * inner + col] = store<T>(finish(op, acc, r));
  }
}

template <class T>
__global__ void __launch_bounds__(kColumnWidth * kColumnRows)
    log_sum_exp_middle_kernel(int64_t outer, int64_t r, int64_t inner, const T* __restrict__ x, T* __restrict__ y) {
  __shared__ float part[kColumnRows][kColumnWidth + 1];
  const int64_t tiles = (inner + kColumnWidth - 1) / kColumnWidth;
  for (int64_t job = blockIdx.x; job < outer * tiles; job += gridDim.x) {
    const int64_t o = job / tiles, col = job % tiles * kColumnWidth + threadIdx.x;
    const bool active = col < inner;
    const T* xc = x + o * r * inner + col;
    float m = -INFINITY;
    if (active)
      for (int64_t k = threadIdx.y; k < r; k += kColumnRows) m = finite_max(m, load(xc[k * inner]));
    m = shift_of(column_reduce(m, MaxOp{}, part));
    float s = 0.0f;
    if (active)
      for (int64_t k = threadIdx.y; k < r; k += kColumnRows) s += expf(load(xc[k * inner]) - m);
    s = column_reduce(s, AddOp{}, part);
    if (active && threadIdx.y == 0) y[o * inner + col] = store<T>(logf(s) + m);
  }
}

// -- arg-reduce and top-k: a value and its position, ordered -----------------------------------

struct Candidate {
  float value;
  int32_t pad;  // keeps the struct whole 32-bit words for shuffle_xor
  int64_t at;   // -1: none
};

// Whether a beats b for argmax (Largest) or argmin: the extreme value, a NaN beyond every number,
// ties to the lower position (the higher with Last). A sequential scan with the CPU's `displaces`
// ends on the same element, and this order makes partial results combine in any order.
template <bool Largest, bool Last>
struct Beats {
  FLOWC_CUDA_HD bool operator()(const Candidate& a, const Candidate& b) const {
    if (b.at < 0) return a.at >= 0;
    if (a.at < 0) return false;
    const bool na = a.value != a.value, nb = b.value != b.value;
    if (na != nb) return na;
    if (!na && a.value != b.value) return Largest ? a.value > b.value : a.value < b.value;
    return Last ? a.at > b.at : a.at < b.at;
  }
};

template <bool Largest, bool Last>
struct Better {
  FLOWC_CUDA_HD Candidate operator()(const Candidate& a, const Candidate& b) const {
    return Beats<Largest, Last>{}(a, b) ? a : b;
  }
};

// inner == 1: a row per warp or block.
template <int Lanes, bool Largest, bool Last>
__global__ void __launch_bounds__(kBlockRowThreads)
    arg_reduce_rows_kernel(int64_t outer, int64_t n, const float* __restrict__ x, int64_t* __restrict__ y) {
  __shared__ Candidate shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  const Candidate none{0.0f, 0, -1};
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < outer; r += gridDim.x * per_block) {
    Candidate best = none;
    for (int64_t k = lane; k < n; k += Lanes) best = Better<Largest, Last>{}(best, {x[r * n + k], 0, k});
    best = row_reduce<Lanes>(best, Better<Largest, Last>{}, none, shared);
    if (lane == 0) y[r] = best.at < 0 ? 0 : best.at;
  }
}

// inner > 1: a block per (o, 32 columns), threadIdx.y walking n.
template <bool Largest, bool Last>
__global__ void __launch_bounds__(kColumnWidth * kColumnRows)
    arg_reduce_middle_kernel(int64_t outer, int64_t n, int64_t inner, const float* __restrict__ x,
                             int64_t* __restrict__ y) {
  __shared__ Candidate part[kColumnRows][kColumnWidth + 1];
  const Candidate none{0.0f, 0, -1};
  const int64_t tiles = (inner + kColumnWidth - 1) / kColumnWidth;
  for (int64_t job = blockIdx.x; job < outer * tiles; job += gridDim.x) {
    const int64_t o = job / tiles, col = job % tiles * kColumnWidth + threadIdx.x;
    const bool active = col < inner;
    Candidate best = none;
    if (active)
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows)
        best = Better<Largest, Last>{}(best, {x[(o * n + k) * inner + col], 0, k});
    best = column_reduce(best, Better<Largest, Last>{}, part);
    if (active && threadIdx.y == 0) y[o * inner + col] = best.at < 0 ? 0 : best.at;
  }
}

template <bool Largest, bool Last>
const char* arg_reduce(int64_t outer, int64_t n, int64_t inner, const float* x, int64_t* y, const flowc_cuda* cu) {
  if (inner == 1) {
    if (warp_per_row(n))
      arg_reduce_rows_kernel<32, Largest, Last>
          <<<grid_for(outer * 32, kWarpRowThreads), kWarpRowThreads, 0, cu->stream>>>(outer, n, x, y);
    else
      arg_reduce_rows_kernel<kBlockRowThreads, Largest, Last>
          <<<grid_for(outer, 1), kBlockRowThreads, 0, cu->stream>>>(outer, n, x, y);
  } else {
    const int64_t jobs = outer * ((inner + kColumnWidth - 1) / kColumnWidth);
    arg_reduce_middle_kernel<Largest, Last>
        <<<grid_for(jobs, 1), dim3(kColumnWidth, kColumnRows), 0, cu->stream>>>(outer, n, inner, x, y);
  }
  return launch_status();
}

template <class T>
__global__ void cumsum_kernel(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse, const T* x,
                              T* y) {
  FLOWC_GRID_LOOP(int64_t, t, outer * inner) {
    const int64_t o = t / inner, i = t % inner;
    T acc = T(0);
    for (int64_t s = 0; s < n; ++s) {
      const int64_t at = (o * n + (reverse ? n - 1 - s : s)) * inner + i;
      const T v = x[at];  // read before the write: y may equal x
      if (exclusive) {
        y[at] = acc;
        acc = T(acc + v);
      } else {
        acc = T(acc + v);
        y[at] = acc;
      }
    }
  }
}

template <class T>
const char* cumsum(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse, const T* x, T* y,
                   const flowc_cuda* cu) {
  if (outer <= 0 || n <= 0 || inner <= 0) return nullptr;
  cumsum_kernel<T><<<grid_for(outer * inner), kThreads, 0, cu->stream>>>(outer, n, inner, exclusive, reverse, x, y);
  return launch_status();
}

// Top-k's order: a before b when its value is larger (smaller without Largest; a NaN above every
// number either way), ties to the lower position; `none` (at < 0) comes after everything.
template <bool Largest>
struct Before {
  FLOWC_CUDA_HD static bool above(float a, float b) { return a != a ? b == b : a > b; }
  FLOWC_CUDA_HD bool operator()(const Candidate& a, const Candidate& b) const {
    if (b.at < 0) return a.at >= 0;
    if (a.at < 0) return false;
    if (Largest) return above(a.value, b.value) || (!above(b.value, a.value) && a.at < b.at);
    return above(b.value, a.value) || (!above(a.value, b.value) && a.at < b.at);
  }
};

template <bool Largest>
struct First {
  FLOWC_CUDA_HD Candidate operator()(const Candidate& a, const Candidate& b) const {
    return Before<Largest>{}(a, b) ? a : b;
  }
};

constexpr int kTopkThreads = schedule::topk::kThreads;

template <bool Largest>
__global__ void __launch_bounds__(kTopkThreads)
    topk_kernel(int64_t outer, int64_t n, int64_t inner, int64_t k, const float* __restrict__ x,
                float* __restrict__ values, int64_t* __restrict__ indices) {
  __shared__ Candidate shared[32];
  const Candidate none{0.0f, 0, -1};
  for (int64_t t = blockIdx.x; t < outer * inner; t += gridDim.x) {
    const int64_t o = t / inner, i = t % inner;
    const float* column = x + o * n * inner + i;
    Candidate previous = none;  // the element chosen last round
    for (int64_t j = 0; j < k; ++j) {
      Candidate mine = none;  // the first element after `previous` among this thread's
      for (int64_t a = threadIdx.x; a < n; a += blockDim.x) {
        const Candidate c{column[a * inner], 0, a};
        if ((previous.at < 0 || Before<Largest>{}(previous, c)) && Before<Largest>{}(c, mine)) mine = c;
      }
      previous = block_reduce(mine, First<Largest>{}, none, shared);
      if (threadIdx.x == 0) {
        values[(o * k + j) * inner + i] = previous.value;
        indices[(o * k + j) * inner + i] = previous.at;
      }
    }
  }
}

template <class T>
const char* reduce_trailing(flowc_reduce_op op, int64_t outer, int64_t inner, const T* x, T* y, const flowc_cuda* cu) {
  if (outer <= 0) return nullptr;
  const bool warp = warp_per_row(inner);
  const unsigned blocks = warp ? grid_for(outer * 32, kWarpRowThreads) : grid_for(outer, 1);
  const int threads = warp ? kWarpRowThreads : kBlockRowThreads;
  if (op == FLOWC_REDUCE_LOG_SUM_EXP) {
    if (warp) log_sum_exp_rows_kernel<32><<<blocks, threads, 0, cu->stream>>>(outer, inner, x, y);
    else log_sum_exp_rows_kernel<kBlockRowThreads><<<blocks, threads, 0, cu->stream>>>(outer, inner, x, y);
    return launch_status();
  }
  return dispatch(op, [&](auto map, auto combine) {
    using M = decltype(map);
    using C = decltype(combine);
    if (warp) reduce_rows_kernel<32, M, C><<<blocks, threads, 0, cu->stream>>>(op, outer, inner, x, y);
    else reduce_rows_kernel<kBlockRowThreads, M, C><<<blocks, threads, 0, cu->stream>>>(op, outer, inner, x, y);
    return launch_status();
  });
}

template <class T>
const char* reduce_middle(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner, const T* x, T* y,
                          const flowc_cuda* cu) {
  if (outer <= 0 || inner <= 0) return nullptr;
  const unsigned blocks = grid_for(outer * ((inner + kColumnWidth - 1) / kColumnWidth), 1);
  const dim3 threads(kColumnWidth, kColumnRows);
  if (op == FLOWC_REDUCE_LOG_SUM_EXP) {
    log_sum_exp_middle_kernel<<<blocks, threads, 0, cu->stream>>>(outer, r, inner, x, y);
    return launch_status();
  }
  return dispatch(op, [&](auto map, auto combine) {
    reduce_middle_kernel<decltype(map), decltype(combine)>
        <<<blocks, threads, 0, cu->stream>>>(op, outer, r, inner, x, y);
    return launch_status();
  });
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

// The entry points of storage type T, named with suffix S (kernels.h).
#define FLOWC_CUDA_REDUCE(S, T)                                                                                    \
  const char* flowc_cuda_reduce_trailing_##S(flowc_reduce_op op, int64_t outer, int64_t inner, const T* x, T* y,  \
                                             const flowc_cuda* cu) {                                              \
    return reduce_trailing(op, outer, inner, x, y, cu);                                                           \
  }                                                                                                               \
  const char* flowc_cuda_reduce_middle_##S(flowc_reduce_op op, int64_t outer, int64_t r, int64_t inner,           \
                                           const T* x, T* y, const flowc_cuda* cu) {                              \
    return reduce_middle(op, outer, r, inner, x, y, cu);                                                          \
  }
FLOWC_CUDA_REDUCE(f32, float)
FLOWC_CUDA_REDUCE(f16, __half)
FLOWC_CUDA_REDUCE(bf16, __nv_bfloat16)
#undef FLOWC_CUDA_REDUCE

const char* flowc_cuda_arg_reduce_f32(bool largest, bool last, int64_t outer, int64_t n, int64_t inner, const float* x,
                                      int64_t* y, const flowc_cuda* cu) {
  if (outer <= 0 || inner <= 0) return nullptr;
  if (largest) return (last ? arg_reduce<true, true> : arg_reduce<true, false>)(outer, n, inner, x, y, cu);
  return (last ? arg_reduce<false, true> : arg_reduce<false, false>)(outer, n, inner, x, y, cu);
}

const char* flowc_cuda_cumsum_f32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const float* x, float* y, const flowc_cuda* cu) {
  return cumsum(outer, n, inner, exclusive, reverse, x, y, cu);
}
const char* flowc_cuda_cumsum_f64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const double* x, double* y, const flowc_cuda* cu) {
  return cumsum(outer, n, inner, exclusive, reverse, x, y, cu);
}
const char* flowc_cuda_cumsum_i32(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const int32_t* x, int32_t* y, const flowc_cuda* cu) {
  return cumsum(outer, n, inner, exclusive, reverse, x, y, cu);
}
const char* flowc_cuda_cumsum_i64(int64_t outer, int64_t n, int64_t inner, bool exclusive, bool reverse,
                                  const int64_t* x, int64_t* y, const flowc_cuda* cu) {
  return cumsum(outer, n, inner, exclusive, reverse, x, y, cu);
}

const char* flowc_cuda_topk_f32(bool largest, int64_t outer, int64_t n, int64_t inner, int64_t k, const float* x,
                                float* values, int64_t* indices, const flowc_cuda* cu) {
  if (k < 0 || k > n) return "flowc_cuda_topk_f32: k must lie in [0, n]";
  if (outer <= 0 || inner <= 0 || k == 0) return nullptr;
  const unsigned blocks = grid_for(outer * inner, 1);
  if (largest) topk_kernel<true><<<blocks, kTopkThreads, 0, cu->stream>>>(outer, n, inner, k, x, values, indices);
  else topk_kernel<false><<<blocks, kTopkThreads, 0, cu->stream>>>(outer, n, inner, k, x, values, indices);
  return launch_status();
}
