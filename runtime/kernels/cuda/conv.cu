// 2-D convolution over NCHW f32, f16 or bf16 (computing in f32), and transposed convolution over f32,
// as runtime/kernels/cpu/conv.cpp.
//
// conv2d:
//  - depthwise (group == in_channels, out_channels a multiple of it): a direct kernel, one thread
//    per output, the bias first and then the taps in (r, s) order, as the CPU's direct kernel;
//  - 1x1, stride 1, unpadded: per group, W_g @ x_g straight from x (cuBLASLt, batched over images);
//  - otherwise: im2col of a chunk of images into the workspace (rows (c, r, s), columns (oh, ow),
//    as the CPU's), then per group W_g @ col (cuBLASLt, batched over the chunk's images or groups).
// The bias is per output channel: per *row* of the row-major [Kg, OH*OW] product, i.e. per column
// of cuBLASLt's column-major D, which its BIAS epilogue cannot add (that runs along D's rows). So y
// is filled with the bias first and the GEMMs accumulate with beta = 1, as the CPU kernel does.
//
// conv_transpose2d: per chunk of images and group, col[(m, r, s), (ih, iw)] = W_g^T @ x_g
// (cuBLASLt), then col2im as a gather: one thread per output pixel adds the bias and each (r, s)
// column that lands on it, in the CPU's order (no atomics). A 1x1 stride-1 unpadded one is W_g^T @ x_g.
//
// The workspace holds the columns of as many images as fit in kChunkBytes (schedules/cuda.py's
// CONV; at least one image), in the storage type (the GEMM's operand).
#include "common.cuh"

namespace flowc::cuda {
namespace {

constexpr int64_t kChunkBytes = schedule::conv::kIm2colBytes;

bool is_depthwise(const flowc_conv2d_params& p) {
  return p.group == p.in_channels && p.out_channels % p.group == 0;
}

bool is_pointwise(const flowc_conv2d_params& p) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
         p.pad_left == 0 && p.pad_bottom == 0 && p.pad_right == 0;
}

bool is_pointwise(const flowc_conv_transpose2d_params& p) {
  return p.kernel_h == 1 && p.kernel_w == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
         p.pad_left == 0 && p.out_h == p.in_h && p.out_w == p.in_w;
}

// Elements of columns per image: conv2d (c, r, s) x (oh, ow); conv_transpose2d (m, r, s) x (ih, iw).
FLOWC_CUDA_HD int64_t col_elements(const flowc_conv2d_params& p) {
  return p.in_channels * p.kernel_h * p.kernel_w * p.out_h * p.out_w;
}
FLOWC_CUDA_HD int64_t col_elements(const flowc_conv_transpose2d_params& p) {
  return p.out_channels * p.kernel_h * p.kernel_w * p.in_h * p.in_w;
}

int64_t images_per_chunk(int64_t per_image_elements, int64_t element_size, int64_t batch) {
  const int64_t bytes = per_image_elements * element_size;
  const int64_t fit = bytes > 0 ? kChunkBytes / bytes : batch;
  return std::max<int64_t>(1, std::min(batch, fit));
}

// Each kernel's body is a __host__ __device__ function of the output index (a host harness runs
// them against the CPU kernels).
template <class I, class T>
FLOWC_CUDA_HD float depthwise_element(const flowc_conv2d_params& p, I t, const T* x, const T* w, const T* bias) {
  const I OH = I(p.out_h), OW = I(p.out_w), K = I(p.out_channels), mult = I(p.out_channels / p.group);
  const I ow = t % OW, oh = t / OW % OH, k = t / (OW * OH) % K, n = t / (OW * OH * K);
  const T* plane = x + (int64_t(n) * p.in_channels + k / mult) * p.in_h * p.in_w;
  const T* wk = w + int64_t(k) * p.kernel_h * p.kernel_w;
  float acc = bias ? load(bias[k]) : 0.0f;
  for (int64_t r = 0; r < p.kernel_h; ++r) {
    const int64_t ih = int64_t(oh) * p.stride_h - p.pad_top + r * p.dilation_h;
    if (ih < 0 || ih >= p.in_h) continue;
    for (int64_t s = 0; s < p.kernel_w; ++s) {
      const int64_t iw = int64_t(ow) * p.stride_w - p.pad_left + s * p.dilation_w;
      if (iw >= 0 && iw < p.in_w) acc += load(wk[r * p.kernel_w + s]) * load(plane[ih * p.in_w + iw]);
    }
  }
  return acc;
}

template <class I, class T>
__global__ void depthwise_kernel(flowc_conv2d_params p, const T* __restrict__ x, const T* __restrict__ w,
                                 const T* __restrict__ bias, T* __restrict__ y) {
  const I total = I(p.batch * p.out_channels * p.out_h * p.out_w);
  FLOWC_GRID_LOOP(I, t, total) y[t] = store<T>(depthwise_element(p, t, x, w, bias));
}

// col[i, (c, r, s), (oh, ow)] of the images starting at x (a copy: T in, T out).
template <class I, class T>
FLOWC_CUDA_HD T im2col_element(const flowc_conv2d_params& p, I t, const T* x) {
  const I OW = I(p.out_w), P = I(p.out_h * p.out_w), R = I(p.kernel_h), S = I(p.kernel_w), C = I(p.in_channels);
  const I pixel = t % P, row = t / P;
  const I s = row % S, r = row / S % R, c = row / (S * R) % C, n = row / (S * R * C);
  const int64_t ih = int64_t(pixel / OW) * p.stride_h - p.pad_top + int64_t(r) * p.dilation_h;
  const int64_t iw = int64_t(pixel % OW) * p.stride_w - p.pad_left + int64_t(s) * p.dilation_w;
  const bool inside = ih >= 0 && ih < p.in_h && iw >= 0 && iw < p.in_w;
  return inside ? x[((int64_t(n) * p.in_channels + c) * p.in_h + ih) * p.in_w + iw] : store<T>(0.0f);
}

template <class I, class T>
__global__ void im2col_kernel(flowc_conv2d_params p, int64_t images, const T* __restrict__ x, T* __restrict__ col) {
  const I total = I(images * col_elements(p));
  FLOWC_GRID_LOOP(I, t, total) col[t] = im2col_element(p, t, x);
}

// y[n, k, :] = bias[k] for every image n (the GEMMs then add with beta = 1).
template <class I, class T>
__global__ void fill_bias_kernel(int64_t total, int64_t channels, int64_t plane, const T* __restrict__ bias,
                                 T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) y[t] = bias[t / I(plane) % I(channels)];
}

