// Data movement over elements of 1, 2, 4, 8 (or 16) bytes, as runtime/kernels/cpu/layout.cpp,
// gather_elements.cpp and the CPU steps' gather_nd/widen_indices/copy_block: one thread per output
// element in grid-stride loops, 32-bit index arithmetic when the output has fewer than 2^31
// elements (64-bit otherwise). Shapes, strides and pointers travel by value in the launch's
// arguments. A gather's out-of-range index raises cu->error_flag (atomicCAS from 0 to
// cu->error_code) and writes a zero element.
#include "common.cuh"

namespace flowc::cuda {
namespace {

constexpr int kRank = FLOWC_CUDA_MAX_RANK;
constexpr int kGatherRank = 8;  // gather_elements and gather_nd, as the CPU's

// Sizes of the CPU's simplify_perm: size-1 axes dropped, runs of y axes that are consecutive x
// axes merged. Returns the new rank; shape is in x's order, perm maps y's axes to it.
int simplify_perm(int rank, const int64_t* x_shape, const int64_t* perm, int64_t* shape, int64_t* out_perm) {
  int new_index[kRank], kept = 0;
  int64_t kept_shape[kRank];
  for (int d = 0; d < rank; ++d)
    if (x_shape[d] != 1) new_index[d] = kept, kept_shape[kept++] = x_shape[d];
    else new_index[d] = -1;
  int p[kRank], n = 0;
  for (int o = 0; o < rank; ++o)
    if (new_index[perm[o]] >= 0) p[n++] = new_index[perm[o]];
  int first[kRank], groups = 0;
  int64_t size[kRank];
  for (int o = 0; o < n; ++o) {
    if (o > 0 && p[o] == p[o - 1] + 1) {
      size[groups - 1] *= kept_shape[p[o]];
    } else {
      first[groups] = p[o];
      size[groups++] = kept_shape[p[o]];
    }
  }
  int order[kRank];  // groups in x's order
  for (int g = 0; g < groups; ++g) {
    int k = g;
    for (; k > 0 && first[order[k - 1]] > first[g]; --k) order[k] = order[k - 1];
    order[k] = g;
  }
  for (int i = 0; i < groups; ++i) {
    shape[i] = size[order[i]];
    out_perm[order[i]] = i;
  }
  return groups;
}

// Each kernel's body is a __host__ __device__ function of the output index (a host harness runs
// them against the CPU kernels); the gathers' return false for an index out of range.

// y[t] = x[sum over y axes d of index_d * (x's stride of y axis d)].
template <class T, class I>
FLOWC_CUDA_HD T transpose_element(I t, int rank, const Table<kRank>& y_shape, const Table<kRank>& x_strides,
                                  const T* x) {
  I rest = t, offset = 0;
FLOWC_CUDA_UNROLL
  for (int d = kRank - 1; d >= 0; --d) {
    if (d >= rank) continue;
    const I size = I(y_shape.v[d]);
    offset += rest % size * I(x_strides.v[d]);
    rest /= size;
  }
  return x[offset];
}

template <class T, class I>
__global__ void transpose_kernel(I total, int rank, Table<kRank> y_shape, Table<kRank> x_strides,
                                 const T* __restrict__ x, T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) y[t] = transpose_element(t, rank, y_shape, x_strides, x);
}

// y[o, j, c] = x[o, indices[j], c]: t = (o, j, c).
template <class T, class I>
FLOWC_CUDA_HD bool gather_element(I t, int64_t axis_size, int64_t inner, int64_t num_indices, const T* x,
                                  const int64_t* indices, T* out) {
  const I c = t % I(inner), j = t / I(inner) % I(num_indices), o = t / (I(inner) * I(num_indices));
  int64_t at = indices[j];
  if (at < 0) at += axis_size;
  if (at < 0 || at >= axis_size) {
    *out = T{};
    return false;
  }
  *out = x[(int64_t(o) * axis_size + at) * inner + c];
  return true;
}

template <class T, class I>
__global__ void gather_kernel(I total, int64_t axis_size, int64_t inner, int64_t num_indices,
                              const T* __restrict__ x, const int64_t* __restrict__ indices, T* __restrict__ y,
                              int* error_flag, int error_code) {
  FLOWC_GRID_LOOP(I, t, total) {
    if (!gather_element(t, axis_size, inner, num_indices, x, indices, &y[t])) raise_error(error_flag, error_code);
  }
}

// Up to kConcatInputs inputs per launch; begin[i] is where input i starts in the launch's part of
// a y row (in elements), begin[count] the part's width.
constexpr int kConcatInputs = 32;
struct ConcatPart {
  const void* x[kConcatInputs];
  int64_t begin[kConcatInputs + 1];
};

// Element t of the launch's part: row o, position e in the part; returns its offset in y.
template <class T, class I>
FLOWC_CUDA_HD int64_t concat_element(I t, const ConcatPart& part, int count, int64_t y_row, int64_t offset,
                                     T* out) {
  const I width = I(part.begin[count]), e = t % width, o = t / width;
  int i = 0;
  while (i + 1 < count && int64_t(e) >= part.begin[i + 1]) ++i;
  const int64_t row = part.begin[i + 1] - part.begin[i];
  *out = static_cast<const T*>(part.x[i])[int64_t(o) * row + (int64_t(e) - part.begin[i])];
  return int64_t(o) * y_row + offset + e;
}

template <class T, class I>
__global__ void concat_kernel(I total, ConcatPart part, int count, int64_t y_row, int64_t offset, T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) {
    T v;
    const int64_t at = concat_element(t, part, count, y_row, offset, &v);
    y[at] = v;
  }
}

