#include "gather_elements.h"

#include <atomic>

#include "schedule.h"

namespace {

constexpr int kMaxRank = 8;

template <class T>
bool gather(int rank, const int64_t* x_shape, const int64_t* index_shape, int axis, const T* x,
            const int64_t* indices, T* y, const flowc_parallel* par) {
  int64_t stride[kMaxRank];
  stride[rank - 1] = 1;
  for (int d = rank - 1; d > 0; --d) stride[d - 1] = stride[d] * x_shape[d];
  const int64_t last = index_shape[rank - 1], extent = x_shape[axis], axis_stride = stride[axis];
  int64_t rows = 1;
  for (int d = 0; d + 1 < rank; ++d) rows *= index_shape[d];
  std::atomic<bool> ok{true};
  // One task per row of the last axis: the row's offset in x without its axis coordinate, then
  // the indices move along axis (a row along axis itself when axis is the last one).
  flowc::parallel_for(par, rows, flowc::cpu::schedule::layout::kGatherElementsGrain / (last + 1) + 1,
                      [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t rest = r, base = 0;
      for (int d = rank - 2; d >= 0; --d) {
        const int64_t coordinate = rest % index_shape[d];
        rest /= index_shape[d];
        if (d != axis) base += coordinate * stride[d];
      }
      const int64_t* idx = indices + r * last;
      T* out = y + r * last;
      const int64_t step = axis == rank - 1 ? 0 : 1;
      for (int64_t j = 0; j < last; ++j) {
        int64_t i = idx[j] < 0 ? idx[j] + extent : idx[j];
        if (i < 0 || i >= extent) {
          ok.store(false, std::memory_order_relaxed);
          i = 0;
        }
        out[j] = x[base + j * step + i * axis_stride];
      }
    }
  });
  return ok.load();
}

}  // namespace

bool flowc_gather_elements(int elem_size, int rank, const int64_t* x_shape, const int64_t* index_shape,
                           int axis, const void* x, const int64_t* indices, void* y,
                           const flowc_parallel* par) {
  if (rank < 1 || rank > kMaxRank) return false;
  switch (elem_size) {
    case 1: return gather(rank, x_shape, index_shape, axis, static_cast<const uint8_t*>(x), indices,
                          static_cast<uint8_t*>(y), par);
    case 2: return gather(rank, x_shape, index_shape, axis, static_cast<const uint16_t*>(x), indices,
                          static_cast<uint16_t*>(y), par);
    case 4: return gather(rank, x_shape, index_shape, axis, static_cast<const uint32_t*>(x), indices,
                          static_cast<uint32_t*>(y), par);
    case 8: return gather(rank, x_shape, index_shape, axis, static_cast<const uint64_t*>(x), indices,
                          static_cast<uint64_t*>(y), par);
    default: return false;
  }
}
