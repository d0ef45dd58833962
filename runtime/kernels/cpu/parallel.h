// The hook through which kernels split work over the runtime's thread pool.
#pragma once

#include <cstdint>

extern "C" {

// fn(arg, begin, end) is called on disjoint ranges covering [0, n); for_ returns when all are done.
// A null flowc_parallel* means: run serially on the calling thread.
typedef struct flowc_parallel {
  void (*for_)(void* ctx, int64_t n, void (*fn)(void* arg, int64_t begin, int64_t end), void* arg);
  void* ctx;
  int threads;  // how many ranges for_ runs at once; kernels size their blocks by it
} flowc_parallel;

}  // extern "C"

namespace flowc {

inline int parallel_threads(const flowc_parallel* par) {
  return par && par->for_ && par->threads > 1 ? par->threads : 1;
}

// Runs body(begin, end) over [0, n), split over par's threads only when there are at least
// `min_per_thread` items for each (below that, waking threads costs more than it saves).
template <class Body>
void parallel_for(const flowc_parallel* par, int64_t n, int64_t min_per_thread, Body&& body) {
  if (n <= 0) return;
  int threads = parallel_threads(par);
  if (threads == 1 || n < 2 * (min_per_thread > 0 ? min_per_thread : 1)) {
    body(int64_t{0}, n);
    return;
  }
  par->for_(
      par->ctx, n,
      [](void* arg, int64_t begin, int64_t end) { (*static_cast<Body*>(arg))(begin, end); },
      static_cast<void*>(&body));
}

}  // namespace flowc
