// numpy bindings of flowc's CPU kernels, for the reference tests and the benchmark only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kernels.h"

namespace py = pybind11;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

// A small persistent pool standing in for the runtime's: `threads` contiguous ranges per call,
// the caller running the first.
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { work(t); });
    par_.for_ = &Pool::run;
    par_.ctx = this;
    par_.threads = threads;
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  const flowc_parallel* par() const { return threads_ > 1 ? &par_ : nullptr; }

 private:
  static void run(void* ctx, int64_t n, void (*fn)(void*, int64_t, int64_t), void* arg) {
    auto* self = static_cast<Pool*>(ctx);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->n_ = n, self->fn_ = fn, self->arg_ = arg, self->pending_ = self->threads_ - 1;
      ++self->generation_;
    }
    self->wake_.notify_all();
    self->range(0);
    std::unique_lock<std::mutex> lock(self->mu_);
    self->done_.wait(lock, [self] { return self->pending_ == 0; });
  }
  void range(int t) {
    int64_t per = (n_ + threads_ - 1) / threads_, b = t * per, e = std::min(n_, b + per);
    if (b < e) fn_(arg_, b, e);
  }
  void work(int t) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      range(t);
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  int threads_;
  flowc_parallel par_{};
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  int64_t n_ = 0;
  void (*fn_)(void*, int64_t, int64_t) = nullptr;
  void* arg_ = nullptr;
  int pending_ = 0;
};

const flowc_parallel* pool(int threads) {
  static std::mutex mu;
  static std::vector<std::unique_ptr<Pool>> pools(65);
  if (threads < 1 || threads > 64) throw std::invalid_argument("threads must be in [1, 64]");
  std::lock_guard<std::mutex> lock(mu);
  if (!pools[threads]) pools[threads] = std::make_unique<Pool>(threads);
  return pools[threads]->par();
}

std::vector<int64_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

F32 empty(const std::vector<int64_t>& shape) { return F32(std::vector<py::ssize_t>(shape.begin(), shape.end())); }

void check(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument(what);
}

// GEMM on 2-D arrays as stored: op(A) is A or A^T by trans_a; C given for beta != 0.
F32 gemm(F32 a, F32 b, bool ta, bool tb, float alpha, float beta, py::object c, int threads,
         const std::string& path) {
  check(a.ndim() == 2 && b.ndim() == 2, "gemm: A and B must be 2-D");
  int64_t M = ta ? a.shape(1) : a.shape(0), K = ta ? a.shape(0) : a.shape(1);
  int64_t N = tb ? b.shape(0) : b.shape(1);
  check((tb ? b.shape(1) : b.shape(0)) == K, "gemm: inner dimensions differ");
  F32 out = c.is_none() ? empty({M, N}) : F32(c).attr("copy")().cast<F32>();
  check(out.shape(0) == M && out.shape(1) == N, "gemm: C has the wrong shape");
  const float* A = a.data();
  const float* B = b.data();
  float* C = out.mutable_data();
  py::gil_scoped_release release;
  if (path == "small") flowc_gemm_small_f32(ta, tb, M, N, K, alpha, A, a.shape(1), B, b.shape(1), beta, C, N);
  else if (path == "blas") flowc_gemm_blas_f32(ta, tb, M, N, K, alpha, A, a.shape(1), B, b.shape(1), beta, C, N, pool(threads));
  else flowc_gemm_f32(ta, tb, M, N, K, alpha, A, a.shape(1), B, b.shape(1), beta, C, N, pool(threads));
  return out;
}

