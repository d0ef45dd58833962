#include "pool.h"

#include <algorithm>
#include <limits>

#include "reduce.h"
#include "schedule.h"
#include "vmath.h"

namespace {

using flowc::parallel_for;

inline void valid_range(int64_t out, int64_t stride, int64_t offset, int64_t size, int64_t* lo,
                        int64_t* hi) {
  int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t h = size - offset <= 0 ? 0 : (size - offset - 1) / stride + 1;
  *lo = std::min(l, out);
  *hi = std::max(*lo, std::min(h, out));
}

// Each tap (r, s) updates, for one output row, the columns whose input lies inside x.
template <class Op>
void pool_plane(const flowc_pool2d_params& p, const float* __restrict x, float* __restrict y,
                float init, Op op) {
  const int64_t H = p.in_h, W = p.in_w, OW = p.out_w;
  for (int64_t oh = 0; oh < p.out_h; ++oh) {
    float* __restrict o = y + oh * OW;
    for (int64_t ow = 0; ow < OW; ++ow) o[ow] = init;
    for (int64_t r = 0; r < p.kernel_h; ++r) {
      int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
      if (ih < 0 || ih >= H) continue;
      for (int64_t s = 0; s < p.kernel_w; ++s) {
        int64_t offset = s * p.dilation_w - p.pad_left, lo, hi;
        valid_range(OW, p.stride_w, offset, W, &lo, &hi);
        const float* __restrict in = x + ih * W + offset;
        if (p.stride_w == 1) for (int64_t ow = lo; ow < hi; ++ow) o[ow] = op(o[ow], in[ow]);
        else if (p.stride_w == 2) for (int64_t ow = lo; ow < hi; ++ow) o[ow] = op(o[ow], in[2 * ow]);
        else for (int64_t ow = lo; ow < hi; ++ow) o[ow] = op(o[ow], in[ow * p.stride_w]);
      }
    }
  }
}

// Taps of the window starting at `begin` (in padded coordinates shifted by -pad) inside [lo, hi).
inline int64_t taps_inside(int64_t begin, int64_t kernel, int64_t lo, int64_t hi) {
  return std::max<int64_t>(0, std::min(begin + kernel, hi) - std::max(begin, lo));
}

// best[j] = max(best[j], src[j * stride]) over [lo, hi), where[j] = at + j * step where src won:
// bit selects, not branches, since which tap wins is random in real data.
inline void argmax_update(int64_t lo, int64_t hi, int64_t stride, const float* __restrict src,
                          int64_t at, int64_t step, float* __restrict best,
                          int64_t* __restrict where) {
  for (int64_t j = lo; j < hi; ++j) {
    const float v = src[j * stride], b = best[j];
    const int64_t mask = -int64_t(v > b);
    best[j] = flowc::vmath::select(v > b, v, b);
    where[j] = ((at + j * step) & mask) | (where[j] & ~mask);
  }
}

}  // namespace

void flowc_maxpool2d_f32(const flowc_pool2d_params* p, const float* x, float* y,
                         const flowc_parallel* par) {
  const int64_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  const float init = -std::numeric_limits<float>::infinity();
  parallel_for(par, p->batch * p->channels, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      pool_plane(*p, x + i * in_plane, y + i * out_plane, init,
                 [](float a, float b) { return b > a ? b : a; });
  });
}

