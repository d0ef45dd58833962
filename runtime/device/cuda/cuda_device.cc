#include "runtime/device/cuda/cuda_device.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "runtime/base/log.h"

namespace flowc {

namespace {

flowc_status cuda_error(int32_t ordinal, const char* call, cudaError_t error) {
  return flowc_status_make(
      error == cudaErrorMemoryAllocation ? FLOWC_STATUS_RESOURCE_EXHAUSTED : FLOWC_STATUS_INTERNAL,
      "cuda device %d: %s failed: %s (%s)", ordinal, call, cudaGetErrorString(error), cudaGetErrorName(error));
}

// Where a destructor cannot return a status, a failure is logged.
void warn_on_error(int32_t ordinal, const char* call, cudaError_t error) {
  if (error == cudaSuccess) return;
  FLOWC_LOG(FLOWC_LOG_WARN, "cuda device %d: %s failed: %s (%s)", ordinal, call, cudaGetErrorString(error),
            cudaGetErrorName(error));
}

size_t round_up(size_t bytes, size_t alignment) { return (bytes + alignment - 1) / alignment * alignment; }

}  // namespace

CurrentDevice::CurrentDevice(int32_t ordinal) {
  if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
  error_ = int(cudaSetDevice(ordinal));
}

CurrentDevice::~CurrentDevice() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

// `call` is spelled out in the message, e.g. "cudaMalloc(&s.blas_workspace, kBlasWorkspaceBytes)".
#define FLOWC_CUDA_RETURN_IF_ERROR(ordinal, call)                                                 \
  do {                                                                                            \
    cudaError_t flowc_cuda_error_ = (call);                                                       \
    if (flowc_cuda_error_ != cudaSuccess) return cuda_error((ordinal), #call, flowc_cuda_error_); \
  } while (0)

struct CudaDevice::Impl {
  struct Stream {
    cudaStream_t stream = nullptr;
    bool borrowed = false;      // the comm stream's: stream 0's CUDA stream, destroyed with that one
    cublasLtHandle_t blas = nullptr;  // made on first use (make_blas): the copy streams never ask
    void* blas_workspace = nullptr;
    bool blas_failed = false;         // make_blas failed (and said why): not tried again
    void* workspace = nullptr;  // grown by CudaDevice::workspace
    size_t workspace_bytes = 0;
    uint64_t workspace_generation = 0;  // how often it grew
  };

  int32_t ordinal = 0;
  size_t input_stride = 0;   // per slot, of input_staging
  size_t output_stride = 0;  // per slot, of output_staging: the outputs, then the error flag's copy
  std::vector<Stream> streams;
  std::vector<cudaEvent_t> events;  // kEventsPerSlot per slot
  void* input_staging = nullptr;    // pinned
  void* output_staging = nullptr;   // pinned
  int* error_flags = nullptr;       // device, one per slot
  bool graphs = true;
  std::vector<SlotGraph> slot_graphs;  // one per slot
  std::mutex capture_mutex;            // held while a stream is captured (cuda_graph.cc) and by drain_slot

  flowc_status init(const Options& options);
  void make_blas(Stream& s);

  ~Impl();
};

// The GPU is current on this thread (create set it).
flowc_status CudaDevice::Impl::init(const Options& options) {
  graphs = options.graphs;
  slot_graphs.resize(size_t(options.slots));
  streams.resize(size_t(options.num_streams));
  for (Stream& s : streams) {
    if (&s - streams.data() == options.comm_stream && options.comm_stream > 0) {
      s.stream = streams[0].stream;
      s.borrowed = true;  // collectives call no GEMM: no cuBLASLt handle or workspace of their own
    } else {
      // Non-blocking: no implicit ordering with the legacy default stream, nor does the device
      // use that stream (another thread's capture forbids syncing it).
      FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    }
  }
  events.resize(size_t(options.slots) * kEventsPerSlot);
  for (cudaEvent_t& event : events) {
    FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  }
  input_stride = round_up(options.input_bytes, kStagingAlignment);
  output_stride = round_up(options.output_bytes, kStagingAlignment) + kStagingAlignment;
  if (input_stride) {
    FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaHostAlloc(&input_staging, input_stride * size_t(options.slots),
                                                      cudaHostAllocDefault));
  }
  FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaHostAlloc(&output_staging, output_stride * size_t(options.slots),
                                                    cudaHostAllocDefault));
  FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaMalloc(&error_flags, sizeof(int) * size_t(options.slots)));
  cudaStream_t first = streams[0].stream;
  FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaMemsetAsync(error_flags, 0, sizeof(int) * size_t(options.slots), first));
  FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaStreamSynchronize(first));
  return nullptr;
}

