#include "conv.h"

#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "schedule.h"

namespace {

using flowc::parallel_for;
using flowc::parallel_threads;

bool is_pointwise(const flowc_conv2d_params& p) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
         p.pad_top == 0 && p.pad_left == 0 && p.pad_bottom == 0 && p.pad_right == 0;
}

int64_t col_floats(const flowc_conv2d_params& p) {
  return p.in_channels / p.group * p.kernel_h * p.kernel_w * p.out_h * p.out_w;
}

// Groups run one per thread (each with its own column buffer) when there are enough of them.
bool groups_in_parallel(const flowc_conv2d_params& p, const flowc_parallel* par) {
  return p.group > 1 && p.batch * p.group >= parallel_threads(par);
}

// First and one-past-last output index o with 0 <= o*stride + offset < size.
inline void valid_range(int64_t out, int64_t stride, int64_t offset, int64_t size, int64_t* lo,
                        int64_t* hi) {
  int64_t l = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t h = size - offset <= 0 ? 0 : (size - offset - 1) / stride + 1;
  *lo = std::min(l, out);
  *hi = std::max(*lo, std::min(h, out));
}

// Rows [row_lo, row_hi) of the column matrix of one image-group: row (c, r, s), column (oh, ow).
void im2col_rows(const flowc_conv2d_params& p, const float* x, float* col, int64_t row_lo,
                 int64_t row_hi) {
  const int64_t R = p.kernel_h, S = p.kernel_w, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  for (int64_t row = row_lo; row < row_hi; ++row) {
    int64_t c = row / (R * S), r = row / S % R, s = row % S;
    const float* plane = x + c * H * W;
    float* out = col + row * OH * OW;
    int64_t ow_lo, ow_hi;
    int64_t col_offset = s * p.dilation_w - p.pad_left;
    valid_range(OW, p.stride_w, col_offset, W, &ow_lo, &ow_hi);
    for (int64_t oh = 0; oh < OH; ++oh) {
      float* __restrict o = out + oh * OW;
      int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
      if (ih < 0 || ih >= H) {
        std::memset(o, 0, OW * sizeof(float));
        continue;
      }
      const float* __restrict in = plane + ih * W + col_offset;
      for (int64_t ow = 0; ow < ow_lo; ++ow) o[ow] = 0.0f;
      if (p.stride_w == 1) std::memcpy(o + ow_lo, in + ow_lo, (ow_hi - ow_lo) * sizeof(float));
      else for (int64_t ow = ow_lo; ow < ow_hi; ++ow) o[ow] = in[ow * p.stride_w];
      for (int64_t ow = ow_hi; ow < OW; ++ow) o[ow] = 0.0f;
    }
  }
}

void fill_bias(const float* bias, int64_t channels, int64_t plane, float* y) {
  for (int64_t k = 0; k < channels; ++k) std::fill(y + k * plane, y + (k + 1) * plane, bias[k]);
}

// One image-group: y_g[Kg, OH*OW] = w_g[Kg, Cg*R*S] @ col[Cg*R*S, OH*OW] (+ bias).
void conv_group(const flowc_conv2d_params& p, const float* x, const float* w, const float* bias,
                float* y, float* col, const flowc_parallel* par) {
  const int64_t Cg = p.in_channels / p.group, Kg = p.out_channels / p.group;
  const int64_t rows = Cg * p.kernel_h * p.kernel_w, cols = p.out_h * p.out_w;
  const float* b = x;
  if (!is_pointwise(p)) {
    parallel_for(par, rows, flowc::cpu::schedule::conv::kIm2colGrain,
                 [&](int64_t lo, int64_t hi) { im2col_rows(p, x, col, lo, hi); });
    b = col;
  }
  if (bias) fill_bias(bias, Kg, cols, y);
  flowc_gemm_f32(false, false, Kg, cols, rows, 1.0f, w, rows, b, cols, bias ? 1.0f : 0.0f, y, cols,
                 par);
}

template <int R, int S, int SW>
void depthwise_plane(const flowc_conv2d_params& p, const float* __restrict x,
                     const float* __restrict wk, float b, float* __restrict y) {
  const int64_t H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w, SH = p.stride_h;
  int64_t lo[S], hi[S];
  for (int s = 0; s < S; ++s) valid_range(OW, SW, s - p.pad_left, W, &lo[s], &hi[s]);
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* __restrict o = y + oh * OW;
    for (int64_t ow = 0; ow < OW; ++ow) o[ow] = b;
    for (int r = 0; r < R; ++r) {
      int64_t ih = oh * SH - p.pad_top + r;
      if (ih < 0 || ih >= H) continue;
      for (int s = 0; s < S; ++s) {
        const float* __restrict in = x + ih * W + s - p.pad_left;
        const float wv = wk[r * S + s];
        for (int64_t ow = lo[s]; ow < hi[s]; ++ow) o[ow] += wv * in[ow * SW];
      }
    }
  }
}