F32 gemm_batched(F32 a, F32 b, bool ta, bool tb, int threads) {
  check(a.ndim() == 3 && b.ndim() == 3, "gemm_batched: A and B must be 3-D");
  int64_t batch = std::max(a.shape(0), b.shape(0));
  check((a.shape(0) == batch || a.shape(0) == 1) && (b.shape(0) == batch || b.shape(0) == 1),
        "gemm_batched: batch sizes differ");
  int64_t M = ta ? a.shape(2) : a.shape(1), K = ta ? a.shape(1) : a.shape(2);
  int64_t N = tb ? b.shape(1) : b.shape(2);
  F32 out = empty({batch, M, N});
  int64_t sa = a.shape(0) == 1 ? 0 : a.shape(1) * a.shape(2);
  int64_t sb = b.shape(0) == 1 ? 0 : b.shape(1) * b.shape(2);
  const float* A = a.data();
  const float* B = b.data();
  float* C = out.mutable_data();
  py::gil_scoped_release release;
  flowc_gemm_batched_f32(batch, ta, tb, M, N, K, 1.0f, A, a.shape(2), sa, B, b.shape(2), sb, 0.0f,
                         C, N, M * N, pool(threads));
  return out;
}

flowc_conv2d_params conv_params(const F32& x, const F32& w, std::vector<int64_t> strides,
                                std::vector<int64_t> pads, std::vector<int64_t> dilations,
                                int64_t group) {
  check(x.ndim() == 4 && w.ndim() == 4, "conv2d: x and w must be 4-D");
  flowc_conv2d_params p{};
  p.batch = x.shape(0), p.in_channels = x.shape(1), p.in_h = x.shape(2), p.in_w = x.shape(3);
  p.out_channels = w.shape(0), p.kernel_h = w.shape(2), p.kernel_w = w.shape(3), p.group = group;
  check(w.shape(1) * group == p.in_channels && p.out_channels % group == 0, "conv2d: bad group");
  p.stride_h = strides[0], p.stride_w = strides[1];
  p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
  p.dilation_h = dilations[0], p.dilation_w = dilations[1];
  p.out_h = (p.in_h + p.pad_top + p.pad_bottom - (p.dilation_h * (p.kernel_h - 1) + 1)) / p.stride_h + 1;
  p.out_w = (p.in_w + p.pad_left + p.pad_right - (p.dilation_w * (p.kernel_w - 1) + 1)) / p.stride_w + 1;
  return p;
}

F32 conv2d(F32 x, F32 w, py::object bias, std::vector<int64_t> strides, std::vector<int64_t> pads,
           std::vector<int64_t> dilations, int64_t group, int threads, const std::string& path) {
  flowc_conv2d_params p = conv_params(x, w, strides, pads, dilations, group);
  F32 y = empty({p.batch, p.out_channels, p.out_h, p.out_w});
  F32 b = bias.is_none() ? F32() : bias.cast<F32>();
  const flowc_parallel* par = pool(threads);
  std::vector<float> ws(flowc_conv2d_workspace_f32(&p, par));
  if (path == "depthwise") check(flowc_conv2d_is_depthwise_direct(&p), "conv2d: not a direct depthwise conv");
  const float* X = x.data();
  const float* W = w.data();
  const float* B = bias.is_none() ? nullptr : b.data();
  float* Y = y.mutable_data();
  {
    py::gil_scoped_release release;
    if (path == "im2col") {
      // The im2col path needs its column buffer even where the dispatcher would not.
      flowc_conv2d_params q = p;
      q.group = p.group;
      ws.resize(std::max<size_t>(ws.size(), (size_t)(p.in_channels / p.group * p.kernel_h * p.kernel_w *
                                                    p.out_h * p.out_w * flowc::parallel_threads(par))));
      flowc_conv2d_im2col_f32(&q, X, W, B, Y, ws.data(), par);
    } else if (path == "depthwise") {
      flowc_conv2d_depthwise_f32(&p, X, W, B, Y, par);
    } else {
      flowc_conv2d_f32(&p, X, W, B, Y, ws.data(), par);
    }
  }
  return y;
}