// On the stream's worker, at its first step that may call a GEMM: before any capture, since a
// slot's first request runs its steps plainly.
void CudaDevice::Impl::make_blas(Stream& s) {
  cublasStatus_t status = cublasLtCreate(&s.blas);
  if (status != CUBLAS_STATUS_SUCCESS) {
    FLOWC_LOG(FLOWC_LOG_ERROR, "cuda device %d: cublasLtCreate failed: %s (%s); its GEMMs will fail", ordinal,
              cublasLtGetStatusString(status), cublasLtGetStatusName(status));
    s.blas = nullptr;
    s.blas_failed = true;
    return;
  }
  cudaError_t error = cudaMalloc(&s.blas_workspace, kBlasWorkspaceBytes);
  if (error != cudaSuccess) {
    (void)cudaGetLastError();
    FLOWC_LOG(FLOWC_LOG_ERROR, "cuda device %d: no %zu bytes for cuBLASLt's workspace (%s); its GEMMs run without one",
              ordinal, kBlasWorkspaceBytes, cudaGetErrorString(error));
    s.blas_workspace = nullptr;
  }
}

// Also releases what a failed init got as far as making.
CudaDevice::Impl::~Impl() {
  CurrentDevice current(ordinal);
  warn_on_error(ordinal, "cudaSetDevice", cudaError_t(current.error()));
  for (Stream& s : streams) {
    if (s.stream) warn_on_error(ordinal, "cudaStreamSynchronize", cudaStreamSynchronize(s.stream));
  }
  for (SlotGraph& g : slot_graphs) {
    if (g.exec) warn_on_error(ordinal, "cudaGraphExecDestroy", cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(g.exec)));
  }
  for (Stream& s : streams) {
    if (s.blas) {
      cublasStatus_t status = cublasLtDestroy(s.blas);
      if (status != CUBLAS_STATUS_SUCCESS) {
        FLOWC_LOG(FLOWC_LOG_WARN, "cuda device %d: cublasLtDestroy failed: %s", ordinal,
                  cublasLtGetStatusString(status));
      }
    }
    warn_on_error(ordinal, "cudaFree", cudaFree(s.workspace));
    warn_on_error(ordinal, "cudaFree", cudaFree(s.blas_workspace));
    if (s.stream && !s.borrowed) warn_on_error(ordinal, "cudaStreamDestroy", cudaStreamDestroy(s.stream));
  }
  for (cudaEvent_t event : events) {
    if (event) warn_on_error(ordinal, "cudaEventDestroy", cudaEventDestroy(event));
  }
  warn_on_error(ordinal, "cudaFreeHost", cudaFreeHost(input_staging));
  warn_on_error(ordinal, "cudaFreeHost", cudaFreeHost(output_staging));
  warn_on_error(ordinal, "cudaFree", cudaFree(error_flags));
}

flowc_status CudaDevice::count(int32_t* out_count) {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error == cudaSuccess && count == 0) error = cudaErrorNoDevice;
  *out_count = error == cudaSuccess ? count : 0;
  if (error != cudaSuccess) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "target cuda: no usable NVIDIA GPU (cudaGetDeviceCount: %s, %s); this model was "
                             "compiled for --target cuda and needs an NVIDIA GPU with its driver; compile it with "
                             "--target cpu to run here",
                             cudaGetErrorString(error), cudaGetErrorName(error));
  }
  return nullptr;
}

