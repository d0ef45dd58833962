#ifndef FLOWC_DEVICE_CPU_CPU_DEVICE_H_
#define FLOWC_DEVICE_CPU_CPU_DEVICE_H_

#include "runtime/device/cpu/thread_pool.h"
#include "runtime/device/device.h"

namespace flowc {

// Host memory and a thread pool for the kernels' parallel loops.
class CpuDevice final : public Device {
 public:
  // 0 threads: the core count.
  explicit CpuDevice(int num_threads = 0) : pool_(num_threads) {}

  const char* name() const override { return "cpu"; }
  flowc_status allocate(size_t bytes, void** out_ptr) override;
  void free(void* ptr) override;
  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool pool_;
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_CPU_CPU_DEVICE_H_
