#include "runtime/device/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>

namespace flowc {

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

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(&job);
  }
  for (int64_t i = 1; i < chunks; ++i) work_cv_.notify_one();

  for (int64_t i; (i = job.next.fetch_add(1)) < chunks;) {
    job.run_chunk(i);
    job.done.fetch_add(1);
  }
  // The job lives on this stack: take it off the queue, then wait for chunks still running.
  std::unique_lock<std::mutex> lock(mu_);
  auto it = std::find(jobs_.begin(), jobs_.end(), &job);
  if (it != jobs_.end()) jobs_.erase(it);
  done_cv_.wait(lock, [&] { return job.done.load() == chunks; });
}

void ThreadPool::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
    if (stop_) return;
    // Claim under the lock: a job on the queue is still alive, one off it may not be.
    Job* job = jobs_.front();
    int64_t i = job->next.fetch_add(1);
    int64_t chunks = job->chunks;
    if (i + 1 >= chunks) jobs_.pop_front();
    if (i >= chunks) continue;
    lock.unlock();
    job->run_chunk(i);
    bool last = job->done.fetch_add(1) + 1 == chunks;  // `job` may be gone after this
    lock.lock();
    if (last) done_cv_.notify_all();
  }
}

}  // namespace flowc
