#ifndef FLOWC_DEVICE_DEVICE_H_
#define FLOWC_DEVICE_DEVICE_H_

#include <cstddef>

#include "flowc/status.h"

namespace flowc {

// What the actor core needs from a device: memory for arenas, and a name for messages.
// A driver (cpu, later cuda) implements it; the core sees only this header.
class Device {
 public:
  virtual ~Device() = default;
  virtual const char* name() const = 0;
  // FLOWC_ARENA_ALIGNMENT-aligned; zero bytes gives nullptr and OK.
  virtual flowc_status allocate(size_t bytes, void** out_ptr) = 0;
  virtual void free(void* ptr) = 0;
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_DEVICE_H_