template <class T, class I>
FLOWC_CUDA_HD T slice_element(I t, int rank, const Table<kRank>& y_shape, const Table<kRank>& x_strides,
                              const Table<kRank>& starts, const Table<kRank>& steps, const T* x) {
  I rest = t;
  int64_t offset = 0;
FLOWC_CUDA_UNROLL
  for (int d = kRank - 1; d >= 0; --d) {
    if (d >= rank) continue;
    const I size = I(y_shape.v[d]);
    offset += (starts.v[d] + int64_t(rest % size) * steps.v[d]) * x_strides.v[d];
    rest /= size;
  }
  return x[offset];
}

template <class T, class I>
__global__ void slice_kernel(I total, int rank, Table<kRank> y_shape, Table<kRank> x_strides, Table<kRank> starts,
                             Table<kRank> steps, const T* __restrict__ x, T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) y[t] = slice_element(t, rank, y_shape, x_strides, starts, steps, x);
}

// The x index that a y index i (already shifted by the begin pad) reads along an axis of n > 0
// elements, as the CPU's pad_source: reflect and wrap repeat periodically, as numpy.
FLOWC_CUDA_HD int64_t pad_source(flowc_pad_mode mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (mode == FLOWC_PAD_EDGE) return i < 0 ? 0 : n - 1;
  if (mode == FLOWC_PAD_WRAP) return (i % n + n) % n;
  if (n == 1) return 0;  // reflect
  const int64_t period = 2 * (n - 1);
  const int64_t k = (i % period + period) % period;
  return k < n ? k : period - k;
}

// Per axis: constant mode reads x at j - pads_begin (the value outside x); the others read
// crop + pad_source(j - lead, kept), crop being the elements cut from the front, kept those left
// and lead the positive begin pad.
struct PadAxes {
  Table<kRank> y_shape, x_shape, x_strides, pads_begin, crop, kept, lead;
};

