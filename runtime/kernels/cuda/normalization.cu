// Softmax, log-softmax, layer norm and group norm over f32, as runtime/kernels/cpu/normalization.cpp
// and group_norm.cpp.
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
#include "common.cuh"

namespace flowc::cuda {
namespace {

template <int Lanes, bool Log>
__global__ void __launch_bounds__(kBlockRowThreads)
    softmax_rows_kernel(int64_t rows, int64_t n, const float* x, float* y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < rows; r += gridDim.x * per_block) {
    const float* xr = x + r * n;
    float* yr = y + r * n;  // may equal xr: each element is read and written by the same thread
    float mx = -INFINITY;
    for (int64_t i = lane; i < n; i += Lanes) mx = NanMaxOp{}(mx, xr[i]);
    mx = row_reduce<Lanes>(mx, NanMaxOp{}, -INFINITY, shared);
    float sum = 0.0f;
    for (int64_t i = lane; i < n; i += Lanes) sum += expf(xr[i] - mx);
    sum = row_reduce<Lanes>(sum, AddOp{}, 0.0f, shared);
    if (Log) {
      const float shift = mx + logf(sum);
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = xr[i] - shift;
    } else {
      const float inv = 1.0f / sum;
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = expf(xr[i] - mx) * inv;
    }
  }
}

// x as [rows, n, inner]: a block per (row, 32 columns), threadIdx.y walking the n axis.
template <bool Log>
__global__ void __launch_bounds__(32 * kColumnRows)
    softmax_strided_kernel(int64_t rows, int64_t n, int64_t inner, const float* x, float* y) {
  __shared__ float part[kColumnRows][33];
  const int64_t tiles = (inner + 31) / 32;
  for (int64_t job = blockIdx.x; job < rows * tiles; job += gridDim.x) {
    const int64_t r = job / tiles, col = job % tiles * 32 + threadIdx.x;
    const bool active = col < inner;
    const float* xc = x + r * n * inner + col;
    float* yc = y + r * n * inner + col;
    float mx = -INFINITY;
    if (active)
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) mx = NanMaxOp{}(mx, xc[k * inner]);
    mx = column_reduce(mx, NanMaxOp{}, part);
    float sum = 0.0f;
    if (active)
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) sum += expf(xc[k * inner] - mx);
    sum = column_reduce(sum, AddOp{}, part);
    if (!active) continue;
    if (Log) {
      const float shift = mx + logf(sum);
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) yc[k * inner] = xc[k * inner] - shift;
    } else {
      const float inv = 1.0f / sum;
      for (int64_t k = threadIdx.y; k < n; k += kColumnRows) yc[k * inner] = expf(xc[k * inner] - mx) * inv;
    }
  }
}

template <int Lanes>
__global__ void __launch_bounds__(kBlockRowThreads)
    layer_norm_kernel(int64_t rows, int64_t n, const float* x, const float* __restrict__ gamma,
                      const float* __restrict__ beta, float epsilon, float* y) {
  __shared__ float shared[32];
  const int lane = threadIdx.x % Lanes;
  const int64_t per_block = blockDim.x / Lanes;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / Lanes; r < rows; r += gridDim.x * per_block) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    // Sums of x - x[0] keep var = E[d^2] - E[d]^2 free of cancellation when the mean is large.
    const float shift = xr[0];
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = lane; i < n; i += Lanes) {
      const float d = xr[i] - shift;
      s1 += d;
      s2 += d * d;
    }
    s1 = row_reduce<Lanes>(s1, AddOp{}, 0.0f, shared);
    s2 = row_reduce<Lanes>(s2, AddOp{}, 0.0f, shared);
    const float mean_d = s1 / float(n);
    const float var = fmaxf(s2 / float(n) - mean_d * mean_d, 0.0f);
    const float inv = 1.0f / sqrtf(var + epsilon), mean = shift + mean_d;
    if (beta)
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
    else
      for (int64_t i = lane; i < n; i += Lanes) yr[i] = (xr[i] - mean) * inv * gamma[i];
  }
}