flowc_pool2d_params pool_params(const F32& x, std::vector<int64_t> kernel, std::vector<int64_t> strides,
                                std::vector<int64_t> pads, std::vector<int64_t> dilations, bool ceil_mode) {
  check(x.ndim() == 4, "pool2d: x must be 4-D");
  flowc_pool2d_params p{};
  p.batch = x.shape(0), p.channels = x.shape(1), p.in_h = x.shape(2), p.in_w = x.shape(3);
  p.kernel_h = kernel[0], p.kernel_w = kernel[1], p.stride_h = strides[0], p.stride_w = strides[1];
  p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
  p.dilation_h = dilations[0], p.dilation_w = dilations[1];
  auto out = [&](int64_t in, int64_t pb, int64_t pe, int64_t k, int64_t d, int64_t s) {
    int64_t span = in + pb + pe - (d * (k - 1) + 1);
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // ONNX: the last window must start inside the input or its begin pad.
    if (ceil_mode && (o - 1) * s >= in + pb) --o;
    return o;
  };
  p.out_h = out(p.in_h, p.pad_top, p.pad_bottom, p.kernel_h, p.dilation_h, p.stride_h);
  p.out_w = out(p.in_w, p.pad_left, p.pad_right, p.kernel_w, p.dilation_w, p.stride_w);
  return p;
}

F32 pool2d(const std::string& kind, F32 x, std::vector<int64_t> kernel, std::vector<int64_t> strides,
           std::vector<int64_t> pads, std::vector<int64_t> dilations, bool ceil_mode,
           bool count_include_pad, int threads) {
  flowc_pool2d_params p = pool_params(x, kernel, strides, pads, dilations, ceil_mode);
  F32 y = empty({p.batch, p.channels, p.out_h, p.out_w});
  const float* X = x.data();
  float* Y = y.mutable_data();
  py::gil_scoped_release release;
  if (kind == "max") flowc_maxpool2d_f32(&p, X, Y, pool(threads));
  else flowc_avgpool2d_f32(&p, count_include_pad, X, Y, pool(threads));
  return y;
}

F32 global_avgpool(F32 x, int threads) {
  check(x.ndim() >= 2, "global_avgpool: x must have N, C and spatial dims");
  int64_t spatial = 1;
  for (int d = 2; d < x.ndim(); ++d) spatial *= x.shape(d);
  std::vector<int64_t> shape = shape_of(x);
  for (int d = 2; d < x.ndim(); ++d) shape[d] = 1;
  F32 y = empty(shape);
  flowc_global_avgpool_f32(x.shape(0) * x.shape(1), spatial, x.data(), y.mutable_data(), pool(threads));
  return y;
}

int64_t rows_of(const F32& x) { return x.ndim() == 0 ? 1 : x.size() / x.shape(x.ndim() - 1); }
int64_t last_of(const F32& x) { return x.ndim() == 0 ? 1 : x.shape(x.ndim() - 1); }

F32 softmax(F32 x, bool log, int threads) {
  F32 y = empty(shape_of(x));
  const float* X = x.data();
  float* Y = y.mutable_data();
  int64_t rows = rows_of(x), n = last_of(x);
  py::gil_scoped_release release;
  if (log) flowc_log_softmax_f32(rows, n, X, Y, pool(threads));
  else flowc_softmax_f32(rows, n, X, Y, pool(threads));
  return y;
}

F32 layer_norm(F32 x, F32 gamma, py::object beta, float eps, int threads) {
  check(gamma.size() == last_of(x), "layer_norm: gamma must match the last axis");
  F32 y = empty(shape_of(x));
  F32 b = beta.is_none() ? F32() : beta.cast<F32>();
  const float* X = x.data();
  const float* G = gamma.data();
  const float* B = beta.is_none() ? nullptr : b.data();
  float* Y = y.mutable_data();
  int64_t rows = rows_of(x), n = last_of(x);
  py::gil_scoped_release release;
  flowc_layer_norm_f32(rows, n, X, G, B, eps, Y, pool(threads));
  return y;
}

// Layout kernels work on bytes: take any numpy dtype, contiguous.
py::array contiguous(py::array a) {
  return py::array::ensure(a, py::array::c_style);
}

py::array transpose(py::array x, std::vector<int64_t> perm, int threads) {
  x = contiguous(x);
  check((int)perm.size() == x.ndim() && x.ndim() <= 6, "transpose: perm must list every axis, rank <= 6");
  std::vector<py::ssize_t> shape;
  for (auto p : perm) shape.push_back(x.shape(p));
  py::array y(x.dtype(), shape);
  std::vector<int64_t> xs = shape_of(x);
  flowc_transpose((int)x.itemsize(), (int)x.ndim(), xs.data(), perm.data(), x.data(), y.mutable_data(),
                  pool(threads));
  return y;
}