flowc_status CudaDevice::create(const Options& options, std::unique_ptr<CudaDevice>* out_device) {
  out_device->reset();
  if (options.num_streams <= 0 || options.slots <= 0) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "cuda device needs at least one stream and one slot (has %d and %d)",
                             options.num_streams, options.slots);
  }
  if (options.comm_stream < 0 || options.comm_stream >= options.num_streams) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "cuda device: comm stream %d is not one of its %d streams",
                             options.comm_stream, options.num_streams);
  }
  int32_t count = 0;
  FLOWC_RETURN_IF_ERROR(CudaDevice::count(&count));
  if (options.ordinal < 0 || options.ordinal >= count) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE,
                             "target cuda: there is no GPU %d; this machine has %d (0..%d): set flowc_options.device "
                             "to one of them",
                             options.ordinal, count, count - 1);
  }
  CurrentDevice current(options.ordinal);
  cudaError_t error = cudaError_t(current.error());
  if (error != cudaSuccess) {
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "target cuda: GPU %d is not usable (cudaSetDevice: %s, %s)",
                             options.ordinal, cudaGetErrorString(error), cudaGetErrorName(error));
  }
  std::unique_ptr<CudaDevice> device(new CudaDevice());
  device->impl_ = std::make_unique<Impl>();
  device->impl_->ordinal = options.ordinal;
  FLOWC_RETURN_IF_ERROR(device->impl_->init(options));
  FLOWC_LOG(FLOWC_LOG_INFO, "cuda device %d: %d streams, %d slots, %zu + %zu staging bytes per slot, CUDA graphs %s",
            options.ordinal, options.num_streams, options.slots, device->impl_->input_stride,
            device->impl_->output_stride, options.graphs ? "on" : "off");
  *out_device = std::move(device);
  return nullptr;
}

CudaDevice::~CudaDevice() = default;

int32_t CudaDevice::ordinal() const { return impl_->ordinal; }

flowc_status CudaDevice::allocate(size_t bytes, void** out_ptr) {
  *out_ptr = nullptr;
  if (!bytes) return nullptr;
  CurrentDevice current(impl_->ordinal);
  FLOWC_CUDA_RETURN_IF_ERROR(impl_->ordinal, cudaError_t(current.error()));
  cudaError_t error = cudaMalloc(out_ptr, bytes);
  if (error != cudaSuccess) {
    *out_ptr = nullptr;
    (void)cudaGetLastError();  // reported here, not by the next launch's check
    return flowc_status_make(
        error == cudaErrorMemoryAllocation ? FLOWC_STATUS_RESOURCE_EXHAUSTED : FLOWC_STATUS_INTERNAL,
        "cuda device %d: cannot allocate %zu bytes (cudaMalloc: %s, %s)", impl_->ordinal, bytes,
        cudaGetErrorString(error), cudaGetErrorName(error));
  }
  return nullptr;
}

void CudaDevice::free(void* ptr) {
  if (!ptr) return;
  CurrentDevice current(impl_->ordinal);
  warn_on_error(impl_->ordinal, "cudaSetDevice", cudaError_t(current.error()));
  warn_on_error(impl_->ordinal, "cudaFree", cudaFree(ptr));
}

void* CudaDevice::stream(int32_t index) {
  // The worker that asks is about to run a step that launches on this stream: the launch needs
  // this GPU current on its thread. A failure here fails that step's own launch check too.
  cudaError_t error = cudaSetDevice(impl_->ordinal);
  if (error != cudaSuccess) {
    FLOWC_LOG(FLOWC_LOG_ERROR, "cuda device %d: cudaSetDevice failed: %s (%s)", impl_->ordinal,
              cudaGetErrorString(error), cudaGetErrorName(error));
  }
  return impl_->streams[size_t(index)].stream;
}