// y[n, m, oh, ow] = bias[m] + the sum over (r, s) of the column entry landing there, for the
// images of col ([image, m, r, s, ih, iw]).
template <class I>
FLOWC_CUDA_HD float col2im_element(const flowc_conv_transpose2d_params& p, I t, const float* col, const float* bias) {
  const I OW = I(p.out_w), OH = I(p.out_h), M = I(p.out_channels);
  const int64_t H = p.in_h, W = p.in_w, R = p.kernel_h, S = p.kernel_w;
  const I ow = t % OW, oh = t / OW % OH, m = t / (OW * OH) % M, n = t / (OW * OH * M);
  const float* base = col + (int64_t(n) * M + m) * R * S * H * W;
  float acc = bias ? bias[m] : 0.0f;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t th = int64_t(oh) + p.pad_top - r * p.dilation_h;  // = ih * stride_h
    if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= H) continue;
    const int64_t ih = th / p.stride_h;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t tw = int64_t(ow) + p.pad_left - s * p.dilation_w;
      if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= W) continue;
      acc += base[(r * S + s) * H * W + ih * W + tw / p.stride_w];
    }
  }
  return acc;
}

template <class I>
__global__ void col2im_kernel(flowc_conv_transpose2d_params p, int64_t images, const float* __restrict__ col,
                              const float* __restrict__ bias, float* __restrict__ y) {
  const I total = I(images * p.out_channels * p.out_h * p.out_w);
  FLOWC_GRID_LOOP(I, t, total) y[t] = col2im_element(p, t, col, bias);
}

template <class T>
const char* fill_bias(int64_t total, int64_t channels, int64_t plane, const T* bias, T* y, const flowc_cuda* cu) {
  if (fits_u32(total))
    fill_bias_kernel<uint32_t><<<grid_for(total), kThreads, 0, cu->stream>>>(total, channels, plane, bias, y);
  else fill_bias_kernel<int64_t><<<grid_for(total), kThreads, 0, cu->stream>>>(total, channels, plane, bias, y);
  return launch_status();
}

// y_g[i] = op(W_g) @ B_g[i] (+ y_g[i] with beta = 1) for images i < images and groups g < groups, each
// [M, N] = [M, K] @ [K, N] row-major: one batched GEMM per group, or per image when groups outnumber
// images.
template <class T>
struct GroupGemm {
  int64_t images, groups;
  bool trans_w;
  int64_t M, N, K;
  const T* w;
  int64_t ldw, w_group;
  const T* b;
  int64_t b_image, b_group;
  T* y;
  int64_t y_image, y_group;
  float beta;
};