template <class T, class I>
FLOWC_CUDA_HD T pad_element(I t, flowc_pad_mode mode, int rank, const PadAxes& a, T value, const T* x) {
  I rest = t;
  int64_t offset = 0;
  bool inside = true;
FLOWC_CUDA_UNROLL
  for (int d = kRank - 1; d >= 0; --d) {
    if (d >= rank) continue;
    const I size = I(a.y_shape.v[d]);
    const int64_t j = int64_t(rest % size);
    rest /= size;
    if (mode == FLOWC_PAD_CONSTANT) {
      const int64_t i = j - a.pads_begin.v[d];
      inside = inside && i >= 0 && i < a.x_shape.v[d];
      offset += i * a.x_strides.v[d];
    } else {
      offset += (a.crop.v[d] + pad_source(mode, j - a.lead.v[d], a.kept.v[d])) * a.x_strides.v[d];
    }
  }
  return inside ? x[offset] : value;
}

template <class T, class I>
__global__ void pad_kernel(I total, flowc_pad_mode mode, int rank, PadAxes a, T value, const T* __restrict__ x,
                           T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) y[t] = pad_element(t, mode, rank, a, value, x);
}

// y[p] = x[p with its axis coordinate replaced by indices[p]] (index_shape may be smaller than
// x_shape off the axis, as ONNX allows); extent and axis_stride are x's size and stride along the
// axis (a scalar: indexing the table at run time would move it to local memory).
template <class T, class I>
FLOWC_CUDA_HD bool gather_elements_element(I t, int rank, int axis, int64_t extent, int64_t axis_stride,
                                           const Table<kGatherRank>& index_shape,
                                           const Table<kGatherRank>& x_strides, const T* x, const int64_t* indices,
                                           T* out) {
  I rest = t;
  int64_t offset = 0;
FLOWC_CUDA_UNROLL
  for (int d = kGatherRank - 1; d >= 0; --d) {
    if (d >= rank) continue;
    const I size = I(index_shape.v[d]);
    if (d != axis) offset += int64_t(rest % size) * x_strides.v[d];
    rest /= size;
  }
  int64_t at = indices[t];
  if (at < 0) at += extent;
  if (at < 0 || at >= extent) {
    *out = T{};
    return false;
  }
  *out = x[offset + at * axis_stride];
  return true;
}

template <class T, class I>
__global__ void gather_elements_kernel(I total, int rank, int axis, int64_t extent, int64_t axis_stride,
                                       Table<kGatherRank> index_shape,
                                       Table<kGatherRank> x_strides, const T* __restrict__ x,
                                       const int64_t* __restrict__ indices, T* __restrict__ y, int* error_flag,
                                       int error_code) {
  FLOWC_GRID_LOOP(I, t, total) {
    if (!gather_elements_element(t, rank, axis, extent, axis_stride, index_shape, x_strides, x, indices, &y[t]))
      raise_error(error_flag, error_code);
  }
}

// data as [batch, dims[0..k), slice], indices as [batch, count, k], y as [batch, count, slice].
template <class T, class I>
FLOWC_CUDA_HD bool gather_nd_element(I t, int k, const Table<kGatherRank>& dims, int64_t slice, int64_t count,
                                     int64_t per_batch, const int64_t* indices, const T* x, T* out) {
  const I s = t % I(slice), tuple = t / I(slice), b = tuple / I(count);
  const int64_t* at = indices + int64_t(tuple) * k;
  int64_t offset = 0;
  bool inside = true;
FLOWC_CUDA_UNROLL
  for (int d = 0; d < kGatherRank; ++d) {
    if (d >= k) continue;
    int64_t i = at[d];
    if (i < 0) i += dims.v[d];
    inside = inside && i >= 0 && i < dims.v[d];
    offset = offset * dims.v[d] + i;
  }
  if (!inside) {
    *out = T{};
    return false;
  }
  *out = x[int64_t(b) * per_batch + offset * slice + s];
  return true;
}

template <class T, class I>
__global__ void gather_nd_kernel(I total, int k, Table<kGatherRank> dims, int64_t slice, int64_t count,
                                 int64_t per_batch, const int64_t* __restrict__ indices, const T* __restrict__ x,
                                 T* __restrict__ y, int* error_flag, int error_code) {
  FLOWC_GRID_LOOP(I, t, total) {
    if (!gather_nd_element(t, k, dims, slice, count, per_batch, indices, x, &y[t]))
      raise_error(error_flag, error_code);
  }
}

