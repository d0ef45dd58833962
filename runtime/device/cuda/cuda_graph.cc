#include "runtime/device/cuda/cuda_graph.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "runtime/base/log.h"
#include "runtime/device/cuda/cuda_device.h"

namespace flowc::cuda {

namespace {

// Puts the step's name in front of its message; the engine copies it as soon as the step returns.
int name_failure(flowc_step_ctx* ctx, const char* name, int code) {
  thread_local char message[768];
  std::snprintf(message, sizeof(message), "%s: %s", name, ctx->error ? ctx->error : "failed");
  ctx->error = message;
  return code;
}

int run_each(flowc_step_ctx* ctx, const GraphStep* steps, int32_t count) {
  for (int32_t i = 0; i < count; ++i) {
    if (int code = steps[i].fn(ctx)) return name_failure(ctx, steps[i].name, code);
  }
  return 0;
}

// Records the steps' launches on ctx's stream into a graph and instantiates it into g; false
// (with why logged, and nothing run) where they cannot be captured.
bool capture(flowc_step_ctx* ctx, CudaDevice* device, CudaDevice::SlotGraph* g, const GraphStep* steps,
             int32_t count) {
  cudaStream_t stream = static_cast<cudaStream_t>(ctx->stream);
  uint64_t generation = device->workspace_generation(ctx->stream_index);
  std::string why;
  cudaError_t error = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
  if (error != cudaSuccess) {
    why = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(error);
  } else {
    for (int32_t i = 0; i < count && why.empty(); ++i) {
      ctx->error = nullptr;
      if (steps[i].fn(ctx)) why = std::string("step ") + steps[i].name + ": " + (ctx->error ? ctx->error : "failed");
    }
    ctx->error = nullptr;
    cudaGraph_t graph = nullptr;
    error = cudaStreamEndCapture(stream, &graph);
    if (why.empty() && error != cudaSuccess) why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(error);
    if (why.empty() && device->workspace_generation(ctx->stream_index) != generation) {
      why = "a step grew its workspace while being captured";
    }
    if (why.empty()) {
      cudaGraphExec_t exec = nullptr;
      error = cudaGraphInstantiate(&exec, graph, 0);
      if (error == cudaSuccess) {
        g->exec = exec;
        g->workspace_generation = generation;
      } else {
        why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(error);
      }
    }
    if (graph) cudaGraphDestroy(graph);
  }
  if (why.empty()) return true;
  (void)cudaGetLastError();  // the capture's failure is not the next launch's
  g->off = true;
  FLOWC_LOG(FLOWC_LOG_WARN, "cuda device %d, arena slot %d: the compute steps run one by one, not as a CUDA graph (%s)",
            device->ordinal(), ctx->slot, why.c_str());
  return false;
}

}  // namespace

int run_graph(flowc_step_ctx* ctx, const GraphStep* steps, int32_t count) {
  CudaDevice* device = static_cast<CudaDevice*>(ctx->device);
  CudaDevice::SlotGraph* g = device->slot_graph(ctx->slot);
  if (g->exec && g->workspace_generation != device->workspace_generation(ctx->stream_index)) {
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g->exec));  // its kernels point into a freed workspace
    g->exec = nullptr;
  }
  bool warm = g->runs++ > 0;
  if (!g->exec && (!device->graphs() || g->off || !warm || !capture(ctx, device, g, steps, count))) {
    return run_each(ctx, steps, count);
  }
  cudaError_t error = cudaGraphLaunch(static_cast<cudaGraphExec_t>(g->exec), static_cast<cudaStream_t>(ctx->stream));
  if (error == cudaSuccess) return 0;
  thread_local char message[256];
  std::snprintf(message, sizeof(message), "cudaGraphLaunch (the compute steps): %s (%s)", cudaGetErrorString(error),
                cudaGetErrorName(error));
  ctx->error = message;
  return error == cudaErrorMemoryAllocation ? FLOWC_STATUS_RESOURCE_EXHAUSTED : FLOWC_STATUS_INTERNAL;
}

}  // namespace flowc::cuda
