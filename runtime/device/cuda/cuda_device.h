#ifndef FLOWC_DEVICE_CUDA_CUDA_DEVICE_H_
#define FLOWC_DEVICE_CUDA_CUDA_DEVICE_H_

// One NVIDIA GPU: its streams (one per plan stream), events that order them, cuBLASLt handles,
// device memory for the arenas and weights, pinned host staging for inputs and outputs, and a
// per-slot error flag that kernels raise on bad input. Declared with opaque handles so that the
// actor core and model.cc include no CUDA header; cuda_device.cc and the generated steps do.
//
// Any thread may call it: each method that calls CUDA makes this GPU current on the calling
// thread first, and stream() does so for the worker that is about to run a step on it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "runtime/device/device.h"
#include "runtime/kernels/cuda/schedule.h"

namespace flowc {

class CudaDevice final : public Device {
 public:
  static constexpr int32_t kEventsPerSlot = 4;
  // Staging offsets and sizes are multiples of this (a good alignment for cudaMemcpyAsync).
  static constexpr size_t kStagingAlignment = 256;
  // cuBLASLt's workspace per stream (what its heuristics may use): schedules/cuda.py's GEMM.
  static constexpr size_t kBlasWorkspaceBytes = cuda::schedule::gemm::kWorkspaceBytes;

  struct Options {
    int32_t ordinal = 0;            // which GPU
    int32_t num_streams = 1;        // the plan's streams
    int32_t slots = 1;              // the plan's arena slots (requests in flight)
    size_t input_bytes = 0;         // pinned staging per slot for the inputs, all together
    size_t output_bytes = 0;        // and for the outputs; the error flag's copy goes right after
    // The plan's comm stream (0: none). Its steps enqueue on stream 0's CUDA stream, so that a
    // collective is ordered after the kernels that made its input and before those that read its
    // result with no events; the engine still runs it on a worker of its own, in plan order.
    // Its steps get no cuBLASLt handle (blas() is null there).
    int32_t comm_stream = 0;
    // Replay a plan's compute steps as one CUDA graph per slot where the plan asks for it
    // (cuda_graph.h); false runs them one by one, as FLOWC_CUDA_GRAPHS=0 asks.
    bool graphs = true;
  };

  // Arena slot `slot`'s CUDA graph of the plan's compute steps (cuda_graph.cc), touched only by
  // the worker of the stream those steps run on.
  struct SlotGraph {
    void* exec = nullptr;               // cudaGraphExec_t, or null: not captured (yet)
    uint64_t workspace_generation = 0;  // of the stream's workspace the graph's kernels point into
    bool warm = false;                  // a plain run succeeded: the workspace is sized for capture
    int32_t failed_captures = 0;        // captures that failed with no step failing (retried up to 3)
    bool off = false;                   // capture failed for good: the steps run one by one from now on
  };

  // A clear FLOWC_STATUS_UNAVAILABLE error where there is no driver or no GPU (the message names
  // the CUDA error and says the model was compiled for target cuda).
  static flowc_status create(const Options& options, std::unique_ptr<CudaDevice>* out_device);
  // Waits for every stream's work, then releases everything.
  ~CudaDevice() override;

  // How many GPUs the driver shows; UNAVAILABLE (the same clear error as create) with none.
  static flowc_status count(int32_t* out_count);

  const char* name() const override { return "cuda"; }
  int32_t ordinal() const;
  flowc_status allocate(size_t bytes, void** out_ptr) override;  // cudaMalloc
  void free(void* ptr) override;
  void* stream(int32_t index) override;                          // cudaStream_t of plan stream `index`
  void drain_slot(int32_t slot) override;  // waits for every stream, clears the slot's error flag

  // Synchronous host-to-device copy (weights at load).
  flowc_status copy_to_device(void* dst, const void* src, size_t bytes);
  // cudaEvent_t number k < kEventsPerSlot of arena slot `slot`.
  void* event(int32_t slot, int32_t k);
  // cublasLtHandle_t and its workspace, for plan stream `index`: made at the first ask, on that
  // stream's worker (null, and the failure logged, where that fails; the comm stream has none).
  void* blas(int32_t index);
  void* blas_workspace(int32_t index, size_t* out_bytes);
  // Device scratch for plan stream `index` of at least `bytes`, grown (never shrunk) on demand;
  // growing waits for the stream's work first. Only that stream's worker may call it.
  flowc_status workspace(int32_t index, size_t bytes, void** out_ptr, size_t* out_bytes);
  // Pinned host memory of arena slot `slot`: input staging (input_bytes), output staging
  // (output_bytes, then kStagingAlignment bytes where the error flag is copied back).
  void* input_staging(int32_t slot);
  void* output_staging(int32_t slot);
  // Device int of arena slot `slot` that kernels set on bad input (0: none); cleared by the caller.
  int* error_flag(int32_t slot);
  // How often plan stream `index`'s workspace moved (grew): a graph captured before points at freed memory.
  uint64_t workspace_generation(int32_t index) const;
  bool graphs() const;  // Options::graphs
  SlotGraph* slot_graph(int32_t slot);
  // Held while a stream is being captured, and by drain_slot, which syncs every stream.
  std::mutex& capture_mutex();

 private:
  CudaDevice() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Makes GPU `ordinal` current on the calling thread for a scope, then gives the caller's back:
// loading or freeing a model, or a collective on another GPU, must not change the device a host
// program (PyTorch, say) has current.
class CurrentDevice {
 public:
  explicit CurrentDevice(int32_t ordinal);
  ~CurrentDevice();
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;
  int error() const { return error_; }  // cudaSetDevice's cudaError_t

 private:
  int previous_ = -1;
  int error_ = 0;
};

}  // namespace flowc

#endif  // FLOWC_DEVICE_CUDA_CUDA_DEVICE_H_