__global__ void widen_kernel(int64_t n, const int32_t* __restrict__ x, int64_t* __restrict__ y) {
  FLOWC_GRID_LOOP(int64_t, t, n) y[t] = int64_t(x[t]);
}

// y[o, :count, i] = x[o, begin:begin + count, i], x as [outer, axis, inner].
template <class T, class I>
FLOWC_CUDA_HD T copy_block_element(I t, int64_t axis, int64_t begin, int64_t block, int64_t inner, const T* x) {
  const I e = t % I(block), o = t / I(block);
  return x[(int64_t(o) * axis + begin) * inner + e];
}

template <class T, class I>
__global__ void copy_block_kernel(I total, int64_t axis, int64_t begin, int64_t block, int64_t inner,
                                  const T* __restrict__ x, T* __restrict__ y) {
  FLOWC_GRID_LOOP(I, t, total) y[t] = copy_block_element(t, axis, begin, block, inner, x);
}

int64_t product(int rank, const int64_t* shape) {
  int64_t n = 1;
  for (int d = 0; d < rank; ++d) n *= shape[d];
  return n;
}

// Row-major strides of `shape`.
template <int Rank>
Table<Rank> strides_of(int rank, const int64_t* shape) {
  Table<Rank> s{};
  int64_t step = 1;
  for (int d = rank - 1; d >= 0; --d) s.v[d] = step, step *= shape[d];
  return s;
}

// Launches kernel<T, I> for `total` outputs: I is uint32_t when total fits, else int64_t.
#define FLOWC_LAUNCH_INDEXED(kernel, T, total, stream, ...)                                                  \
  do {                                                                                                       \
    if (fits_u32(total))                                                                                     \
      kernel<T, uint32_t><<<grid_for(total), kThreads, 0, stream>>>(uint32_t(total), __VA_ARGS__);           \
    else                                                                                                     \
      kernel<T, int64_t><<<grid_for(total), kThreads, 0, stream>>>(int64_t(total), __VA_ARGS__);             \
  } while (0)

}  // namespace
}  // namespace flowc::cuda

using namespace flowc::cuda;

const char* flowc_cuda_transpose(int elem_size, int rank, const int64_t* x_shape, const int64_t* perm, const void* x,
                                 void* y, const flowc_cuda* cu) {
  if (rank < 0 || rank > kRank) return "flowc_cuda_transpose: rank above FLOWC_CUDA_MAX_RANK";
  const int64_t total = product(rank, x_shape);
  if (total == 0) return nullptr;
  int64_t shape[kRank], p[kRank];
  const int r = simplify_perm(rank, x_shape, perm, shape, p);
  if (r <= 1) {  // nothing moves
    const cudaError_t err = cudaMemcpyAsync(y, x, size_t(total) * size_t(elem_size), cudaMemcpyDeviceToDevice,
                                            cu->stream);
    return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
  }
  const Table<kRank> x_strides = strides_of<kRank>(r, shape);
  Table<kRank> y_shape{}, y_to_x{};  // per y axis: its size and its stride in x
  for (int d = 0; d < r; ++d) y_shape.v[d] = shape[p[d]], y_to_x.v[d] = x_strides.v[p[d]];
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(transpose_kernel, T, total, cu->stream, r, y_shape, y_to_x, static_cast<const T*>(x),
                         static_cast<T*>(y));
    return launch_status();
  });
}

const char* flowc_cuda_gather(int elem_size, int64_t outer, int64_t axis_size, int64_t inner, const void* x,
                              const int64_t* indices, int64_t num_indices, void* y, const flowc_cuda* cu) {
  const int64_t total = outer * num_indices * inner;
  if (total <= 0) return nullptr;
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(gather_kernel, T, total, cu->stream, axis_size, inner, num_indices,
                         static_cast<const T*>(x), indices, static_cast<T*>(y), cu->error_flag, cu->error_code);
    return launch_status();
  });
}

