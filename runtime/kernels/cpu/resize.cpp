#include "resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "element.h"
#include "schedule.h"

// Built with -ffp-contract=off (CMakeLists.txt): source coordinates are computed in f32 with the
// reference's exact operations, since nearest rounding of exact halves depends on the last bit.

namespace {

using flowc::parallel_for;

// What one output index of an axis reads: `taps` input indices (clipped into the axis) and their
// weights, and whether tf_crop_and_resize samples outside the input there.
struct AxisTable {
  int64_t taps = 1;
  std::vector<int64_t> index;
  std::vector<float> weight;
  std::vector<unsigned char> outside;
};

float source_coordinate(const flowc_resize_params& p, const flowc_resize_axis& a, int64_t i) {
  const float y = float(i), scale = float(a.scale), size = float(a.in);
  switch (p.coordinates) {
    case FLOWC_RESIZE_HALF_PIXEL_SYMMETRIC:
      return size / 2.0f * (1.0f - float(a.out) / (scale * size)) + (y + 0.5f) / scale - 0.5f;
    case FLOWC_RESIZE_PYTORCH_HALF_PIXEL:
      return a.out > 1 ? (y + 0.5f) / scale - 0.5f : 0.0f;
    case FLOWC_RESIZE_ALIGN_CORNERS:
      // the resized length is scale * size, fractional when scales are given (as the reference)
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
double cubic(double t, double a) {
  t = std::fabs(t);
  if (t <= 1.0) return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0;
  if (t < 2.0) return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a;
  return 0.0;
}

AxisTable axis_table(const flowc_resize_params& p, const flowc_resize_axis& a) {
  AxisTable t;
  const bool nearest = p.mode == FLOWC_RESIZE_NEAREST;
  const double reach = p.mode == FLOWC_RESIZE_LINEAR ? 1.0 : 2.0;
  // antialiasing widens the filter by 1/scale when shrinking
  const double shrink = !nearest && p.antialias ? std::min(a.scale, 1.0) : 1.0;
  t.taps = nearest ? 1 : 2 - 2 * (int64_t(std::floor(-reach / shrink)) + 1);
  t.index.resize(size_t(a.out * t.taps));
  t.weight.resize(size_t(a.out * t.taps));
  t.outside.resize(size_t(a.out));
  std::vector<double> w(size_t(t.taps));
  const float last = float(a.in - 1);
  for (int64_t i = 0; i < a.out; ++i) {
    const float src = source_coordinate(p, a, i);
    t.outside[i] = p.coordinates == FLOWC_RESIZE_TF_CROP_AND_RESIZE && (src < 0.0f || src > last);
    int64_t* index = t.index.data() + i * t.taps;
    float* weight = t.weight.data() + i * t.taps;
    if (nearest) {
      const float floor = std::floor(src), frac = src - floor;
      bool up = p.rounding == FLOWC_RESIZE_CEIL                 ? frac > 0.0f
                : p.rounding == FLOWC_RESIZE_ROUND_PREFER_FLOOR ? frac > 0.5f
                : p.rounding == FLOWC_RESIZE_ROUND_PREFER_CEIL  ? frac >= 0.5f
                                                                : false;
      index[0] = std::clamp<int64_t>(int64_t(floor) + up, 0, a.in - 1);
      weight[0] = 1.0f;
      continue;
    }
    const int64_t first = int64_t(std::ceil(src)) - t.taps / 2;
    double total = 0.0;
    for (int64_t k = 0; k < t.taps; ++k) {
      const double d = (double(first + k) - double(src)) * shrink;
      w[k] = p.mode == FLOWC_RESIZE_LINEAR ? std::max(0.0, 1.0 - std::fabs(d))
                                           : cubic(d, p.cubic_coeff_a);
      total += w[k];
    }
    if (p.antialias)
      for (int64_t k = 0; k < t.taps; ++k) w[k] /= total;
    if (p.exclude_outside) {
      total = 0.0;
      for (int64_t k = 0; k < t.taps; ++k) {
        if (first + k < 0 || first + k >= a.in) w[k] = 0.0;
        total += w[k];
      }
      for (int64_t k = 0; k < t.taps; ++k) w[k] /= total == 0.0 ? 1.0 : total;
    }
    for (int64_t k = 0; k < t.taps; ++k) {
      index[k] = std::clamp<int64_t>(first + k, 0, a.in - 1);
      weight[k] = float(w[k]);
    }
  }
  return t;
}

int64_t out_size(const flowc_resize_axis& a) { return a.resized ? a.out : a.in; }

}  // namespace

void flowc_resize_nearest(const flowc_resize_params* p, int elem_size, const void* extrapolation,
                          const void* x, void* y, const flowc_parallel* par) {
  const int64_t H = p->h.in, W = p->w.in, OH = out_size(p->h), OW = out_size(p->w);
  if (p->outer * OH * OW == 0) return;
  flowc_resize_params q = *p;
  q.mode = FLOWC_RESIZE_NEAREST;
  const AxisTable th = p->h.resized ? axis_table(q, p->h) : AxisTable{};
  const AxisTable tw = p->w.resized ? axis_table(q, p->w) : AxisTable{};
  flowc::by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    T fill;
    std::memcpy(&fill, extrapolation, sizeof(T));
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    const int64_t min_rows = std::max<int64_t>(1, flowc::cpu::schedule::resize::kNearestGrain / OW);
    parallel_for(par, p->outer * OH, min_rows, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t o = r / OH, i = r % OH;
        T* __restrict dst = yt + r * OW;
        if (p->h.resized && th.outside[i]) {
          for (int64_t j = 0; j < OW; ++j) dst[j] = fill;
          continue;
        }
        const T* __restrict src = xt + (o * H + (p->h.resized ? th.index[i] : i)) * W;
        if (!p->w.resized) {
          std::memcpy(dst, src, W * sizeof(T));
          continue;
        }
        const int64_t* __restrict index = tw.index.data();
        const unsigned char* __restrict outside = tw.outside.data();
        for (int64_t j = 0; j < OW; ++j) dst[j] = outside[j] ? fill : src[index[j]];
      }
    });
  });
}

