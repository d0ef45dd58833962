#ifndef FLOWC_DEVICE_CUDA_CUDA_GRAPH_H_
#define FLOWC_DEVICE_CUDA_CUDA_GRAPH_H_

// A plan's compute steps replayed as one CUDA graph. Every shape, pointer and launch of a static
// plan is fixed at compile time, so a request's kernels are the same list each time, save for the
// arena slot they run in: codegen/cuda folds the compute steps into one step that calls
// run_graph, which captures them once per slot and then launches that graph instead of each
// kernel, one call where there were hundreds.
//
// A slot runs the steps one by one until one such run succeeds: it grows the stream's workspace
// to what the steps need, and capture must not allocate. The next request captures them (in the
// calling thread's capture mode, so other threads' CUDA calls go on; drain_slot, which syncs the
// stream, waits for the capture) and launches the graph; later ones launch it. If the workspace
// moved since (a capture would point into freed memory), the slot captures again. If a step
// fails during capture (it syncs with the host, say), the slot logs why and runs its steps one
// by one from then on; any other failure (another thread broke the capture, memory ran short, a
// launch failed) is retried up to three times. CudaDevice::Options::graphs false
// (FLOWC_CUDA_GRAPHS=0) always runs them one by one. A failing step's message is prefixed with
// its name, as the engine names its own steps.

#include <cstdint>

#include "flowc/runtime.h"
#include "runtime/core/step.h"

namespace flowc::cuda {

struct GraphStep {
  const char* name;  // the node, for messages
  flowc_step_fn fn;
};

// Runs `steps[0..count)` for ctx's request on ctx's stream; 0 or the first failing step's code.
int run_graph(flowc_step_ctx* ctx, const GraphStep* steps, int32_t count);

}  // namespace flowc::cuda

#endif  // FLOWC_DEVICE_CUDA_CUDA_GRAPH_H_
