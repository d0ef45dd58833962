// Softmax, log-softmax, layer norm and group norm over f32, f16 or bf16 (computing in f32), as
// runtime/kernels/cpu/normalization.cpp and group_norm.cpp.
//
// Rows (softmax, layer norm): one warp per row up to 1024 elements (8 rows per block of 256), else
// one block of 512 per row; each reduction is a warp butterfly (plus shared memory across warps).
// Softmax takes three passes over the row (max, sum of exp(x - max), write): numpy's result in
// every case, a NaN anywhere or a row of all -inf giving NaN. (The CPU kernel agrees on ordinary
// input only: its clamped exp turns a NaN into ~0, and a row of n values all -inf into 1/(n % 16)
// each, or inf when 16 divides n.)
// The middle-axis softmax runs blocks of (32 columns, 8 threads along the axis), reduced in shared
// memory. Layer norm uses the CPU's shifted sums (of x - x[0]); group norm one block per
// (sample, group), the mean then the mean square deviation from it, as the CPU's two passes.
// The block shapes are schedule.h's (schedules/cuda.py's ROWS and COLUMNS).
#include "common.cuh"

namespace flowc::cuda {
namespace {

template <int Lanes, bool Log, class T>
__global__ void __launch_bounds__(kBlockRowThreads)
    softmax_rows_kernel(int64_t rows, int64_t n, const T* x, T* y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < rows; r += gridDim.x * per_block) {
    const T* xr = x + r * n;
    T* yr = y + r * n;  // may equal xr: each element is read and written by the same thread
    float mx = -INFINITY;
    for (int64_t i = lane; i < n; i += Lanes) mx = NanMaxOp{}(mx, load(xr[i]));
    mx = row_reduce<Lanes>(mx, NanMaxOp{}, -INFINITY, shared);
    float sum = 0.0f;
    for (int64_t i = lane; i < n; i += Lanes) sum += expf(load(xr[i]) - mx);
    sum = row_reduce<Lanes>(sum, AddOp{}, 0.0f, shared);
    if (Log) {  // (x - max) - log(sum), as the CPU kernel: max + log(sum) would round log(sum) away
      const float log_sum = logf(sum);
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = store<T>((load(xr[i]) - mx) - log_sum);
    } else {
      const float inv = 1.0f / sum;
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = store<T>(expf(load(xr[i]) - mx) * inv);
    }
  }
}

// x as [rows, n, inner]: a block per (row, 32 columns), threadIdx.y walking the n axis.
template <bool Log, class T>
__global__ void __launch_bounds__(kColumnWidth * kColumnRows)
    softmax_strided_kernel(int64_t rows, int64_t n, int64_t inner, const T* x, T* y) {
  __shared__ float part[kColumnRows][kColumnWidth + 1];
  const int64_t tiles = (inner + kColumnWidth - 1) / kColumnWidth;
  for (int64_t job = blockIdx.x; job < rows * tiles; job += gridDim.x) {
    const int64_t r = job / tiles, col = job % tiles * kColumnWidth + threadIdx.x;
    const bool active = col < inner;
    const T* xc = x + r * n * inner + col;
    T* yc = y + r * n * inner + col;
    float mx = -INFINITY;
    if (active)
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) mx = NanMaxOp{}(mx, load(xc[k * inner]));
    mx = column_reduce(mx, NanMaxOp{}, part);
    float sum = 0.0f;
    if (active)
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) sum += expf(load(xc[k * inner]) - mx);
    sum = column_reduce(sum, AddOp{}, part);
    if (!active) continue;
    if (Log) {
      const float log_sum = logf(sum);
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows)
        yc[k * inner] = store<T>((load(xc[k * inner]) - mx) - log_sum);
    } else {
      const float inv = 1.0f / sum;
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows)
        yc[k * inner] = store<T>(expf(load(xc[k * inner]) - mx) * inv);
    }
  }
}

template <int Lanes, class T>
__global__ void __launch_bounds__(kBlockRowThreads)
    layer_norm_kernel(int64_t rows, int64_t n, const T* x, const T* __restrict__ gamma, const T* __restrict__ beta,
                      float epsilon, T* y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < rows; r += gridDim.x * per_block) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    // Sums of x - x[0] keep var = E[d^2] - E[d]^2 free of cancellation when the mean is large.
    const float shift = load(xr[0]);
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = lane; i < n; i += Lanes) {
      const float d = load(xr[i]) - shift;
      s1 += d;
      s2 += d * d;
    }
    s1 = row_reduce<Lanes>(s1, AddOp{}, 0.0f, shared);
    s2 = row_reduce<Lanes>(s2, AddOp{}, 0.0f, shared);
    const float mean_d = s1 / float(n);
    const float var = fmaxf(s2 / float(n) - mean_d * mean_d, 0.0f);
    const float inv = 1.0f / sqrtf(var + epsilon), mean = shift + mean_d;
    if (beta)
      for (int64_t i = lane; i < n; i += Lanes)
        yr[i] = store<T>((load(xr[i]) - mean) * inv * load(gamma[i]) + load(beta[i]));
    else
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = store<T>((load(xr[i]) - mean) * inv * load(gamma[i]));
  }
}