const char* flowc_cuda_concat(int elem_size, int num_inputs, const void* const* xs, const int64_t* axis_sizes,
                              int64_t outer, int64_t inner, void* y, const flowc_cuda* cu) {
  int64_t y_row = 0;
  for (int i = 0; i < num_inputs; ++i) y_row += axis_sizes[i] * inner;
  if (outer <= 0 || y_row == 0) return nullptr;
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    int64_t offset = 0;  // where this launch's inputs start in a y row
    for (int first = 0; first < num_inputs; first += kConcatInputs) {
      const int count = std::min(kConcatInputs, num_inputs - first);
      ConcatPart part{};
      part.begin[0] = 0;
      for (int i = 0; i < count; ++i) {
        part.x[i] = xs[first + i];
        part.begin[i + 1] = part.begin[i] + axis_sizes[first + i] * inner;
      }
      const int64_t total = outer * part.begin[count];
      if (total > 0) {
        FLOWC_LAUNCH_INDEXED(concat_kernel, T, total, cu->stream, part, count, y_row, offset, static_cast<T*>(y));
        FLOWC_CUDA_TRY(launch_status());
      }
      offset += part.begin[count];
    }
    return static_cast<const char*>(nullptr);
  });
}

const char* flowc_cuda_slice(int elem_size, int rank, const int64_t* x_shape, const int64_t* starts,
                             const int64_t* steps, const int64_t* y_shape, const void* x, void* y,
                             const flowc_cuda* cu) {
  if (rank < 0 || rank > kRank) return "flowc_cuda_slice: rank above FLOWC_CUDA_MAX_RANK";
  const int64_t total = product(rank, y_shape);
  if (total == 0) return nullptr;
  const Table<kRank> ys = table_of<kRank>(rank, y_shape, 1), xs = strides_of<kRank>(rank, x_shape);
  const Table<kRank> first = table_of<kRank>(rank, starts), step = table_of<kRank>(rank, steps);
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(slice_kernel, T, total, cu->stream, rank, ys, xs, first, step, static_cast<const T*>(x),
                         static_cast<T*>(y));
    return launch_status();
  });
}

const char* flowc_cuda_pad(flowc_pad_mode mode, int elem_size, int rank, const int64_t* x_shape,
                           const int64_t* pads_begin, const int64_t* pads_end, const void* value, const void* x,
                           void* y, const flowc_cuda* cu) {
  if (rank < 0 || rank > kRank) return "flowc_cuda_pad: rank above FLOWC_CUDA_MAX_RANK";
  PadAxes a{};
  a.x_strides = strides_of<kRank>(rank, x_shape);
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    a.y_shape.v[d] = x_shape[d] + pads_begin[d] + pads_end[d];
    if (a.y_shape.v[d] < 0) return "flowc_cuda_pad: the pads crop an axis below nothing";
    a.x_shape.v[d] = x_shape[d];
    a.pads_begin.v[d] = pads_begin[d];
    a.crop.v[d] = std::max<int64_t>(0, -pads_begin[d]);
    a.kept.v[d] = x_shape[d] - a.crop.v[d] - std::max<int64_t>(0, -pads_end[d]);
    a.lead.v[d] = std::max<int64_t>(0, pads_begin[d]);
    total *= a.y_shape.v[d];
  }
  if (total <= 0) return nullptr;
  if (mode != FLOWC_PAD_CONSTANT)
    for (int d = 0; d < rank; ++d)
      if (a.kept.v[d] <= 0) return "flowc_cuda_pad: an axis cropped to nothing can only be padded with a constant";
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    T fill{};
    if (mode == FLOWC_PAD_CONSTANT && value) std::memcpy(&fill, value, sizeof(T));
    FLOWC_LAUNCH_INDEXED(pad_kernel, T, total, cu->stream, mode, rank, a, fill, static_cast<const T*>(x),
                         static_cast<T*>(y));
    return launch_status();
  });
}