template <class T>
const char* group_gemms(const GroupGemm<T>& g, const flowc_cuda* cu) {
  const T* no_bias = nullptr;
  if (g.images >= g.groups) {
    for (int64_t k = 0; k < g.groups; ++k)
      FLOWC_CUDA_TRY(gemm(g.images, g.trans_w, false, g.M, g.N, g.K, 1.0f, g.w + k * g.w_group, g.ldw, 0,
                          g.b + k * g.b_group, g.N, g.b_image, g.beta, g.y + k * g.y_group, g.N, g.y_image, no_bias,
                          FLOWC_CUDA_EPILOGUE_NONE, cu));
    return nullptr;
  }
  for (int64_t i = 0; i < g.images; ++i)
    FLOWC_CUDA_TRY(gemm(g.groups, g.trans_w, false, g.M, g.N, g.K, 1.0f, g.w, g.ldw, g.w_group, g.b + i * g.b_image,
                        g.N, g.b_group, g.beta, g.y + i * g.y_image, g.N, g.y_group, no_bias,
                        FLOWC_CUDA_EPILOGUE_NONE, cu));
  return nullptr;
}

const char* workspace_check(size_t need, const flowc_cuda* cu, const char* message) {
  return need > 0 && (!cu->workspace || cu->workspace_bytes < need) ? message : nullptr;
}

template <class T>
size_t conv2d_workspace(const flowc_conv2d_params* p) {
  if (p->group <= 0 || is_depthwise(*p) || is_pointwise(*p)) return 0;
  const int64_t per_image = col_elements(*p);
  return size_t(images_per_chunk(per_image, sizeof(T), p->batch) * per_image) * sizeof(T);
}

template <class T>
const char* conv2d(const flowc_conv2d_params* p, const T* x, const T* w, const T* bias, T* y, const flowc_cuda* cu) {
  if (p->group <= 0 || p->in_channels % p->group != 0 || p->out_channels % p->group != 0)
    return FLOWC_CUDA_NAMED(T, "flowc_cuda_conv2d", ": in_channels and out_channels must be multiples of group");
  const int64_t P = p->out_h * p->out_w, total = p->batch * p->out_channels * P;
  if (total == 0) return nullptr;
  if (is_depthwise(*p)) {
    if (fits_u32(total)) depthwise_kernel<uint32_t><<<grid_for(total), kThreads, 0, cu->stream>>>(*p, x, w, bias, y);
    else depthwise_kernel<int64_t><<<grid_for(total), kThreads, 0, cu->stream>>>(*p, x, w, bias, y);
    return launch_status();
  }
  const int64_t G = p->group, C = p->in_channels, Cg = C / G, K = p->out_channels, Kg = K / G;
  const int64_t HW = p->in_h * p->in_w, rows = Cg * p->kernel_h * p->kernel_w;
  if (bias) FLOWC_CUDA_TRY(fill_bias(total, K, P, bias, y, cu));
  const float beta = bias ? 1.0f : 0.0f;
  if (is_pointwise(*p))
    return group_gemms<T>(
        {p->batch, G, false, Kg, P, Cg, w, Cg, Kg * Cg, x, C * HW, Cg * HW, y, K * P, Kg * P, beta}, cu);
  const int64_t per_image = col_elements(*p), chunk = images_per_chunk(per_image, sizeof(T), p->batch);
  const char* too_small = FLOWC_CUDA_BY_TYPE(
      T, "flowc_cuda_conv2d_f32: cu->workspace is smaller than flowc_cuda_conv2d_workspace_f32 asks",
      "flowc_cuda_conv2d_f16: cu->workspace is smaller than flowc_cuda_conv2d_workspace_f16 asks",
      "flowc_cuda_conv2d_bf16: cu->workspace is smaller than flowc_cuda_conv2d_workspace_bf16 asks");
  FLOWC_CUDA_TRY(workspace_check(size_t(chunk * per_image) * sizeof(T), cu, too_small));
  T* col = static_cast<T*>(cu->workspace);
  for (int64_t i0 = 0; i0 < p->batch; i0 += chunk) {
    const int64_t n = std::min(chunk, p->batch - i0), cols = n * per_image;
    const T* xi = x + i0 * C * HW;
    if (fits_u32(cols)) im2col_kernel<uint32_t><<<grid_for(cols), kThreads, 0, cu->stream>>>(*p, n, xi, col);
    else im2col_kernel<int64_t><<<grid_for(cols), kThreads, 0, cu->stream>>>(*p, n, xi, col);
    FLOWC_CUDA_TRY(launch_status());
    FLOWC_CUDA_TRY(group_gemms<T>(
        {n, G, false, Kg, P, rows, w, rows, Kg * rows, col, per_image, rows * P, y + i0 * K * P, K * P, Kg * P, beta},
        cu));
  }
  return nullptr;
}

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

