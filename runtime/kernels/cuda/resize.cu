// Resize (ONNX) of the last two axes of [outer, in_h, in_w], as runtime/kernels/cpu/resize.cpp:
// nearest over any element size, linear and cubic over f32. One thread per output element computes
// its own taps with the CPU's exact operations: source coordinates in f32, weights in f64 (the
// antialias and exclude_outside normalisations summed in the CPU's order), then mixes axis h
// (t = w0 x0 + w1 x1 + ...) for each tap column, then axis w (acc = 0 + w0 t0 + ...), as the
// CPU's separable passes. Built with -fmad=false (CMakeLists.txt): no fused multiply-adds, so a
// coordinate, its rounding and every weight match the CPU's bit for bit.
#include "common.cuh"

namespace flowc::cuda {
namespace {

FLOWC_CUDA_HD float source_coordinate(const flowc_resize_params& p, const flowc_resize_axis& a, int64_t i) {
  const float y = float(i), scale = float(a.scale), size = float(a.in);
  switch (p.coordinates) {
    case FLOWC_RESIZE_HALF_PIXEL_SYMMETRIC:
      return size / 2.0f * (1.0f - float(a.out) / (scale * size)) + (y + 0.5f) / scale - 0.5f;
    case FLOWC_RESIZE_PYTORCH_HALF_PIXEL:
      return a.out > 1 ? (y + 0.5f) / scale - 0.5f : 0.0f;
    case FLOWC_RESIZE_ALIGN_CORNERS:
      return a.out > 1 ? y * (size - 1.0f) / (scale * size - 1.0f) : 0.0f;
    case FLOWC_RESIZE_ASYMMETRIC:
      return y / scale;
    case FLOWC_RESIZE_TF_CROP_AND_RESIZE: {
      const float start = float(a.roi_start), end = float(a.roi_end);
      if (a.out == 1) return (start + end) / 2.0f * (size - 1.0f);
      return start * (size - 1.0f) + y * (end - start) * (size - 1.0f) / float(a.out - 1);
    }
    default:  // half_pixel
      return (y + 0.5f) / scale - 0.5f;
  }
}

// Keys' cubic convolution kernel with coefficient a, at distance t.
FLOWC_CUDA_HD double cubic(double t, double a) {
  t = fabs(t);
  if (t <= 1.0) return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
  if (t < 2.0) return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
  return 0.0;
}

// The nearest input index of output i along a resized axis.
FLOWC_CUDA_HD int64_t nearest_index(const flowc_resize_params& p, const flowc_resize_axis& a, int64_t i) {
  const float src = source_coordinate(p, a, i), floor = floorf(src), frac = src - floor;
  const bool up = p.rounding == FLOWC_RESIZE_CEIL                 ? frac > 0.0f
                  : p.rounding == FLOWC_RESIZE_ROUND_PREFER_FLOOR ? frac > 0.5f
                  : p.rounding == FLOWC_RESIZE_ROUND_PREFER_CEIL  ? frac >= 0.5f
                                                                  : false;
  return std::min<int64_t>(std::max<int64_t>(int64_t(floor) + up, 0), a.in - 1);
}

FLOWC_CUDA_HD bool outside(const flowc_resize_params& p, const flowc_resize_axis& a, float src) {
  return p.coordinates == FLOWC_RESIZE_TF_CROP_AND_RESIZE && (src < 0.0f || src > float(a.in - 1));
}

// The taps of output i along a linear or cubic axis: index(k) and weight(k) for k < count, as the
// CPU's axis_table (normalising sums taken once here, in its order).
struct Taps {
  const flowc_resize_params* p;
  const flowc_resize_axis* a;
  float src;
  int64_t first, count;
  double shrink, total, kept_total;
  bool outside;