// One block per (sample, group) of per_group * spatial consecutive elements.
template <class T>
__global__ void __launch_bounds__(kBlockRowThreads)
    group_norm_kernel(int64_t batch, int64_t groups, int64_t per_group, int64_t spatial, const T* x,
                      const T* __restrict__ scale, const T* __restrict__ bias, float epsilon, T* y) {
  __shared__ float shared[32];
  const int64_t n = per_group * spatial;
  for (int64_t t = blockIdx.x; t < batch * groups; t += gridDim.x) {
    const T* xg = x + t * n;
    T* yg = y + t * n;
    const float first = load(xg[0]);
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += load(xg[i]) - first;
    const float mean = first + block_reduce(s, AddOp{}, 0.0f, shared) / float(n);
    s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (load(xg[i]) - mean) * (load(xg[i]) - mean);
    const float inv = 1.0f / sqrtf(block_reduce(s, AddOp{}, 0.0f, shared) / float(n) + epsilon);
    const int64_t channel0 = t % groups * per_group;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t c = channel0 + i / spatial;
      yg[i] = store<T>((load(xg[i]) - mean) * (inv * load(scale[c])) + load(bias[c]));
    }
  }
}

template <bool Log, class T>
const char* softmax(int64_t rows, int64_t n, const T* x, T* y, const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0) return nullptr;
  if (warp_per_row(n))
    softmax_rows_kernel<32, Log>
        <<<grid_for(rows * 32, kWarpRowThreads), kWarpRowThreads, 0, cu->stream>>>(rows, n, x, y);
  else
    softmax_rows_kernel<kBlockRowThreads, Log><<<grid_for(rows, 1), kBlockRowThreads, 0, cu->stream>>>(rows, n, x, y);
  return launch_status();
}

template <bool Log, class T>
const char* softmax_strided(int64_t rows, int64_t n, int64_t inner, const T* x, T* y, const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0 || inner <= 0) return nullptr;
  const int64_t jobs = rows * ((inner + kColumnWidth - 1) / kColumnWidth);
  softmax_strided_kernel<Log>
      <<<grid_for(jobs, 1), dim3(kColumnWidth, kColumnRows), 0, cu->stream>>>(rows, n, inner, x, y);
  return launch_status();
}

template <class T>
const char* layer_norm(int64_t rows, int64_t n, const T* x, const T* gamma, const T* beta, float epsilon, T* y,
                       const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0) return nullptr;
  if (warp_per_row(n))
    layer_norm_kernel<32><<<grid_for(rows * 32, kWarpRowThreads), kWarpRowThreads, 0, cu->stream>>>(rows, n, x, gamma,
                                                                                                 beta, epsilon, y);
  else
    layer_norm_kernel<kBlockRowThreads><<<grid_for(rows, 1), kBlockRowThreads, 0, cu->stream>>>(rows, n, x, gamma,
                                                                                               beta, epsilon, y);
  return launch_status();
}

template <class T>
const char* group_norm(int64_t batch, int64_t channels, int64_t groups, int64_t spatial, const T* x, const T* scale,
                       const T* bias, float epsilon, T* y, const flowc_cuda* cu) {
  if (groups <= 0 || channels % groups != 0)
    return FLOWC_CUDA_NAMED(T, "flowc_cuda_group_norm", ": channels must be a multiple of groups");
  if (batch <= 0 || channels == 0 || spatial <= 0) return nullptr;
  group_norm_kernel<<<grid_for(batch * groups, 1), kBlockRowThreads, 0, cu->stream>>>(
      batch, groups, channels / groups, spatial, x, scale, bias, epsilon, y);
  return launch_status();
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

// The entry points of storage type T, named with suffix S (kernels.h).
#define FLOWC_CUDA_NORMALIZATION(S, T)                                                                             \
  const char* flowc_cuda_softmax_##S(int64_t rows, int64_t n, const T* x, T* y, const flowc_cuda* cu) {           \
    return softmax<false>(rows, n, x, y, cu);                                                                     \
  }                                                                                                               \
  const char* flowc_cuda_log_softmax_##S(int64_t rows, int64_t n, const T* x, T* y, const flowc_cuda* cu) {       \
    return softmax<true>(rows, n, x, y, cu);                                                                      \
  }                                                                                                               \
  const char* flowc_cuda_softmax_strided_##S(int64_t rows, int64_t n, int64_t inner, const T* x, T* y,            \
                                             const flowc_cuda* cu) {                                              \
    return softmax_strided<false>(rows, n, inner, x, y, cu);                                                      \
  }                                                                                                               \
  const char* flowc_cuda_log_softmax_strided_##S(int64_t rows, int64_t n, int64_t inner, const T* x, T* y,        \
                                                 const flowc_cuda* cu) {                                          \
    return softmax_strided<true>(rows, n, inner, x, y, cu);                                                       \
  }                                                                                                               \
  const char* flowc_cuda_layer_norm_##S(int64_t rows, int64_t n, const T* x, const T* gamma, const T* beta,       \
                                        float epsilon, T* y, const flowc_cuda* cu) {                              \
    return layer_norm(rows, n, x, gamma, beta, epsilon, y, cu);                                                   \
  }                                                                                                               \
  const char* flowc_cuda_group_norm_##S(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,         \
                                        const T* x, const T* scale, const T* bias, float epsilon, T* y,           \
                                        const flowc_cuda* cu) {                                                   \
    return group_norm(batch, channels, groups, spatial, x, scale, bias, epsilon, y, cu);                          \
  }
FLOWC_CUDA_NORMALIZATION(f32, float)
FLOWC_CUDA_NORMALIZATION(f16, __half)
FLOWC_CUDA_NORMALIZATION(bf16, __nv_bfloat16)
#undef FLOWC_CUDA_NORMALIZATION