const char* flowc_cuda_gather_elements(int elem_size, int rank, const int64_t* x_shape, const int64_t* index_shape,
                                       int axis, const void* x, const int64_t* indices, void* y,
                                       const flowc_cuda* cu) {
  if (rank < 1 || rank > kGatherRank) return "flowc_cuda_gather_elements: rank must lie in [1, 8]";
  if (axis < 0 || axis >= rank) return "flowc_cuda_gather_elements: axis out of range";
  const int64_t total = product(rank, index_shape);
  if (total == 0) return nullptr;
  const Table<kGatherRank> shape = table_of<kGatherRank>(rank, index_shape, 1);
  const Table<kGatherRank> strides = strides_of<kGatherRank>(rank, x_shape);
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(gather_elements_kernel, T, total, cu->stream, rank, axis, x_shape[axis], strides.v[axis],
                         shape, strides, static_cast<const T*>(x), indices, static_cast<T*>(y), cu->error_flag,
                         cu->error_code);
    return launch_status();
  });
}

const char* flowc_cuda_gather_nd(int elem_size, int64_t batch, int k, const int64_t* dims, int64_t slice,
                                 int64_t count, const int64_t* indices, const void* x, void* y, const flowc_cuda* cu) {
  if (k < 0 || k > kGatherRank) return "flowc_cuda_gather_nd: index tuples longer than 8";
  const int64_t total = batch * count * slice;
  if (total <= 0) return nullptr;
  const Table<kGatherRank> d = table_of<kGatherRank>(k, dims, 1);
  const int64_t per_batch = slice * product(k, dims);
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(gather_nd_kernel, T, total, cu->stream, k, d, slice, count, per_batch, indices,
                         static_cast<const T*>(x), static_cast<T*>(y), cu->error_flag, cu->error_code);
    return launch_status();
  });
}

const char* flowc_cuda_widen_indices(int64_t n, const int32_t* x, int64_t* y, const flowc_cuda* cu) {
  if (n <= 0) return nullptr;
  widen_kernel<<<grid_for(n), kThreads, 0, cu->stream>>>(n, x, y);
  return launch_status();
}

const char* flowc_cuda_copy_block(int elem_size, int64_t outer, int64_t axis, int64_t begin, int64_t count,
                                  int64_t inner, const void* x, void* y, const flowc_cuda* cu) {
  const int64_t block = count * inner, total = outer * block;
  if (total <= 0) return nullptr;
  return by_size(elem_size, [&](auto e) {
    using T = decltype(e);
    FLOWC_LAUNCH_INDEXED(copy_block_kernel, T, total, cu->stream, axis, begin, block, inner,
                         static_cast<const T*>(x), static_cast<T*>(y));
    return launch_status();
  });
}

// One strided copy per member: `parts` rows of blocks move as a pitched 2-D copy each.
const char* flowc_cuda_pack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y,
                                   const flowc_cuda* cu) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  for (int64_t p = 0; p < parts && outer > 0 && block > 0; ++p) {
    cudaError_t e = cudaMemcpy2DAsync(dst + p * outer * block, size_t(block), src + p * block, size_t(parts * block),
                                      size_t(block), size_t(outer), cudaMemcpyDeviceToDevice, cu->stream);
    if (e != cudaSuccess) return cudaGetErrorString(e);
  }
  return nullptr;
}

const char* flowc_cuda_unpack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y,
                                     const flowc_cuda* cu) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  for (int64_t p = 0; p < parts && outer > 0 && block > 0; ++p) {
    cudaError_t e = cudaMemcpy2DAsync(dst + p * block, size_t(parts * block), src + p * outer * block, size_t(block),
                                      size_t(block), size_t(outer), cudaMemcpyDeviceToDevice, cu->stream);
    if (e != cudaSuccess) return cudaGetErrorString(e);
  }
  return nullptr;
}
