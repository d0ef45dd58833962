// What a generated CUDA step (model.cu, compiled by nvcc) needs from the device its engine runs
// on: the flowc_cuda its kernel calls take, its stream's workspace, its request's events, staging
// and error flag, and CUDA failures turned into the step's return code with ctx->error set.
// Each helper returns 0 or a flowc_status_code, as a step does.
#pragma once

#include <cuda_runtime.h>

#include <cstdarg>
#include <cstddef>
#include <cstdio>

#include "flowc/status.h"
#include "runtime/core/step.h"
#include "runtime/device/cuda/cuda_device.h"
#include "runtime/kernels/cuda/kernels.h"

namespace flowc::cuda {

inline CudaDevice* device(flowc_step_ctx* ctx) { return static_cast<CudaDevice*>(ctx->device); }

// Sets ctx->error to the formatted text and returns `code`. ctx->error must outlive the step; the
// engine copies it on this thread as soon as the step returns, so one buffer per thread does.
FLOWC_PRINTF(3, 4) inline int failf(flowc_step_ctx* ctx, flowc_status_code code, const char* format, ...) {
  thread_local char message[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  ctx->error = message;
  return code;
}

// The stream's handles and the request's error flag; no workspace (ask with workspace()).
// error_code is what a kernel writes to the flag on bad input.
inline flowc_cuda context(flowc_step_ctx* ctx, int error_code) {
  CudaDevice* d = device(ctx);
  flowc_cuda cu{};
  cu.stream = static_cast<cudaStream_t>(ctx->stream);
  cu.blas = d->blas(ctx->stream_index);
  cu.blas_workspace = d->blas_workspace(ctx->stream_index, &cu.blas_workspace_bytes);
  cu.error_flag = d->error_flag(ctx->slot);
  cu.error_code = error_code;
  return cu;
}

// 0 for cudaSuccess; else the step's failure, naming `what` and the CUDA error.
inline int check(flowc_step_ctx* ctx, cudaError_t error, const char* what) {
  if (error == cudaSuccess) return 0;
  (void)cudaGetLastError();  // reported here, not again by the next launch's check
  return failf(ctx, error == cudaErrorMemoryAllocation ? FLOWC_STATUS_RESOURCE_EXHAUSTED : FLOWC_STATUS_INTERNAL,
               "%s: %s (%s)", what, cudaGetErrorString(error), cudaGetErrorName(error));
}

// A kernel call's failure: `message` is static (the kernel library's result).
inline int fail(flowc_step_ctx* ctx, const char* message) {
  ctx->error = message;
  return FLOWC_STATUS_INTERNAL;
}

// Points cu->workspace at this stream's scratch of at least `bytes`.
inline int workspace(flowc_step_ctx* ctx, size_t bytes, flowc_cuda* cu) {
  flowc_status status = device(ctx)->workspace(ctx->stream_index, bytes, &cu->workspace, &cu->workspace_bytes);
  if (!status) return 0;
  int code = failf(ctx, flowc_status_get_code(status), "%s", flowc_status_get_message(status));
  flowc_status_free(status);
  return code;
}

// Event k < CudaDevice::kEventsPerSlot of this request's slot.
inline cudaEvent_t event(flowc_step_ctx* ctx, int k) {
  return static_cast<cudaEvent_t>(device(ctx)->event(ctx->slot, k));
}

// This request's pinned staging; the output staging's error-flag copy sits after the outputs.
inline void* input_staging(flowc_step_ctx* ctx) { return device(ctx)->input_staging(ctx->slot); }
inline void* output_staging(flowc_step_ctx* ctx) { return device(ctx)->output_staging(ctx->slot); }
inline int* error_flag(flowc_step_ctx* ctx) { return device(ctx)->error_flag(ctx->slot); }

}  // namespace flowc::cuda