void flowc_resize_f32(const flowc_resize_params* p, float extrapolation, const float* x, float* y,
                      const flowc_parallel* par) {
  if (p->mode == FLOWC_RESIZE_NEAREST) {
    flowc_resize_nearest(p, sizeof(float), &extrapolation, x, y, par);
    return;
  }
  const int64_t H = p->h.in, W = p->w.in, OH = out_size(p->h), OW = out_size(p->w);
  if (p->outer * OH * OW == 0) return;
  const AxisTable th = p->h.resized ? axis_table(*p, p->h) : AxisTable{};
  const AxisTable tw = p->w.resized ? axis_table(*p, p->w) : AxisTable{};
  const int64_t min_rows = std::max<int64_t>(1, flowc::cpu::schedule::resize::kLinearGrain / (OW + W));
  parallel_for(par, p->outer * OH, min_rows, [&](int64_t lo, int64_t hi) {
    std::vector<float> row(p->h.resized ? size_t(W) : 0);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t o = r / OH, i = r % OH;
      // Axis h: row = the taps' rows of x mixed by their weights.
      const float* src = x + (o * H + i) * W;
      if (p->h.resized) {
        float* __restrict t = row.data();
        if (th.outside[i]) {
          for (int64_t j = 0; j < W; ++j) t[j] = extrapolation;
        } else {
          const int64_t* index = th.index.data() + i * th.taps;
          const float* weight = th.weight.data() + i * th.taps;
          const float* __restrict x0 = x + (o * H + index[0]) * W;
          for (int64_t j = 0; j < W; ++j) t[j] = weight[0] * x0[j];
          for (int64_t k = 1; k < th.taps; ++k) {
            const float* __restrict xk = x + (o * H + index[k]) * W;
            const float wk = weight[k];
            for (int64_t j = 0; j < W; ++j) t[j] += wk * xk[j];
          }
        }
        src = t;
      }
      // Axis w: each output column mixes its taps of the row.
      float* __restrict dst = y + r * OW;
      if (!p->w.resized) {
        std::memcpy(dst, src, W * sizeof(float));
        continue;
      }
      const int64_t n = tw.taps;
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t* index = tw.index.data() + j * n;
        const float* weight = tw.weight.data() + j * n;
        float acc = 0.0f;
        for (int64_t k = 0; k < n; ++k) acc += weight[k] * src[index[k]];
        dst[j] = tw.outside[j] ? extrapolation : acc;
      }
    }
  });
}