py::array gather(py::array x, py::array_t<int64_t, py::array::c_style | py::array::forcecast> idx,
                 int axis, int threads) {
  x = contiguous(x);
  if (axis < 0) axis += x.ndim();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape(d);
  for (int d = axis + 1; d < x.ndim(); ++d) inner *= x.shape(d);
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + axis);
  for (int d = 0; d < idx.ndim(); ++d) shape.push_back(idx.shape(d));
  for (int d = axis + 1; d < x.ndim(); ++d) shape.push_back(x.shape(d));
  py::array y(x.dtype(), shape);
  bool ok = flowc_gather((int)x.itemsize(), outer, x.shape(axis), inner, x.data(), idx.data(), idx.size(),
                         y.mutable_data(), pool(threads));
  if (!ok) throw py::index_error("gather: index out of range");
  return y;
}

py::array concat(std::vector<py::array> xs, int axis, int threads) {
  check(!xs.empty(), "concat: no inputs");
  for (auto& x : xs) x = contiguous(x);
  int rank = xs[0].ndim();
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= xs[0].shape(d);
  for (int d = axis + 1; d < rank; ++d) inner *= xs[0].shape(d);
  std::vector<int64_t> sizes;
  std::vector<const void*> ptrs;
  std::vector<py::ssize_t> shape(xs[0].shape(), xs[0].shape() + rank);
  shape[axis] = 0;
  for (auto& x : xs) {
    sizes.push_back(x.shape(axis));
    ptrs.push_back(x.data());
    shape[axis] += x.shape(axis);
  }
  py::array y(xs[0].dtype(), shape);
  flowc_concat((int)xs[0].itemsize(), (int)xs.size(), ptrs.data(), sizes.data(), outer, inner,
               y.mutable_data(), pool(threads));
  return y;
}

py::array slice(py::array x, std::vector<int64_t> starts, std::vector<int64_t> steps,
                std::vector<int64_t> out_shape, int threads) {
  x = contiguous(x);
  std::vector<int64_t> xs = shape_of(x);
  py::array y(x.dtype(), std::vector<py::ssize_t>(out_shape.begin(), out_shape.end()));
  flowc_slice((int)x.itemsize(), (int)x.ndim(), xs.data(), starts.data(), steps.data(), out_shape.data(),
              x.data(), y.mutable_data(), pool(threads));
  return y;
}

py::array pad(py::array x, std::vector<int64_t> begin, std::vector<int64_t> end, py::object value,
              const std::string& mode, int threads) {
  x = contiguous(x);
  check((int)begin.size() == x.ndim() && (int)end.size() == x.ndim() && x.ndim() <= 6,
        "pad: begin and end must have one pad per axis, rank <= 6");
  const flowc_pad_mode m = mode == "constant" ? FLOWC_PAD_CONSTANT : mode == "reflect" ? FLOWC_PAD_REFLECT
                           : mode == "edge"   ? FLOWC_PAD_EDGE     : mode == "wrap"    ? FLOWC_PAD_WRAP
                                              : throw std::invalid_argument("pad: unknown mode " + mode);
  std::vector<int64_t> xs = shape_of(x);
  std::vector<py::ssize_t> shape;
  for (int d = 0; d < x.ndim(); ++d) shape.push_back(std::max<int64_t>(0, xs[d] + begin[d] + end[d]));
  py::array y(x.dtype(), shape);
  py::array v = py::array(x.dtype(), std::vector<py::ssize_t>{1});
  v.attr("__setitem__")(0, value);
  if (!flowc_pad(m, (int)x.itemsize(), (int)x.ndim(), xs.data(), begin.data(), end.data(), v.data(), x.data(),
                 y.mutable_data(), pool(threads)))
    throw py::value_error("pad: mode " + mode + " cannot pad an axis cropped to nothing");
  return y;
}

