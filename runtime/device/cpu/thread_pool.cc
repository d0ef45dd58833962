#include "runtime/device/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>

#include "runtime/base/spin.h"

namespace flowc {

namespace {

constexpr int kDefaultSpinUs = 100;

int spin_from_environment() {
  const char* value = std::getenv("FLOWC_SPIN_US");
  if (!value || !*value) return kDefaultSpinUs;
  char* end = nullptr;
  long us = std::strtol(value, &end, 10);
  return *end || us < 0 ? kDefaultSpinUs : int(std::min(us, 1000000L));
}

}  // namespace

struct ThreadPool::Job {
  int64_t n;
  int64_t chunks;
  RangeFn fn;
  void* arg;
  std::atomic<int64_t> next{0};  // the next chunk to claim
  std::atomic<int64_t> done{0};  // chunks finished

  void run_chunk(int64_t i) const {
    // Balanced split: the first n % chunks chunks get one extra element.
    int64_t base = n / chunks, extra = n % chunks;
    int64_t begin = i * base + std::min(i, extra);
    fn(arg, begin, begin + base + (i < extra));
  }
};

ThreadPool::ThreadPool(int num_threads, int spin_us) {
  if (num_threads <= 0) num_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  spin_ns_ = int64_t(spin_us < 0 ? spin_from_environment() : spin_us) * 1000;
  workers_.reserve(num_threads - 1);
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run(int64_t n, int64_t grain, RangeFn fn, void* arg) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>((n - 1) / grain + 1, num_threads_);
  if (chunks == 1) {
    fn(arg, 0, n);
    return;
  }
  Job job{n, chunks, fn, arg};
  int64_t wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(&job);
    queued_.store(int(jobs_.size()), std::memory_order_release);
    wake = std::min<int64_t>(chunks - 1, sleeping_);  // spinning workers need no call
  }
  for (int64_t i = 0; i < wake; ++i) work_cv_.notify_one();

  for (int64_t i; (i = job.next.fetch_add(1)) < chunks;) {
    job.run_chunk(i);
    job.done.fetch_add(1);
  }
  // The job lives on this stack: take it off the queue, then wait for chunks still running.
  std::unique_lock<std::mutex> lock(mu_);
  auto it = std::find(jobs_.begin(), jobs_.end(), &job);
  if (it != jobs_.end()) jobs_.erase(it);
  queued_.store(int(jobs_.size()), std::memory_order_release);
  done_cv_.wait(lock, [&] { return job.done.load() == chunks; });
}

void ThreadPool::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (jobs_.empty() && !stop_) {
      lock.unlock();
      auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(spin_ns_);
      while (queued_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < until) {
        for (int k = 0; k < 64; ++k) cpu_relax();
      }
      lock.lock();
      ++sleeping_;
      work_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      --sleeping_;
    }
    if (stop_) return;
    // Claim under the lock: a job on the queue is still alive, one off it may not be.
    Job* job = jobs_.front();
    int64_t i = job->next.fetch_add(1);
    int64_t chunks = job->chunks;
    if (i + 1 >= chunks) {
      jobs_.pop_front();
      queued_.store(int(jobs_.size()), std::memory_order_release);
    }
    if (i >= chunks) continue;
    lock.unlock();
    job->run_chunk(i);
    bool last = job->done.fetch_add(1) + 1 == chunks;  // `job` may be gone after this
    lock.lock();
    if (last) done_cv_.notify_all();
  }
}

}  // namespace flowc