  FLOWC_CUDA_HD double raw(int64_t k) const {
    const double d = (double(first + k) - double(src)) * shrink;
    return p->mode == FLOWC_RESIZE_LINEAR ? fmax(0.0, 1.0 - fabs(d)) : cubic(d, p->cubic_coeff_a);
  }
  FLOWC_CUDA_HD double scaled(int64_t k) const { return p->antialias ? raw(k) / total : raw(k); }
  FLOWC_CUDA_HD bool inside(int64_t k) const { return first + k >= 0 && first + k < a->in; }
  FLOWC_CUDA_HD int64_t index(int64_t k) const { return std::min<int64_t>(std::max<int64_t>(first + k, 0), a->in - 1); }
  FLOWC_CUDA_HD float weight(int64_t k) const {
    if (!p->exclude_outside) return float(scaled(k));
    return float((inside(k) ? scaled(k) : 0.0) / (kept_total == 0.0 ? 1.0 : kept_total));
  }
};

FLOWC_CUDA_HD Taps taps_of(const flowc_resize_params& p, const flowc_resize_axis& a, int64_t i) {
  Taps t{&p, &a, source_coordinate(p, a, i), 0, 0, 1.0, 0.0, 0.0, false};
  const double reach = p.mode == FLOWC_RESIZE_LINEAR ? 1.0 : 2.0;
  // antialiasing widens the filter by 1/scale when shrinking
  t.shrink = p.antialias ? fmin(a.scale, 1.0) : 1.0;
  t.count = 2 - 2 * (int64_t(floor(-reach / t.shrink)) + 1);
  t.first = int64_t(ceilf(t.src)) - t.count / 2;
  t.outside = outside(p, a, t.src);
  if (p.antialias)
    for (int64_t k = 0; k < t.count; ++k) t.total += t.raw(k);
  if (p.exclude_outside)
    for (int64_t k = 0; k < t.count; ++k) t.kept_total += t.inside(k) ? t.scaled(k) : 0.0;
  return t;
}

int64_t out_size(const flowc_resize_axis& a) { return a.resized ? a.out : a.in; }

// Each kernel's body is a __host__ __device__ function of the output index (a host harness runs
// them against the CPU kernels).
template <class T>
FLOWC_CUDA_HD T resize_nearest_element(const flowc_resize_params& p, int64_t t, T fill, const T* x) {
  const int64_t OH = p.h.resized ? p.h.out : p.h.in, OW = p.w.resized ? p.w.out : p.w.in;
  const int64_t j = t % OW, i = t / OW % OH, o = t / (OW * OH);
  if (p.h.resized && outside(p, p.h, source_coordinate(p, p.h, i))) return fill;
  if (p.w.resized && outside(p, p.w, source_coordinate(p, p.w, j))) return fill;
  const int64_t row = p.h.resized ? nearest_index(p, p.h, i) : i;
  const int64_t col = p.w.resized ? nearest_index(p, p.w, j) : j;
  return x[(o * p.h.in + row) * p.w.in + col];
}

template <class T>
__global__ void resize_nearest_kernel(flowc_resize_params p, int64_t total, T fill, const T* __restrict__ x,
                                      T* __restrict__ y) {
  FLOWC_GRID_LOOP(int64_t, t, total) y[t] = resize_nearest_element(p, t, fill, x);
}

// Axis h's value at input column c for output row i: the taps' rows mixed (extrapolation outside).
FLOWC_CUDA_HD float mix_h(const flowc_resize_params& p, const Taps& h, const float* plane, int64_t i, int64_t c,
                          float extrapolation) {
  if (!p.h.resized) return plane[i * p.w.in + c];
  if (h.outside) return extrapolation;
  float v = h.weight(0) * plane[h.index(0) * p.w.in + c];
  for (int64_t k = 1; k < h.count; ++k) v += h.weight(k) * plane[h.index(k) * p.w.in + c];
  return v;
}

FLOWC_CUDA_HD float resize_element(const flowc_resize_params& p, int64_t t, float extrapolation, const float* x) {
  const int64_t OH = p.h.resized ? p.h.out : p.h.in, OW = p.w.resized ? p.w.out : p.w.in;
  const int64_t j = t % OW, i = t / OW % OH, o = t / (OW * OH);
  const float* plane = x + o * p.h.in * p.w.in;
  const Taps h = p.h.resized ? taps_of(p, p.h, i) : Taps{};
  if (!p.w.resized) return mix_h(p, h, plane, i, j, extrapolation);
  const Taps w = taps_of(p, p.w, j);
  float acc = 0.0f;
  for (int64_t k = 0; k < w.count; ++k) acc += w.weight(k) * mix_h(p, h, plane, i, w.index(k), extrapolation);
  return w.outside ? extrapolation : acc;
}

__global__ void resize_kernel(flowc_resize_params p, int64_t total, float extrapolation, const float* __restrict__ x,
                              float* __restrict__ y) {
  FLOWC_GRID_LOOP(int64_t, t, total) y[t] = resize_element(p, t, extrapolation, x);
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

const char* flowc_cuda_resize_nearest(const flowc_resize_params* p, int elem_size, const void* extrapolation,
                                      const void* x, void* y, const flowc_cuda* cu) {
  const int64_t total = p->outer * out_size(p->h) * out_size(p->w);
  if (total <= 0) return nullptr;
  flowc_resize_params q = *p;
  q.mode = FLOWC_RESIZE_NEAREST;
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    T fill{};
    if (extrapolation) std::memcpy(&fill, extrapolation, sizeof(T));
    resize_nearest_kernel<T><<<grid_for(total), kThreads, 0, cu->stream>>>(q, total, fill, static_cast<const T*>(x),
                                                                            static_cast<T*>(y));
    return launch_status();
  });
}

const char* flowc_cuda_resize_f32(const flowc_resize_params* p, float extrapolation, const float* x, float* y,
                                  const flowc_cuda* cu) {
  if (p->mode == FLOWC_RESIZE_NEAREST) return flowc_cuda_resize_nearest(p, sizeof(float), &extrapolation, x, y, cu);
  const int64_t total = p->outer * out_size(p->h) * out_size(p->w);
  if (total <= 0) return nullptr;
  resize_kernel<<<grid_for(total), kThreads, 0, cu->stream>>>(*p, total, extrapolation, x, y);
  return launch_status();
}
