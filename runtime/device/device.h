#ifndef FLOWC_DEVICE_DEVICE_H_
#define FLOWC_DEVICE_DEVICE_H_

#include <cstddef>
#include <cstdint>

#include "flowc/status.h"

namespace flowc {

// What the actor core needs from a device: memory for arenas, a native stream per plan stream,
// and a name for messages. A driver (cpu, cuda) implements it; the core sees only this header.
class Device {
 public:
  virtual ~Device() = default;
  virtual const char* name() const = 0;
  // FLOWC_ARENA_ALIGNMENT-aligned; zero bytes gives nullptr and OK.
  virtual flowc_status allocate(size_t bytes, void** out_ptr) = 0;
  virtual void free(void* ptr) = 0;
  // The native stream (cudaStream_t on cuda) that plan stream `index`'s steps enqueue their work
  // on; called by that stream's worker before each step. Null on cpu, where steps finish their work.
  virtual void* stream(int32_t /*index*/) { return nullptr; }
  // A failed request is leaving arena slot `slot` without running its final steps, which would
  // have waited for its queued work: wait for that work and reset the slot's state before the
  // next request takes it. Nothing to do where steps finish their work before returning (cpu).
  virtual void drain_slot(int32_t /*slot*/) {}
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_DEVICE_H_