// The entry points of storage type T, named with suffix S (kernels.h).
#define FLOWC_CUDA_CONV2D(S, T)                                                                                    \
  size_t flowc_cuda_conv2d_workspace_##S(const flowc_conv2d_params* p) { return conv2d_workspace<T>(p); }        \
  const char* flowc_cuda_conv2d_##S(const flowc_conv2d_params* p, const T* x, const T* w, const T* bias, T* y,    \
                                    const flowc_cuda* cu) {                                                       \
    return conv2d(p, x, w, bias, y, cu);                                                                          \
  }
FLOWC_CUDA_CONV2D(f32, float)
FLOWC_CUDA_CONV2D(f16, __half)
FLOWC_CUDA_CONV2D(bf16, __nv_bfloat16)
#undef FLOWC_CUDA_CONV2D

size_t flowc_cuda_conv_transpose2d_workspace_f32(const flowc_conv_transpose2d_params* p) {
  if (p->group <= 0 || is_pointwise(*p)) return 0;
  const int64_t per_image = col_elements(*p);
  return size_t(images_per_chunk(per_image, sizeof(float), p->batch) * per_image) * sizeof(float);
}

const char* flowc_cuda_conv_transpose2d_f32(const flowc_conv_transpose2d_params* p, const float* x, const float* w,
                                            const float* bias, float* y, const flowc_cuda* cu) {
  if (p->group <= 0 || p->in_channels % p->group != 0 || p->out_channels % p->group != 0)
    return "flowc_cuda_conv_transpose2d_f32: in_channels and out_channels must be multiples of group";
  if (p->stride_h <= 0 || p->stride_w <= 0) return "flowc_cuda_conv_transpose2d_f32: strides must be positive";
  const int64_t total = p->batch * p->out_channels * p->out_h * p->out_w;
  if (total == 0) return nullptr;
  const int64_t G = p->group, C = p->in_channels, Cg = C / G, M = p->out_channels, Mg = M / G;
  const int64_t HW = p->in_h * p->in_w, rows = Mg * p->kernel_h * p->kernel_w;
  // w is [C, Mg, R, S]: group g's [Cg, rows] block starts at g * Cg * rows, read transposed.
  if (is_pointwise(*p)) {
    if (bias) FLOWC_CUDA_TRY(fill_bias(total, M, HW, bias, y, cu));
    return group_gemms<float>({p->batch, G, true, Mg, HW, Cg, w, Mg, Cg * Mg, x, C * HW, Cg * HW, y, M * HW, Mg * HW,
                               bias ? 1.0f : 0.0f},
                              cu);
  }
  const int64_t per_image = col_elements(*p), chunk = images_per_chunk(per_image, sizeof(float), p->batch);
  FLOWC_CUDA_TRY(workspace_check(size_t(chunk * per_image) * sizeof(float), cu,
                                 "flowc_cuda_conv_transpose2d_f32: cu->workspace is smaller than "
                                 "flowc_cuda_conv_transpose2d_workspace_f32 asks"));
  float* col = static_cast<float*>(cu->workspace);
  const int64_t out_image = M * p->out_h * p->out_w;
  for (int64_t i0 = 0; i0 < p->batch; i0 += chunk) {
    const int64_t n = std::min(chunk, p->batch - i0), outputs = n * out_image;
    FLOWC_CUDA_TRY(group_gemms<float>({n, G, true, rows, HW, Cg, w, rows, Cg * rows, x + i0 * C * HW, C * HW, Cg * HW,
                                       col, per_image, rows * HW, 0.0f},
                                      cu));
    float* yi = y + i0 * out_image;
    if (fits_u32(outputs) && fits_u32(n * per_image))
      col2im_kernel<uint32_t><<<grid_for(outputs), kThreads, 0, cu->stream>>>(*p, n, col, bias, yi);
    else col2im_kernel<int64_t><<<grid_for(outputs), kThreads, 0, cu->stream>>>(*p, n, col, bias, yi);
    FLOWC_CUDA_TRY(launch_status());
  }
  return nullptr;
}
