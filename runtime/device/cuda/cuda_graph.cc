#include "runtime/device/cuda/cuda_graph.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <mutex>
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

constexpr int32_t kCaptureTries = 3;  // captures that fail with no step failing, before a slot gives up

// Why `g` was not captured: for good where a step failed during capture (it cannot be captured),
// else for now (another thread's call broke the capture, memory ran short) up to kCaptureTries.
void not_captured(CudaDevice* device, flowc_step_ctx* ctx, CudaDevice::SlotGraph* g, bool step_failed,
                  const std::string& why) {
  (void)cudaGetLastError();  // the capture's failure is not the next launch's
  g->off = step_failed || ++g->failed_captures >= kCaptureTries;
  FLOWC_LOG(FLOWC_LOG_WARN, "cuda device %d, arena slot %d: the compute steps run one by one, not as a CUDA graph, %s (%s)",
            device->ordinal(), ctx->slot, g->off ? "from now on" : "this time", why.c_str());
}

// Records the steps' launches on ctx's stream into a graph and instantiates it into g->exec;
// nothing runs. Leaves g->exec null where they could not be captured.
void capture(flowc_step_ctx* ctx, CudaDevice* device, CudaDevice::SlotGraph* g, const GraphStep* steps,
             int32_t count) {
  cudaStream_t stream = static_cast<cudaStream_t>(ctx->stream);
  uint64_t generation = device->workspace_generation(ctx->stream_index);
  std::string why;
  bool step_failed = false;
  cudaGraph_t graph = nullptr;
  {
    std::lock_guard<std::mutex> lock(device->capture_mutex());  // drain_slot must not sync the stream meanwhile
    cudaError_t error = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    if (error != cudaSuccess) {
      why = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(error);
    } else {
      for (int32_t i = 0; i < count && why.empty(); ++i) {
        cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(stream, &status) != cudaSuccess || status != cudaStreamCaptureStatusActive) {
          why = std::string("the capture was broken before step ") + steps[i].name;  // not the step's doing
          break;
        }
        ctx->error = nullptr;
        if (steps[i].fn(ctx)) {
          step_failed = true;
          why = std::string("step ") + steps[i].name + ": " + (ctx->error ? ctx->error : "failed");
        }
      }
      ctx->error = nullptr;
      error = cudaStreamEndCapture(stream, &graph);
      if (why.empty() && error != cudaSuccess) why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(error);
    }
  }
  if (why.empty() && device->workspace_generation(ctx->stream_index) != generation) {
    why = "a step grew its workspace while being captured";
  }
  if (why.empty()) {
    cudaGraphExec_t exec = nullptr;
    cudaError_t error = cudaGraphInstantiate(&exec, graph, 0);
    if (error == cudaSuccess) {
      g->exec = exec;
      g->workspace_generation = generation;
    } else {
      why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(error);
    }
  }
  if (graph) cudaGraphDestroy(graph);
  if (!why.empty()) not_captured(device, ctx, g, step_failed, why);
}

}  // namespace

int run_graph(flowc_step_ctx* ctx, const GraphStep* steps, int32_t count) {
  CudaDevice* device = static_cast<CudaDevice*>(ctx->device);
  CudaDevice::SlotGraph* g = device->slot_graph(ctx->slot);
  if (g->exec && g->workspace_generation != device->workspace_generation(ctx->stream_index)) {
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g->exec));  // its kernels point into a freed workspace
    g->exec = nullptr;
  }
  if (!g->exec && device->graphs() && g->warm && !g->off) capture(ctx, device, g, steps, count);
  if (g->exec) {
    cudaError_t error = cudaGraphLaunch(static_cast<cudaGraphExec_t>(g->exec), static_cast<cudaStream_t>(ctx->stream));
    if (error == cudaSuccess) return 0;
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g->exec));  // the steps run instead (a sticky error fails them too)
    g->exec = nullptr;
    not_captured(device, ctx, g, false, std::string("cudaGraphLaunch: ") + cudaGetErrorString(error));
  }
  int code = run_each(ctx, steps, count);
  if (!code) g->warm = true;
  return code;
}

}  // namespace flowc::cuda