using PlaneFn = void (*)(const flowc_conv2d_params&, const float*, const float*, float, float*);

PlaneFn depthwise_kernel(const flowc_conv2d_params& p) {
  if (p.dilation_h != 1 || p.dilation_w != 1 || p.kernel_h != p.kernel_w) return nullptr;
  if (p.stride_w != 1 && p.stride_w != 2) return nullptr;
  if (p.stride_h != 1 && p.stride_h != 2) return nullptr;
  bool s1 = p.stride_w == 1;
  if (p.kernel_h == 3) return s1 ? depthwise_plane<3, 3, 1> : depthwise_plane<3, 3, 2>;
  if (p.kernel_h == 5) return s1 ? depthwise_plane<5, 5, 1> : depthwise_plane<5, 5, 2>;
  return nullptr;
}

// one(i, buffer, inner) for each image-group i < n. With `in_parallel`, each thread takes one
// contiguous run of them with its own column buffer (workspace + t * col) and runs them
// single-threaded; otherwise they run one after another, each over the whole pool.
template <class One>
void each_image_group(int64_t n, bool in_parallel, float* workspace, int64_t col, const flowc_parallel* par,
                      One&& one) {
  if (in_parallel) {
    int threads = parallel_threads(par);
    int64_t per = (n + threads - 1) / threads;
    parallel_for(par, threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t)
        for (int64_t i = t * per; i < std::min(n, (t + 1) * per); ++i)
          one(i, workspace ? workspace + t * col : nullptr, nullptr);
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) one(i, workspace, par);
}

}  // namespace

bool flowc_conv2d_is_depthwise_direct(const flowc_conv2d_params* p) {
  return p->group == p->in_channels && p->group == p->out_channels &&
         depthwise_kernel(*p) != nullptr;
}

int64_t flowc_conv2d_workspace_f32(const flowc_conv2d_params* p, const flowc_parallel* par) {
  if (flowc_conv2d_is_depthwise_direct(p) || is_pointwise(*p)) return 0;
  return col_floats(*p) * (groups_in_parallel(*p, par) ? parallel_threads(par) : 1);
}

void flowc_conv2d_depthwise_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                                const float* bias, float* y, const flowc_parallel* par) {
  PlaneFn plane = depthwise_kernel(*p);
  const int64_t C = p->in_channels, in_plane = p->in_h * p->in_w, out_plane = p->out_h * p->out_w;
  const int64_t taps = p->kernel_h * p->kernel_w;
  parallel_for(par, p->batch * C, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t c = i % C;
      plane(*p, x + i * in_plane, w + c * taps, bias ? bias[c] : 0.0f, y + i * out_plane);
    }
  });
}

void flowc_conv2d_im2col_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                             const float* bias, float* y, float* workspace,
                             const flowc_parallel* par) {
  const int64_t G = p->group, Cg = p->in_channels / G, Kg = p->out_channels / G;
  const int64_t in_group = Cg * p->in_h * p->in_w, out_group = Kg * p->out_h * p->out_w;
  const int64_t w_group = Kg * Cg * p->kernel_h * p->kernel_w;
  const int64_t col = col_floats(*p);
  auto one = [&](int64_t i, float* ws, const flowc_parallel* inner) {
    int64_t g = i % G;
    conv_group(*p, x + i * in_group, w + g * w_group, bias ? bias + g * Kg : nullptr,
               y + i * out_group, ws, inner);
  };
  each_image_group(p->batch * G, groups_in_parallel(*p, par), workspace, col, par, one);
}

void flowc_conv2d_f32(const flowc_conv2d_params* p, const float* x, const float* w,
                      const float* bias, float* y, float* workspace, const flowc_parallel* par) {
  if (flowc_conv2d_is_depthwise_direct(p)) flowc_conv2d_depthwise_f32(p, x, w, bias, y, par);
  else flowc_conv2d_im2col_f32(p, x, w, bias, y, workspace, par);
}

