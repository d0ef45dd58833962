#include "layout.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "element.h"
#include "schedule.h"

namespace {

using flowc::by_size;
using flowc::parallel_for;
constexpr int kMaxRank = 6;
constexpr int64_t kMinBytesPerThread = flowc::cpu::schedule::layout::kGrainBytes;

// Drop size-1 axes, then merge runs of output axes that are consecutive input axes.
// Returns the new rank; out_shape is in x's order, out_perm maps y's axes to it.
int simplify_perm(int rank, const int64_t* shape, const int64_t* perm, int64_t* out_shape,
                  int64_t* out_perm) {
  int new_index[kMaxRank], kept = 0;
  int64_t kept_shape[kMaxRank];
  for (int d = 0; d < rank; ++d)
    if (shape[d] != 1) new_index[d] = kept, kept_shape[kept++] = shape[d];
    else new_index[d] = -1;
  int p[kMaxRank], n = 0;
  for (int o = 0; o < rank; ++o)
    if (new_index[perm[o]] >= 0) p[n++] = new_index[perm[o]];
  int first[kMaxRank], groups = 0;
  int64_t size[kMaxRank];
  for (int o = 0; o < n; ++o) {
    if (o > 0 && p[o] == p[o - 1] + 1) {
      size[groups - 1] *= kept_shape[p[o]];
    } else {
      first[groups] = p[o];
      size[groups++] = kept_shape[p[o]];
    }
  }
  int order[kMaxRank];  // groups in x's order
  for (int g = 0; g < groups; ++g) {  // insertion sort: at most 6 groups
    int k = g;
    for (; k > 0 && first[order[k - 1]] > first[g]; --k) order[k] = order[k - 1];
    order[k] = g;
  }
  for (int i = 0; i < groups; ++i) {
    out_shape[i] = size[order[i]];
    out_perm[order[i]] = i;
  }
  return groups;
}

template <class T>
void transpose_typed(int rank, const int64_t* shape, const int64_t* perm, const T* x, T* y,
                     const flowc_parallel* par) {
  int64_t x_strides[kMaxRank], y_shape[kMaxRank], ys[kMaxRank];  // ys: x stride per y axis
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) x_strides[d] = s, s *= shape[d];
  const int64_t total = s;
  for (int d = 0; d < rank; ++d) y_shape[d] = shape[perm[d]], ys[d] = x_strides[perm[d]];
  if (rank == 1) { std::memcpy(y, x, total * sizeof(T)); return; }
  // Tile the plane of y's last axis (contiguous in y) and x's last axis (contiguous in x).
  const int yl = rank - 1;
  int xl = 0;
  for (int d = 0; d < rank; ++d) if (perm[d] == rank - 1) xl = d;  // y axis holding x's last axis
  if (xl == yl) {
    // Last axis unchanged (simplification leaves this only at rank 1); kept for safety.
    int64_t rows = total / y_shape[yl];
    for (int64_t r = 0; r < rows; ++r) {
      int64_t off = 0, rem = r;
      for (int d = yl - 1; d >= 0; --d) off += rem % y_shape[d] * ys[d], rem /= y_shape[d];
      std::memcpy(y + r * y_shape[yl], x + off, y_shape[yl] * sizeof(T));
    }
    return;
  }
  const int64_t A = y_shape[xl], B = y_shape[yl], ystride_a = [&] {
    int64_t st = 1;
    for (int d = rank - 1; d > xl; --d) st *= y_shape[d];
    return st;
  }();
  const int64_t xstride_b = ys[yl];
  const int64_t outer = total / (A * B);
  constexpr int64_t kTile = flowc::cpu::schedule::layout::kTransposeTile;
  const int64_t tiles_a = (A + kTile - 1) / kTile;
  int64_t y_strides[kMaxRank];
  s = 1;
  for (int d = rank - 1; d >= 0; --d) y_strides[d] = s, s *= y_shape[d];
  parallel_for(par, outer * tiles_a, std::max<int64_t>(1, kMinBytesPerThread / (kTile * B * (int64_t)sizeof(T))),
               [&](int64_t lo, int64_t hi) {
    for (int64_t job = lo; job < hi; ++job) {
      int64_t o = job / tiles_a, ta = job % tiles_a;
      int64_t xoff = 0, yoff = 0, rem = o;
      for (int d = rank - 1; d >= 0; --d) {
        if (d == xl || d == yl) continue;
        int64_t i = rem % y_shape[d];
        rem /= y_shape[d];
        xoff += i * ys[d];
        yoff += i * y_strides[d];
      }
      int64_t a0 = ta * kTile, a1 = std::min(A, a0 + kTile);
      for (int64_t b0 = 0; b0 < B; b0 += kTile) {
        int64_t b1 = std::min(B, b0 + kTile);
        for (int64_t a = a0; a < a1; ++a) {
          const T* __restrict xp = x + xoff + a;  // x's last axis has stride 1
          T* __restrict yp = y + yoff + a * ystride_a;
          for (int64_t b = b0; b < b1; ++b) yp[b] = xp[b * xstride_b];
        }
      }
    }
  });
}

