// Max and average pooling over NCHW f32, f16 or bf16 (computing in f32; max pooling with indices over
// f32 only), as runtime/kernels/cpu/pool.cpp: one thread per output, the window's taps in (r, s)
// order (each kernel's body a __host__ __device__ function of the output index). Global average
// pooling is a trailing-axis mean.
#include "common.cuh"

namespace flowc::cuda {
namespace {

template <class I>
struct Position {  // of output t: plane (n, c), row, column
  I plane, oh, ow;
};

template <class I>
FLOWC_CUDA_HD Position<I> position(const flowc_pool2d_params& p, I t) {
  const I OW = I(p.out_w), OH = I(p.out_h);
  return {t / (OW * OH), t / OW % OH, t % OW};
}

// Windows lying wholly in padding give -inf; a NaN never wins (b > a fails), as the CPU's.
template <class I, class T>
FLOWC_CUDA_HD float maxpool_element(const flowc_pool2d_params& p, I t, const T* x) {
  const Position<I> o = position(p, t);
  const T* in = x + int64_t(o.plane) * p.in_h * p.in_w;
  float best = -INFINITY;
  for (int64_t r = 0; r < p.kernel_h; ++r) {
    const int64_t ih = int64_t(o.oh) * p.stride_h - p.pad_top + r * p.dilation_h;
    if (ih < 0 || ih >= p.in_h) continue;
    for (int64_t s = 0; s < p.kernel_w; ++s) {
      const int64_t iw = int64_t(o.ow) * p.stride_w - p.pad_left + s * p.dilation_w;
      if (iw < 0 || iw >= p.in_w) continue;
      const float v = load(in[ih * p.in_w + iw]);
      best = v > best ? v : best;
    }
  }
  return best;
}

template <class I, class T>
__global__ void maxpool_kernel(flowc_pool2d_params p, const T* __restrict__ x, T* __restrict__ y) {
  const I total = I(p.batch * p.channels * p.out_h * p.out_w);
  FLOWC_GRID_LOOP(I, t, total) y[t] = store<T>(maxpool_element(p, t, x));
}

// As ONNX's reference: the first tap starts the window (its value, or -inf in the padding, and its
// position either way); a later tap inside x replaces it only when strictly larger.
template <class I>
FLOWC_CUDA_HD float maxpool_indices_element(const flowc_pool2d_params& p, bool column_major, I t, const float* x,
                                            int64_t* index) {
  const int64_t H = p.in_h, W = p.in_w, step_h = column_major ? 1 : W, step_w = column_major ? H : 1;
  const Position<I> o = position(p, t);
  const int64_t plane = int64_t(o.plane) * H * W;
  const float* in = x + plane;
  const int64_t ih0 = int64_t(o.oh) * p.stride_h - p.pad_top, iw0 = int64_t(o.ow) * p.stride_w - p.pad_left;
  float best = ih0 >= 0 && ih0 < H && iw0 >= 0 && iw0 < W ? in[ih0 * W + iw0] : -INFINITY;
  int64_t where = plane + ih0 * step_h + iw0 * step_w;
  for (int64_t r = 0; r < p.kernel_h; ++r) {
    const int64_t ih = ih0 + r * p.dilation_h;
    if (ih < 0 || ih >= H) continue;
    for (int64_t s = r == 0 ? 1 : 0; s < p.kernel_w; ++s) {
      const int64_t iw = iw0 + s * p.dilation_w;
      if (iw < 0 || iw >= W) continue;
      const float v = in[ih * W + iw];
      if (v > best) best = v, where = plane + ih * step_h + iw * step_w;
    }
  }
  *index = where;
  return best;
}

template <class I>
__global__ void maxpool_indices_kernel(flowc_pool2d_params p, bool column_major, const float* __restrict__ x,
                                       float* __restrict__ y, int64_t* __restrict__ indices) {
  const I total = I(p.batch * p.channels * p.out_h * p.out_w);
  FLOWC_GRID_LOOP(I, t, total) y[t] = maxpool_indices_element(p, column_major, t, x, &indices[t]);
}

// Taps k < kernel of a window starting at `begin` with positions in [lo, hi).
FLOWC_CUDA_HD int64_t taps_inside(int64_t begin, int64_t kernel, int64_t dilation, int64_t lo, int64_t hi) {
  if (dilation == 1) return std::max<int64_t>(0, std::min(begin + kernel, hi) - std::max(begin, lo));
  int64_t n = 0;
  for (int64_t k = 0; k < kernel; ++k) n += begin + k * dilation >= lo && begin + k * dilation < hi;
  return n;
}

// The sum of the taps inside x, divided by the taps inside the padded input (count_include_pad) or
// inside x; 0 when there are none.
template <class I, class T>
FLOWC_CUDA_HD float avgpool_element(const flowc_pool2d_params& p, bool count_include_pad, I t, const T* x) {
  const Position<I> o = position(p, t);
  const T* in = x + int64_t(o.plane) * p.in_h * p.in_w;
  const int64_t ih0 = int64_t(o.oh) * p.stride_h - p.pad_top, iw0 = int64_t(o.ow) * p.stride_w - p.pad_left;
  float sum = 0.0f;
  for (int64_t r = 0; r < p.kernel_h; ++r) {
    const int64_t ih = ih0 + r * p.dilation_h;
    if (ih < 0 || ih >= p.in_h) continue;
    for (int64_t s = 0; s < p.kernel_w; ++s) {
      const int64_t iw = iw0 + s * p.dilation_w;
      if (iw >= 0 && iw < p.in_w) sum += load(in[ih * p.in_w + iw]);
    }
  }
  const int64_t rows_lo = count_include_pad ? -p.pad_top : 0;
  const int64_t rows_hi = count_include_pad ? p.in_h + p.pad_bottom : p.in_h;
  const int64_t cols_lo = count_include_pad ? -p.pad_left : 0;
  const int64_t cols_hi = count_include_pad ? p.in_w + p.pad_right : p.in_w;
  const int64_t n = taps_inside(ih0, p.kernel_h, p.dilation_h, rows_lo, rows_hi) *
                    taps_inside(iw0, p.kernel_w, p.dilation_w, cols_lo, cols_hi);
  return n ? sum / float(n) : 0.0f;
}

template <class I, class T>
__global__ void avgpool_kernel(flowc_pool2d_params p, bool count_include_pad, const T* __restrict__ x,
                               T* __restrict__ y) {
  const I total = I(p.batch * p.channels * p.out_h * p.out_w);
  FLOWC_GRID_LOOP(I, t, total) y[t] = store<T>(avgpool_element(p, count_include_pad, t, x));
}

int64_t outputs(const flowc_pool2d_params* p) { return p->batch * p->channels * p->out_h * p->out_w; }

template <class T>
const char* maxpool(const flowc_pool2d_params* p, const T* x, T* y, const flowc_cuda* cu) {
  const int64_t n = outputs(p);
  if (n == 0) return nullptr;
  if (fits_u32(n)) maxpool_kernel<uint32_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, x, y);
  else maxpool_kernel<int64_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, x, y);
  return launch_status();
}