// One block per (sample, group) of per_group * spatial consecutive elements.
__global__ void __launch_bounds__(kBlockRowThreads)
    group_norm_kernel(int64_t batch, int64_t groups, int64_t per_group, int64_t spatial, const float* x,
                      const float* __restrict__ scale, const float* __restrict__ bias, float epsilon, float* y) {
  __shared__ float shared[32];
  const int64_t n = per_group * spatial;
  for (int64_t t = blockIdx.x; t < batch * groups; t += gridDim.x) {
    const float* xg = x + t * n;
    float* yg = y + t * n;
    const float first = xg[0];
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += xg[i] - first;
    const float mean = first + block_reduce(s, AddOp{}, 0.0f, shared) / float(n);
    s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (xg[i] - mean) * (xg[i] - mean);
    const float inv = 1.0f / sqrtf(block_reduce(s, AddOp{}, 0.0f, shared) / float(n) + epsilon);
    const int64_t channel0 = t % groups * per_group;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const int64_t c = channel0 + i / spatial;
      yg[i] = (xg[i] - mean) * (inv * scale[c]) + bias[c];
    }
  }
}

template <bool Log>
const char* softmax(int64_t rows, int64_t n, const float* x, float* y, const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0) return nullptr;
  if (warp_per_row(n))
    softmax_rows_kernel<32, Log><<<grid_for(rows * 32), kThreads, 0, cu->stream>>>(rows, n, x, y);
  else
    softmax_rows_kernel<kBlockRowThreads, Log><<<grid_for(rows, 1), kBlockRowThreads, 0, cu->stream>>>(rows, n, x, y);
  return launch_status();
}

template <bool Log>
const char* softmax_strided(int64_t rows, int64_t n, int64_t inner, const float* x, float* y, const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0 || inner <= 0) return nullptr;
  const int64_t jobs = rows * ((inner + 31) / 32);
  softmax_strided_kernel<Log><<<grid_for(jobs, 1), dim3(32, kColumnRows), 0, cu->stream>>>(rows, n, inner, x, y);
  return launch_status();
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

const char* flowc_cuda_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_cuda* cu) {
  return softmax<false>(rows, n, x, y, cu);
}

const char* flowc_cuda_log_softmax_f32(int64_t rows, int64_t n, const float* x, float* y, const flowc_cuda* cu) {
  return softmax<true>(rows, n, x, y, cu);
}

const char* flowc_cuda_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                                           const flowc_cuda* cu) {
  return softmax_strided<false>(rows, n, inner, x, y, cu);
}

const char* flowc_cuda_log_softmax_strided_f32(int64_t rows, int64_t n, int64_t inner, const float* x, float* y,
                                               const flowc_cuda* cu) {
  return softmax_strided<true>(rows, n, inner, x, y, cu);
}

const char* flowc_cuda_layer_norm_f32(int64_t rows, int64_t n, const float* x, const float* gamma, const float* beta,
                                      float epsilon, float* y, const flowc_cuda* cu) {
  if (rows <= 0 || n <= 0) return nullptr;
  if (warp_per_row(n))
    layer_norm_kernel<32><<<grid_for(rows * 32), kThreads, 0, cu->stream>>>(rows, n, x, gamma, beta, epsilon, y);
  else
    layer_norm_kernel<kBlockRowThreads><<<grid_for(rows, 1), kBlockRowThreads, 0, cu->stream>>>(rows, n, x, gamma,
                                                                                               beta, epsilon, y);
  return launch_status();
}

const char* flowc_cuda_group_norm_f32(int64_t batch, int64_t channels, int64_t groups, int64_t spatial,
                                      const float* x, const float* scale, const float* bias, float epsilon, float* y,
                                      const flowc_cuda* cu) {
  if (groups <= 0 || channels % groups != 0) return "flowc_cuda_group_norm_f32: channels must be a multiple of groups";
  if (batch <= 0 || channels == 0 || spatial <= 0) return nullptr;
  group_norm_kernel<<<grid_for(batch * groups, 1), kBlockRowThreads, 0, cu->stream>>>(
      batch, groups, channels / groups, spatial, x, scale, bias, epsilon, y);
  return launch_status();
}