void CudaDevice::drain_slot(int32_t slot) {
  // Not while the compute worker captures the other slot: syncing a capturing stream breaks it.
  std::lock_guard<std::mutex> lock(impl_->capture_mutex);
  int32_t ordinal = impl_->ordinal;
  warn_on_error(ordinal, "cudaSetDevice", cudaSetDevice(ordinal));
  for (Impl::Stream& s : impl_->streams) {
    warn_on_error(ordinal, "cudaStreamSynchronize", cudaStreamSynchronize(s.stream));
  }
  // A kernel may have raised the flag before a later step failed; the final step that clears it was skipped.
  cudaStream_t stream = impl_->streams[0].stream;
  warn_on_error(ordinal, "cudaMemsetAsync", cudaMemsetAsync(error_flag(slot), 0, sizeof(int), stream));
  warn_on_error(ordinal, "cudaStreamSynchronize", cudaStreamSynchronize(stream));
}

flowc_status CudaDevice::copy_to_device(void* dst, const void* src, size_t bytes) {
  if (!bytes) return nullptr;
  CurrentDevice current(impl_->ordinal);
  FLOWC_CUDA_RETURN_IF_ERROR(impl_->ordinal, cudaError_t(current.error()));
  // On a stream of the device's own, then waited for: a pageable cudaMemcpy may return before
  // its last bytes land, and the legacy stream it runs on does not order the device's streams.
  cudaStream_t stream = impl_->streams[0].stream;
  FLOWC_CUDA_RETURN_IF_ERROR(impl_->ordinal, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  FLOWC_CUDA_RETURN_IF_ERROR(impl_->ordinal, cudaStreamSynchronize(stream));
  return nullptr;
}

void* CudaDevice::event(int32_t slot, int32_t k) {
  return impl_->events[size_t(slot) * kEventsPerSlot + size_t(k)];
}

void* CudaDevice::blas(int32_t index) {
  Impl::Stream& s = impl_->streams[size_t(index)];
  if (!s.blas && !s.borrowed && !s.blas_failed) impl_->make_blas(s);
  return s.blas;
}

void* CudaDevice::blas_workspace(int32_t index, size_t* out_bytes) {
  void* workspace = impl_->streams[size_t(index)].blas_workspace;
  *out_bytes = workspace ? kBlasWorkspaceBytes : 0;
  return workspace;
}

std::mutex& CudaDevice::capture_mutex() { return impl_->capture_mutex; }

flowc_status CudaDevice::workspace(int32_t index, size_t bytes, void** out_ptr, size_t* out_bytes) {
  Impl::Stream& s = impl_->streams[size_t(index)];
  if (bytes > s.workspace_bytes) {
    int32_t ordinal = impl_->ordinal;
    FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaSetDevice(ordinal));
    // Kernels already enqueued on this stream may still use the old block.
    FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaStreamSynchronize(s.stream));
    FLOWC_CUDA_RETURN_IF_ERROR(ordinal, cudaFree(s.workspace));
    s.workspace = nullptr;
    s.workspace_bytes = 0;
    ++s.workspace_generation;  // graphs captured before point at freed memory, whatever follows
    size_t grown = round_up(bytes, kStagingAlignment);
    FLOWC_RETURN_IF_ERROR(allocate(grown, &s.workspace));
    s.workspace_bytes = grown;
  }
  *out_ptr = s.workspace;
  *out_bytes = s.workspace_bytes;
  return nullptr;
}

void* CudaDevice::input_staging(int32_t slot) {
  return impl_->input_staging ? static_cast<uint8_t*>(impl_->input_staging) + size_t(slot) * impl_->input_stride
                              : nullptr;
}

void* CudaDevice::output_staging(int32_t slot) {
  return static_cast<uint8_t*>(impl_->output_staging) + size_t(slot) * impl_->output_stride;
}

int* CudaDevice::error_flag(int32_t slot) { return impl_->error_flags + slot; }

uint64_t CudaDevice::workspace_generation(int32_t index) const {
  return impl_->streams[size_t(index)].workspace_generation;
}

bool CudaDevice::graphs() const { return impl_->graphs; }

CudaDevice::SlotGraph* CudaDevice::slot_graph(int32_t slot) { return &impl_->slot_graphs[size_t(slot)]; }

}  // namespace flowc