F32 reduce(F32 x, int axes, bool mean, int threads) {
  check(axes >= 0 && axes <= x.ndim(), "reduce: bad trailing-axes count");
  int64_t inner = 1;
  std::vector<int64_t> shape = shape_of(x);
  for (int d = x.ndim() - axes; d < x.ndim(); ++d) inner *= x.shape(d);
  shape.resize(x.ndim() - axes);
  F32 y = empty(shape);
  flowc_reduce_trailing_f32(mean ? FLOWC_REDUCE_MEAN : FLOWC_REDUCE_SUM, x.size() / std::max<int64_t>(inner, 1),
                            inner, x.data(), y.mutable_data(), pool(threads));
  return y;
}

flowc_unary_op unary_op(const std::string& name) {
  static const std::pair<const char*, flowc_unary_op> ops[] = {
      {"relu", FLOWC_UNARY_RELU},       {"gelu_erf", FLOWC_UNARY_GELU_ERF},
      {"gelu_tanh", FLOWC_UNARY_GELU_TANH}, {"sigmoid", FLOWC_UNARY_SIGMOID},
      {"tanh", FLOWC_UNARY_TANH},       {"hardswish", FLOWC_UNARY_HARDSWISH},
      {"clip", FLOWC_UNARY_CLIP},       {"exp", FLOWC_UNARY_EXP},
      {"erf", FLOWC_UNARY_ERF}};
  for (auto& [n, op] : ops) if (name == n) return op;
  throw std::invalid_argument("unary: unknown op " + name);
}

F32 unary(const std::string& name, F32 x, float lo, float hi, bool inplace, int threads) {
  flowc_unary_op op = unary_op(name);
  F32 y = inplace ? F32(x.attr("copy")()) : empty(shape_of(x));
  const float* X = inplace ? y.data() : x.data();
  float* Y = y.mutable_data();
  int64_t n = x.size();
  py::gil_scoped_release release;
  flowc_unary_f32(op, n, X, Y, lo, hi, pool(threads));
  return y;
}

F32 binary(const std::string& name, F32 a, F32 b, int threads) {
  static const std::pair<const char*, flowc_binary_op> ops[] = {
      {"add", FLOWC_BINARY_ADD}, {"sub", FLOWC_BINARY_SUB}, {"mul", FLOWC_BINARY_MUL}, {"div", FLOWC_BINARY_DIV}};
  int rank = std::max(a.ndim(), b.ndim());
  check(rank <= 6, "binary: rank > 6");
  std::vector<int64_t> as(rank, 1), bs(rank, 1), ys(rank);
  for (int d = 0; d < a.ndim(); ++d) as[rank - a.ndim() + d] = a.shape(d);
  for (int d = 0; d < b.ndim(); ++d) bs[rank - b.ndim() + d] = b.shape(d);
  for (int d = 0; d < rank; ++d) {
    check(as[d] == bs[d] || as[d] == 1 || bs[d] == 1, "binary: shapes do not broadcast");
    ys[d] = std::max(as[d], bs[d]);
  }
  for (auto& [n, op] : ops)
    if (name == n) {
      F32 y = empty(ys);
      flowc_binary_f32(op, rank, as.data(), a.data(), bs.data(), b.data(), y.mutable_data(), pool(threads));
      return y;
    }
  throw std::invalid_argument("binary: unknown op " + name);
}

// Peak f32 FMA throughput of one core: 12 independent chains of vector FMAs, the widest vectors
// the CPU has (the benchmark prints kernels' GFLOP/s next to threads x this).
typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));

// A macro, not a template: the body must be compiled under each function's target attribute.
// Twelve named accumulators stay in registers (an array of them may live in memory at -O2).
#define FLOWC_FMA_CHAINS(V, LANES)                                                       \
  V m, c, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;                               \
  for (int j = 0; j < LANES; ++j) m[j] = 0.999999f, c[j] = 1e-7f;                         \
  a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = c;                        \
  for (int64_t k = 0; k < iters; ++k) {                                                   \
    a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c;                   \
    a4 = a4 * m + c, a5 = a5 * m + c, a6 = a6 * m + c, a7 = a7 * m + c;                   \
    a8 = a8 * m + c, a9 = a9 * m + c, a10 = a10 * m + c, a11 = a11 * m + c;               \
  }                                                                                       \
  V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;                      \
  return s[0];