void flowc_maxpool2d_indices_f32(const flowc_pool2d_params* p, bool column_major, const float* x,
                                 float* y, int64_t* indices, const flowc_parallel* par) {
  const int64_t H = p->in_h, W = p->in_w, OH = p->out_h, OW = p->out_w, SW = p->stride_w;
  const int64_t step_h = column_major ? 1 : W, step_w = column_major ? H : 1;
  const float lowest = -std::numeric_limits<float>::infinity();
  const int64_t min_rows = 1 + flowc::cpu::schedule::pool::kIndicesGrain / (OW * p->kernel_h * p->kernel_w + 1);
  parallel_for(par, p->batch * p->channels * OH, min_rows, [&](int64_t lo, int64_t hi) {
    for (int64_t row = lo; row < hi; ++row) {
      const int64_t plane = row / OH, oh = row % OH;
      const float* in = x + plane * H * W;
      float* __restrict best = y + row * OW;
      int64_t* __restrict where = indices + row * OW;
      for (int64_t r = 0; r < p->kernel_h; ++r) {
        const int64_t ih = oh * p->stride_h - p->pad_top + r * p->dilation_h;
        const bool row_inside = ih >= 0 && ih < H;
        for (int64_t s = 0; s < p->kernel_w; ++s) {
          const int64_t offset = s * p->dilation_w - p->pad_left;
          const int64_t at = plane * H * W + ih * step_h + offset * step_w;
          if (r == 0 && s == 0) {  // the first tap starts every window, inside x or not
            for (int64_t ow = 0; ow < OW; ++ow) {
              const int64_t iw = ow * SW + offset;
              best[ow] = row_inside && iw >= 0 && iw < W ? in[ih * W + iw] : lowest;
              where[ow] = at + ow * SW * step_w;
            }
            continue;
          }
          if (!row_inside) continue;  // -inf is never above the best so far
          int64_t ow_lo, ow_hi;
          valid_range(OW, SW, offset, W, &ow_lo, &ow_hi);
          const float* __restrict src = in + ih * W + offset;
          if (SW == 1) argmax_update(ow_lo, ow_hi, 1, src, at, step_w, best, where);
          else if (SW == 2) argmax_update(ow_lo, ow_hi, 2, src, at, 2 * step_w, best, where);
          else argmax_update(ow_lo, ow_hi, SW, src, at, SW * step_w, best, where);
        }
      }
    }
  });
}

void flowc_avgpool2d_f32(const flowc_pool2d_params* p, bool count_include_pad, const float* x,
                         float* y, const flowc_parallel* par) {
  const int64_t in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  const int64_t OH = p->out_h, OW = p->out_w;
  // The divisor depends on the output position only through its row and its column.
  int64_t rows_lo = count_include_pad ? -p->pad_top : 0;
  int64_t rows_hi = count_include_pad ? p->in_h + p->pad_bottom : p->in_h;
  int64_t cols_lo = count_include_pad ? -p->pad_left : 0;
  int64_t cols_hi = count_include_pad ? p->in_w + p->pad_right : p->in_w;
  auto count = [](int64_t begin, int64_t kernel, int64_t dilation, int64_t lo, int64_t hi) {
    if (dilation == 1) return taps_inside(begin, kernel, lo, hi);
    int64_t n = 0;
    for (int64_t k = 0; k < kernel; ++k) n += begin + k * dilation >= lo && begin + k * dilation < hi;
    return n;
  };
  const int64_t KW = p->kernel_w, DW = p->dilation_w, SW = p->stride_w, PL = p->pad_left;
  parallel_for(par, p->batch * p->channels, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float* out = y + i * out_plane;
      pool_plane(*p, x + i * in_plane, out, 0.0f, [](float a, float b) { return a + b; });
      for (int64_t oh = 0; oh < OH; ++oh) {
        int64_t nh = count(oh * p->stride_h - p->pad_top, p->kernel_h, p->dilation_h, rows_lo, rows_hi);
        float* __restrict o = out + oh * OW;
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t n = nh * count(ow * SW - PL, KW, DW, cols_lo, cols_hi);
          o[ow] = n ? o[ow] / (float)n : 0.0f;
        }
      }
    }
  });
}

void flowc_global_avgpool_f32(int64_t batch_channels, int64_t spatial, const float* x, float* y,
                              const flowc_parallel* par) {
  flowc_reduce_trailing_f32(FLOWC_REDUCE_MEAN, batch_channels, spatial, x, y, par);
}