// Calls body(y_offset, x_offset) for each row of the last axis of y (y is [rows, last]).
template <class Body>
void for_rows(int rank, const int64_t* y_shape, int64_t rows_lo, int64_t rows_hi, Body&& body) {
  for (int64_t r = rows_lo; r < rows_hi; ++r) {
    int64_t idx[kMaxRank], rem = r;
    for (int d = rank - 2; d >= 0; --d) idx[d] = rem % y_shape[d], rem /= y_shape[d];
    body(r, idx);
  }
}

}  // namespace

void flowc_transpose(int elem_size, int rank, const int64_t* x_shape, const int64_t* perm,
                     const void* x, void* y, const flowc_parallel* par) {
  int64_t shape[kMaxRank], p[kMaxRank];
  int r = simplify_perm(rank, x_shape, perm, shape, p);
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= x_shape[d];
  if (r <= 1) {
    std::memcpy(y, x, total * elem_size);
    return;
  }
  by_size(elem_size, [&](auto t) {
    using T = decltype(t);
    transpose_typed<T>(r, shape, p, static_cast<const T*>(x), static_cast<T*>(y), par);
  });
}

bool flowc_gather(int elem_size, int64_t outer, int64_t axis_size, int64_t inner, const void* x,
                  const int64_t* indices, int64_t num_indices, void* y, const flowc_parallel* par) {
  for (int64_t j = 0; j < num_indices; ++j)
    if (indices[j] < -axis_size || indices[j] >= axis_size) return false;
  const int64_t row = inner * elem_size;
  const char* xb = static_cast<const char*>(x);
  char* yb = static_cast<char*>(y);
  parallel_for(par, outer * num_indices, std::max<int64_t>(1, kMinBytesPerThread / (row + 1)),
               [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      int64_t o = k / num_indices, j = k % num_indices;
      int64_t i = indices[j] < 0 ? indices[j] + axis_size : indices[j];
      std::memcpy(yb + k * row, xb + (o * axis_size + i) * row, row);
    }
  });
  return true;
}

void flowc_concat(int elem_size, int num_inputs, const void* const* xs, const int64_t* axis_sizes,
                  int64_t outer, int64_t inner, void* y, const flowc_parallel* par) {
  int64_t y_row = 0;
  for (int i = 0; i < num_inputs; ++i) y_row += axis_sizes[i];
  y_row *= inner * elem_size;
  char* yb = static_cast<char*>(y);
  parallel_for(par, outer, std::max<int64_t>(1, kMinBytesPerThread / (y_row + 1)),
               [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      char* dst = yb + o * y_row;
      for (int i = 0; i < num_inputs; ++i) {
        int64_t n = axis_sizes[i] * inner * elem_size;
        std::memcpy(dst, static_cast<const char*>(xs[i]) + o * n, n);
        dst += n;
      }
    }
  });
}