template <class T>
const char* avgpool(const flowc_pool2d_params* p, bool count_include_pad, const T* x, T* y, const flowc_cuda* cu) {
  const int64_t n = outputs(p);
  if (n == 0) return nullptr;
  if (fits_u32(n)) avgpool_kernel<uint32_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, count_include_pad, x, y);
  else avgpool_kernel<int64_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, count_include_pad, x, y);
  return launch_status();
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

// The entry points of storage type T, named with suffix S (kernels.h).
#define FLOWC_CUDA_POOL(S, T)                                                                                      \
  const char* flowc_cuda_maxpool2d_##S(const flowc_pool2d_params* p, const T* x, T* y, const flowc_cuda* cu) {    \
    return maxpool(p, x, y, cu);                                                                                  \
  }                                                                                                               \
  const char* flowc_cuda_avgpool2d_##S(const flowc_pool2d_params* p, bool count_include_pad, const T* x, T* y,    \
                                       const flowc_cuda* cu) {                                                    \
    return avgpool(p, count_include_pad, x, y, cu);                                                               \
  }                                                                                                               \
  const char* flowc_cuda_global_avgpool_##S(int64_t batch_channels, int64_t spatial, const T* x, T* y,            \
                                            const flowc_cuda* cu) {                                               \
    return flowc_cuda_reduce_trailing_##S(FLOWC_REDUCE_MEAN, batch_channels, spatial, x, y, cu);                  \
  }
FLOWC_CUDA_POOL(f32, float)
FLOWC_CUDA_POOL(f16, __half)
FLOWC_CUDA_POOL(bf16, __nv_bfloat16)
#undef FLOWC_CUDA_POOL

const char* flowc_cuda_maxpool2d_indices_f32(const flowc_pool2d_params* p, bool column_major, const float* x,
                                             float* y, int64_t* indices, const flowc_cuda* cu) {
  const int64_t n = outputs(p);
  if (n == 0) return nullptr;
  if (fits_u32(n))
    maxpool_indices_kernel<uint32_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, column_major, x, y, indices);
  else maxpool_indices_kernel<int64_t><<<grid_for(n), kThreads, 0, cu->stream>>>(*p, column_major, x, y, indices);
  return launch_status();
}
