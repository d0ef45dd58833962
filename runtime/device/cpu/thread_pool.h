#ifndef FLOWC_DEVICE_CPU_THREAD_POOL_H_
#define FLOWC_DEVICE_CPU_THREAD_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace flowc {

// Intra-op parallelism. The caller of parallel_for works too, so a pool of N threads starts
// N - 1 workers; idle workers sleep on a condition variable. Safe to call from several
// threads at once (each stream worker does) and from inside a parallel_for body.
class ThreadPool {
 public:
  // 0: std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) over disjoint ranges covering [0, n), each at least `grain` long
  // (but the last), on at most num_threads() threads; returns when all are done.
  template <typename Fn>
  void parallel_for(int64_t n, int64_t grain, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n, grain, [](void* f, int64_t begin, int64_t end) { (*static_cast<F*>(f))(begin, end); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

 private:
  using RangeFn = void (*)(void*, int64_t, int64_t);
  struct Job;

  void run(int64_t n, int64_t grain, RangeFn fn, void* arg);
  void work();

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Job*> jobs_;  // jobs with chunks left to claim, oldest first
  bool stop_ = false;
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_CPU_THREAD_POOL_H_