void flowc_slice(int elem_size, int rank, const int64_t* x_shape, const int64_t* starts,
                 const int64_t* steps, const int64_t* y_shape, const void* x, void* y,
                 const flowc_parallel* par) {
  int64_t total = 1, x_strides[kMaxRank], s = 1;
  for (int d = rank - 1; d >= 0; --d) x_strides[d] = s, s *= x_shape[d];
  for (int d = 0; d < rank; ++d) total *= y_shape[d];
  if (total == 0) return;
  if (rank == 0) { std::memcpy(y, x, elem_size); return; }
  const int64_t last = y_shape[rank - 1], rows = total / last;
  by_size(elem_size, [&](auto t) {
    using T = decltype(t);
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    const int64_t step = steps[rank - 1];
    parallel_for(par, rows, std::max<int64_t>(1, kMinBytesPerThread / (last * elem_size)),
                 [&](int64_t lo, int64_t hi) {
      for_rows(rank, y_shape, lo, hi, [&](int64_t r, const int64_t* idx) {
        int64_t off = starts[rank - 1];
        for (int d = 0; d < rank - 1; ++d) off += (starts[d] + idx[d] * steps[d]) * x_strides[d];
        const T* __restrict src = xt + off;
        T* __restrict dst = yt + r * last;
        if (step == 1) std::memcpy(dst, src, last * sizeof(T));
        else for (int64_t j = 0; j < last; ++j) dst[j] = src[j * step];
      });
    });
  });
}

void flowc_pad_constant(int elem_size, int rank, const int64_t* x_shape, const int64_t* pads_begin,
                        const int64_t* pads_end, const void* value, const void* x, void* y,
                        const flowc_parallel* par) {
  int64_t y_shape[kMaxRank], x_strides[kMaxRank], total = 1, s = 1;
  for (int d = rank - 1; d >= 0; --d) x_strides[d] = s, s *= x_shape[d];
  for (int d = 0; d < rank; ++d) total *= (y_shape[d] = x_shape[d] + pads_begin[d] + pads_end[d]);
  if (total == 0) return;
  if (rank == 0) { std::memcpy(y, x, elem_size); return; }
  const int64_t last = y_shape[rank - 1], rows = total / last;
  // Columns of a y row that come from x: [lo_col, hi_col), both within the row: a crop on one
  // side may reach past the pad on the other, leaving no column from x.
  const int64_t pb = pads_begin[rank - 1], xl = x_shape[rank - 1];
  const int64_t lo_col = std::clamp<int64_t>(pb, 0, last);
  const int64_t hi_col = std::clamp<int64_t>(pb + xl, lo_col, last);
  by_size(elem_size, [&](auto t) {
    using T = decltype(t);
    T v;
    std::memcpy(&v, value, sizeof(T));
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    parallel_for(par, rows, std::max<int64_t>(1, kMinBytesPerThread / (last * elem_size)),
                 [&](int64_t lo, int64_t hi) {
      for_rows(rank, y_shape, lo, hi, [&](int64_t r, const int64_t* idx) {
        T* __restrict dst = yt + r * last;
        bool inside = true;
        int64_t off = 0;
        for (int d = 0; d < rank - 1; ++d) {
          int64_t i = idx[d] - pads_begin[d];
          inside = inside && i >= 0 && i < x_shape[d];
          off += i * x_strides[d];
        }
        if (!inside) {
          for (int64_t j = 0; j < last; ++j) dst[j] = v;
          return;
        }
        for (int64_t j = 0; j < lo_col; ++j) dst[j] = v;
        if (hi_col > lo_col)
          std::memcpy(dst + lo_col, xt + off + (lo_col - pb), (hi_col - lo_col) * sizeof(T));
        for (int64_t j = hi_col; j < last; ++j) dst[j] = v;
      });
    });
  });
}