__attribute__((target("avx512f,fma"))) double fma512(int64_t iters) { FLOWC_FMA_CHAINS(V16, 16) }
__attribute__((target("avx2,fma"))) double fma256(int64_t iters) { FLOWC_FMA_CHAINS(V8, 8) }

double peak_gflops_one_core() {
  const int64_t iters = 20'000'000;
  int lanes = __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("fma") ? 8 : 0;
  if (!lanes) return 0.0;
  auto t0 = std::chrono::steady_clock::now();
  volatile double sink = lanes == 16 ? fma512(iters) : fma256(iters);
  (void)sink;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * 12 * lanes * iters / s / 1e9;
}

}  // namespace

PYBIND11_MODULE(_flowc_kernels_test, m) {
  m.doc() = "flowc CPU kernels on numpy arrays (tests and benchmarks only)";
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f, py::arg("c") = py::none(), py::arg("threads") = 1,
        py::arg("path") = "auto");
  m.def("gemm_batched", &gemm_batched, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("threads") = 1);
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("bias") = py::none(),
        py::arg("strides") = std::vector<int64_t>{1, 1}, py::arg("pads") = std::vector<int64_t>{0, 0, 0, 0},
        py::arg("dilations") = std::vector<int64_t>{1, 1}, py::arg("group") = 1, py::arg("threads") = 1,
        py::arg("path") = "auto");
  m.def("conv2d_is_depthwise_direct", [](F32 x, F32 w, std::vector<int64_t> s, std::vector<int64_t> p,
                                         std::vector<int64_t> d, int64_t g) {
    flowc_conv2d_params q = conv_params(x, w, s, p, d, g);
    return flowc_conv2d_is_depthwise_direct(&q);
  });
  m.def("pool2d", &pool2d, py::arg("kind"), py::arg("x"), py::arg("kernel"),
        py::arg("strides") = std::vector<int64_t>{1, 1}, py::arg("pads") = std::vector<int64_t>{0, 0, 0, 0},
        py::arg("dilations") = std::vector<int64_t>{1, 1}, py::arg("ceil_mode") = false,
        py::arg("count_include_pad") = false, py::arg("threads") = 1);
  m.def("global_avgpool", &global_avgpool, py::arg("x"), py::arg("threads") = 1);
  m.def("softmax", &softmax, py::arg("x"), py::arg("log") = false, py::arg("threads") = 1);
  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("gamma"), py::arg("beta") = py::none(),
        py::arg("epsilon") = 1e-5f, py::arg("threads") = 1);
  m.def("transpose", &transpose, py::arg("x"), py::arg("perm"), py::arg("threads") = 1);
  m.def("gather", &gather, py::arg("x"), py::arg("indices"), py::arg("axis"), py::arg("threads") = 1);
  m.def("concat", &concat, py::arg("xs"), py::arg("axis"), py::arg("threads") = 1);
  m.def("slice", &slice, py::arg("x"), py::arg("starts"), py::arg("steps"), py::arg("out_shape"),
        py::arg("threads") = 1);
  m.def("pad", &pad, py::arg("x"), py::arg("begin"), py::arg("end"), py::arg("value") = 0,
        py::arg("mode") = "constant", py::arg("threads") = 1);
  m.def("reduce", &reduce, py::arg("x"), py::arg("axes"), py::arg("mean") = false, py::arg("threads") = 1);
  m.def("unary", &unary, py::arg("op"), py::arg("x"), py::arg("lo") = 0.0f, py::arg("hi") = 0.0f,
        py::arg("inplace") = false, py::arg("threads") = 1);
  m.def("peak_gflops_one_core", &peak_gflops_one_core);
  m.def("binary", &binary, py::arg("op"), py::arg("a"), py::arg("b"), py::arg("threads") = 1);
}
