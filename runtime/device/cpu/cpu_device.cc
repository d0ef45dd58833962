#include "runtime/device/cpu/cpu_device.h"

#include "runtime/base/arena.h"

namespace flowc {

flowc_status CpuDevice::allocate(size_t bytes, void** out_ptr) {
  return flowc_arena_allocate(bytes, out_ptr);
}

void CpuDevice::free(void* ptr) { flowc_arena_free(ptr); }

}  // namespace flowc
