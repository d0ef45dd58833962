#ifndef FLOWC_DEVICE_CPU_THREAD_POOL_H_
#define FLOWC_DEVICE_CPU_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace flowc {

// Intra-op parallelism. The caller of parallel_for works too, so a pool of N threads starts
// N - 1 workers. An idle worker spins for a short while before it sleeps on a condition
// variable: kernels of one request follow each other within microseconds, and waking a
// sleeping thread costs tens of them (more on a virtual machine). Safe to call from several
// threads at once (each stream worker does) and from inside a parallel_for body.
class ThreadPool {
 public:
  // 0: std::thread::hardware_concurrency(). Idle workers spin `spin_us` microseconds before they
  // sleep; -1 takes FLOWC_SPIN_US from the environment, else 100 (0 never spins: for hosts
  // whose cores other work needs).
  explicit ThreadPool(int num_threads = 0, int spin_us = -1);
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
  int64_t spin_ns_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Job*> jobs_;  // jobs with chunks left to claim, oldest first
  std::atomic<int> queued_{0};  // jobs_.size(), for workers spinning without the lock
  int sleeping_ = 0;            // workers waiting on work_cv_
  bool stop_ = false;
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_CPU_THREAD_POOL_H_