namespace {

using flowc::parallel_for;
using flowc::parallel_threads;

int64_t transpose_col_floats(const flowc_conv_transpose2d_params& p) {
  return p.out_channels / p.group * p.kernel_h * p.kernel_w * p.in_h * p.in_w;
}

// A 1x1 kernel with unit strides and no padding: the GEMM writes the output directly.
bool transpose_is_pointwise(const flowc_conv_transpose2d_params& p) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 &&
         p.pad_top == 0 && p.pad_left == 0 && p.out_h == p.in_h && p.out_w == p.in_w;
}

bool transpose_groups_in_parallel(const flowc_conv_transpose2d_params& p,
                                  const flowc_parallel* par) {
  return p.group > 1 && p.batch * p.group >= parallel_threads(par);
}

// Output channels [m_lo, m_hi) of one image-group: bias, then every (r, s) row of col added
// where it lands.
void col2im_channels(const flowc_conv_transpose2d_params& p, const float* col, const float* bias,
                     float* y, int64_t m_lo, int64_t m_hi) {
  const int64_t R = p.kernel_h, S = p.kernel_w, H = p.in_h, W = p.in_w, OH = p.out_h, OW = p.out_w;
  for (int64_t m = m_lo; m < m_hi; ++m) {
    float* plane = y + m * OH * OW;
    std::fill(plane, plane + OH * OW, bias ? bias[m] : 0.0f);
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t s = 0; s < S; ++s) {
        const float* rows = col + ((m * R + r) * S + s) * H * W;
        const int64_t col_offset = s * p.dilation_w - p.pad_left;
        int64_t iw_lo, iw_hi;
        valid_range(W, p.stride_w, col_offset, OW, &iw_lo, &iw_hi);
        for (int64_t ih = 0; ih < H; ++ih) {
          const int64_t oh = ih * p.stride_h - p.pad_top + r * p.dilation_h;
          if (oh < 0 || oh >= OH) continue;
          const float* __restrict in = rows + ih * W;
          float* __restrict out = plane + oh * OW + col_offset;
          if (p.stride_w == 1) for (int64_t iw = iw_lo; iw < iw_hi; ++iw) out[iw] += in[iw];
          else for (int64_t iw = iw_lo; iw < iw_hi; ++iw) out[iw * p.stride_w] += in[iw];
        }
      }
    }
  }
}

// One image-group: col[Mg*R*S, H*W] = w_g^T [Mg*R*S, Cg] @ x_g [Cg, H*W], then col2im into y_g.
void conv_transpose_group(const flowc_conv_transpose2d_params& p, const float* x, const float* w,
                          const float* bias, float* y, float* col, const flowc_parallel* par) {
  const int64_t Cg = p.in_channels / p.group, Mg = p.out_channels / p.group;
  const int64_t rows = Mg * p.kernel_h * p.kernel_w, pixels = p.in_h * p.in_w;
  if (transpose_is_pointwise(p)) {
    if (bias) fill_bias(bias, Mg, pixels, y);
    flowc_gemm_f32(true, false, Mg, pixels, Cg, 1.0f, w, Mg, x, pixels, bias ? 1.0f : 0.0f, y,
                   pixels, par);
    return;
  }
  flowc_gemm_f32(true, false, rows, pixels, Cg, 1.0f, w, rows, x, pixels, 0.0f, col, pixels, par);
  parallel_for(par, Mg, 1,
               [&](int64_t lo, int64_t hi) { col2im_channels(p, col, bias, y, lo, hi); });
}

}  // namespace

int64_t flowc_conv_transpose2d_workspace_f32(const flowc_conv_transpose2d_params* p,
                                             const flowc_parallel* par) {
  if (transpose_is_pointwise(*p)) return 0;
  const int64_t buffers = transpose_groups_in_parallel(*p, par) ? parallel_threads(par) : 1;
  return transpose_col_floats(*p) * buffers;
}

void flowc_conv_transpose2d_f32(const flowc_conv_transpose2d_params* p, const float* x,
                                const float* w, const float* bias, float* y, float* workspace,
                                const flowc_parallel* par) {
  const int64_t G = p->group, Cg = p->in_channels / G, Mg = p->out_channels / G;
  const int64_t in_group = Cg * p->in_h * p->in_w, out_group = Mg * p->out_h * p->out_w;
  const int64_t w_group = Cg * Mg * p->kernel_h * p->kernel_w;
  const int64_t col = transpose_col_floats(*p);
  auto one = [&](int64_t i, float* ws, const flowc_parallel* inner) {
    int64_t g = i % G;
    conv_transpose_group(*p, x + i * in_group, w + g * w_group, bias ? bias + g * Mg : nullptr,
                         y + i * out_group, ws, inner);
  };
  each_image_group(p->batch * G, transpose_groups_in_parallel(*p, par), workspace, col, par, one);
}
