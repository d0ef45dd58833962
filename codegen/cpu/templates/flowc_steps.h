// Helpers for flowc's generated step functions (model.cpp): the thread-pool hook, per-thread
// scratch, and the few data-movement loops the kernel library does not have.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "runtime/core/step.h"
#include "runtime/device/cpu/thread_pool.h"
#include "runtime/kernels/cpu/scalar.h"

namespace flowc::steps {

inline void pool_for(void* pool, int64_t n, void (*fn)(void*, int64_t, int64_t), void* arg) {
  static_cast<ThreadPool*>(pool)->parallel_for(n, 1, [&](int64_t begin, int64_t end) { fn(arg, begin, end); });
}

// The kernels' view of the request's thread pool.
inline flowc_parallel parallel(const flowc_step_ctx* ctx) {
  flowc_parallel par{};
  if (ctx->pool && ctx->pool->num_threads() > 1) {
    par.for_ = pool_for;
    par.ctx = ctx->pool;
    par.threads = ctx->pool->num_threads();
  }
  return par;
}

// Scratch that lives across calls on this thread (each stream worker runs one step at a time);
// `slot` keeps the buffers of one step apart.
template <class T>
T* scratch(int slot, int64_t count) {
  thread_local std::vector<T> buffers[4];
  std::vector<T>& b = buffers[slot];
  if (int64_t(b.size()) < count) b.resize(size_t(count));
  return b.data();
}

// y[o, :count, i] = x[o, begin:begin + count, i] with x viewed as [outer, axis, inner].
inline void copy_block(int elem_size, int64_t outer, int64_t axis, int64_t begin, int64_t count,
                       int64_t inner, const void* x, void* y) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  size_t row = size_t(count * inner * elem_size);
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + o * row, src + size_t((o * axis + begin) * inner * elem_size), row);
  }
}

// A collective's member blocks (flowc/comm.h): x [outer, parts, block] -> y [parts, outer, block],
// blocks of `block` bytes; unpack_blocks is the inverse.
inline void pack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  for (int64_t p = 0; p < parts; ++p) {
    for (int64_t o = 0; o < outer; ++o) {
      std::memcpy(dst + size_t((p * outer + o) * block), src + size_t((o * parts + p) * block), size_t(block));
    }
  }
}

inline void unpack_blocks(int64_t outer, int64_t parts, int64_t block, const void* x, void* y) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t p = 0; p < parts; ++p) {
      std::memcpy(dst + size_t((o * parts + p) * block), src + size_t((p * outer + o) * block), size_t(block));
    }
  }
}

// GatherND: data viewed as [batch, dims[0..k), slice], indices as [batch, count, k].
// False when an index is out of range.
template <class I>
bool gather_nd(int elem_size, int64_t batch, int k, const int64_t* dims, int64_t slice, int64_t count,
               const I* indices, const void* x, void* y) {
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  int64_t per_batch = slice;
  for (int d = 0; d < k; ++d) per_batch *= dims[d];
  size_t bytes = size_t(slice * elem_size);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < count; ++j) {
      const I* t = indices + (b * count + j) * k;
      int64_t offset = 0;
      for (int d = 0; d < k; ++d) {
        int64_t i = int64_t(t[d]);
        if (i < 0) i += dims[d];
        if (i < 0 || i >= dims[d]) return false;
        offset = offset * dims[d] + i;
      }
      std::memcpy(dst + size_t((b * count + j) * slice * elem_size),
                  src + size_t((b * per_batch + offset * slice) * elem_size), bytes);
    }
  }
  return true;
}

template <class I>
void widen_indices(int64_t n, const I* x, int64_t* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = int64_t(x[i]);
}

}  // namespace flowc::steps
