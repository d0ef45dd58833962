#include <sys/resource.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "check.h"
#include "runtime/device/cpu/thread_pool.h"

using flowc::ThreadPool;

static double cpu_seconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Every index is visited once, ranges respect the grain, and no more threads than asked run.
static void check_cover(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> seen(n);
  std::atomic<int64_t> sum{0}, ranges{0};
  pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    CHECK(0 <= begin && begin < end && end <= n, "range [%lld, %lld) of %lld", (long long)begin,
          (long long)end, (long long)n);
    CHECK(end - begin >= grain || end == n, "range shorter than the grain");
    int64_t local = 0;
    for (int64_t i = begin; i < end; ++i) {
      seen[i]++;
      local += i;
    }
    sum += local;
    ranges++;
  });
  for (int64_t i = 0; i < n; ++i) CHECK(seen[i] == 1, "index %lld seen %d times", (long long)i, seen[i].load());
  CHECK(sum == n * (n - 1) / 2);
  CHECK(ranges <= pool.num_threads());
}

int main() {
  CHECK(ThreadPool().num_threads() == int(std::max(1u, std::thread::hardware_concurrency())));

  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    CHECK(pool.num_threads() == threads);
    for (int64_t n : {0, 1, 2, 3, 7, 1000, 1 << 20}) {
      for (int64_t grain : {int64_t(1), int64_t(7), int64_t(1000), n}) check_cover(pool, n, grain);
    }
  }

  ThreadPool pool(4);
  // Reused many times: a lost wakeup would hang here.
  for (int i = 0; i < 20000; ++i) check_cover(pool, 16, 1);
  // The same with workers that never spin (every job wakes a sleeper) and with long spins,
  // with pauses so that workers go to sleep between some of the jobs.
  for (int spin_us : {0, 2000}) {
    ThreadPool spinning(3, spin_us);
    for (int i = 0; i < 5000; ++i) {
      check_cover(spinning, 9, 1);
      if (i % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  }

  // Several callers at once, as stream workers do, with nested loops inside.
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&pool, c] {
      for (int i = 0; i < 300; ++i) {
        std::atomic<int64_t> sum{0};
        pool.parallel_for(8, 1, [&](int64_t begin, int64_t end) {
          for (int64_t j = begin; j < end; ++j) {
            pool.parallel_for(100 + c, 10, [&](int64_t b, int64_t e) {
              int64_t local = 0;
              for (int64_t k = b; k < e; ++k) local += k;
              sum += local;
            });
          }
        });
        CHECK(sum == 8 * (100 + c) * (99 + c) / 2, "caller %d got %lld", c, (long long)sum.load());
      }
    });
  }
  for (auto& t : callers) t.join();

  // Idle workers sleep once their spin (100 us by default) is over: half a second idle costs
  // (almost) no CPU time.
  double before = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  double idle = cpu_seconds() - before;
  CHECK(idle < 0.05, "idle pool used %.3f s of CPU in 0.5 s", idle);

  std::printf("thread pool: ok\n");
  return 0;
}
