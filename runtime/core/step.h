#ifndef FLOWC_CORE_STEP_H_
#define FLOWC_CORE_STEP_H_

#include <cstdint>

#include "flowc/runtime.h"

namespace flowc {
class Communicator;
class Device;
class ThreadPool;
}  // namespace flowc

// Built by the engine for each firing; steps of one request on other streams get their own.
struct flowc_step_ctx {
  uint8_t* arena;              // this request's arena slot, FLOWC_ARENA_ALIGNMENT-aligned
  const void* const* inputs;   // the caller's buffers
  void* const* outputs;
  const void* weights;
  int64_t batch;
  int64_t request;             // sequence number, for messages
  flowc::Device* device;
  flowc::ThreadPool* pool;     // null where the device has none
  int32_t rank;                // this copy's rank in the device mesh; 0 on one device
  const int32_t* coords;       // its mesh coordinates, one per axis; null on one device
  flowc::Communicator* comm;   // what flowc/comm.h's collectives run on; null on one device
  const char* error;           // a failing step may point this at text that outlives the call
  void* stream;                // the native stream this step's work goes on (cudaStream_t); null on cpu
  int32_t stream_index;        // the plan stream this step runs on
  int32_t slot;                // this request's arena slot: request % plan.arena_slots
};

#endif  // FLOWC_CORE_STEP_H_