namespace {

// The x index that y index j (already shifted by the begin pad: i = j - pad) reads along an axis
// of n > 0 elements.
inline int64_t pad_source(flowc_pad_mode mode, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  if (mode == FLOWC_PAD_EDGE) return i < 0 ? 0 : n - 1;
  if (mode == FLOWC_PAD_WRAP) return (i % n + n) % n;
  if (n == 1) return 0;  // reflect
  const int64_t period = 2 * (n - 1);
  int64_t k = (i % period + period) % period;
  return k < n ? k : period - k;
}

}  // namespace

bool flowc_pad(flowc_pad_mode mode, int elem_size, int rank, const int64_t* x_shape,
               const int64_t* pads_begin, const int64_t* pads_end, const void* value, const void* x,
               void* y, const flowc_parallel* par) {
  int64_t y_shape[kMaxRank], x_strides[kMaxRank], first[kMaxRank], kept[kMaxRank], total = 1, s = 1;
  for (int d = 0; d < rank; ++d) {
    y_shape[d] = x_shape[d] + pads_begin[d] + pads_end[d];
    kept[d] = x_shape[d] - std::max<int64_t>(0, -pads_begin[d]) -
              std::max<int64_t>(0, -pads_end[d]);
    if (y_shape[d] < 0) return false;
    total *= y_shape[d];
  }
  if (total == 0) return true;
  if (mode == FLOWC_PAD_CONSTANT) {
    flowc_pad_constant(elem_size, rank, x_shape, pads_begin, pads_end, value, x, y, par);
    return true;
  }
  for (int d = 0; d < rank; ++d)
    if (kept[d] <= 0) return false;  // y_shape[d] > 0: something to pad from nothing
  for (int d = rank - 1; d >= 0; --d) x_strides[d] = s, s *= x_shape[d];
  if (rank == 0) { std::memcpy(y, x, elem_size); return true; }
  // source[d][j]: the element offset in x of y index j along axis d (what is left after cropping
  // starts at max(-pad, 0) and holds kept[d] elements).
  std::vector<int64_t> table;
  for (int d = 0; d < rank; ++d) {
    first[d] = int64_t(table.size());
    const int64_t crop = std::max<int64_t>(0, -pads_begin[d]);
    const int64_t pad = std::max<int64_t>(0, pads_begin[d]);
    for (int64_t j = 0; j < y_shape[d]; ++j)
      table.push_back((crop + pad_source(mode, j - pad, kept[d])) * x_strides[d]);
  }
  const int64_t* source = table.data();
  const int64_t last = y_shape[rank - 1], rows = total / last;
  // Columns of a y row copied straight from x: [lo_col, hi_col).
  const int64_t lo_col = std::max<int64_t>(0, pads_begin[rank - 1]);
  const int64_t hi_col = lo_col + kept[rank - 1];
  const int64_t* last_source = source + first[rank - 1];
  by_size(elem_size, [&](auto t) {
    using T = decltype(t);
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    parallel_for(par, rows, std::max<int64_t>(1, kMinBytesPerThread / (last * elem_size)),
                 [&](int64_t lo, int64_t hi) {
      for_rows(rank, y_shape, lo, hi, [&](int64_t r, const int64_t* idx) {
        int64_t off = 0;
        for (int d = 0; d < rank - 1; ++d) off += source[first[d] + idx[d]];
        const T* __restrict src = xt + off;
        T* __restrict dst = yt + r * last;
        for (int64_t j = 0; j < lo_col; ++j) dst[j] = src[last_source[j]];
        std::memcpy(dst + lo_col, src + last_source[lo_col], (hi_col - lo_col) * sizeof(T));
        for (int64_t j = hi_col; j < last; ++j) dst[j] = src[last_source[j]];
      });
    });
  });
  return true;
}
