#include "runtime/device/cuda/staged_communicator.h"

#include <cuda_runtime.h>

#include <string>


namespace flowc {

namespace {

flowc_status cuda_failure(int32_t rank, const char* call, cudaError_t error) {
  return flowc_status_make(error == cudaErrorMemoryAllocation ? FLOWC_STATUS_RESOURCE_EXHAUSTED
                                                              : FLOWC_STATUS_INTERNAL,
                           "rank %d: staging a collective through host memory: %s failed: %s (%s)", rank, call,
                           cudaGetErrorString(error), cudaGetErrorName(error));
}

#define FLOWC_STAGED_CHECK(call)                                                       \
  do {                                                                                 \
    cudaError_t flowc_staged_error_ = (call);                                          \
    if (flowc_staged_error_ != cudaSuccess) return cuda_failure(rank(), #call, flowc_staged_error_); \
  } while (0)

// Pinned host memory that grows on demand (only the rank's comm stream calls, one at a time).
struct Pinned {
  void* data = nullptr;
  size_t bytes = 0;
  ~Pinned() {
    if (data) cudaFreeHost(data);
  }
};

class StagedCommunicator final : public Communicator {
 public:
  StagedCommunicator(std::unique_ptr<Communicator> host, const CudaDevice& gpu)
      : Communicator(host->mesh(), host->rank()),
        host_(std::move(host)),
        ordinal_(gpu.ordinal()),
        name_(std::string(host_->name()) + " (staged through host memory)") {}

  ~StagedCommunicator() override {
    CurrentDevice current(ordinal_);
    if (copied_back_) cudaEventDestroy(copied_back_);
  }

  const char* name() const override { return name_.c_str(); }
  int32_t ranks_on_host() const override { return host_->ranks_on_host(); }

 protected:
  flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                          uint64_t count, void* stream) override {
    uint64_t members = uint64_t(mesh().shape()[size_t(axis)]);
    bool reduces = op == Op::kAllReduce || op == Op::kReduceScatter;
    uint64_t block = reduces ? count * comm_dtype_size(dtype) : count;  // checked against overflow already
    uint64_t send_bytes = op == Op::kAllReduce || op == Op::kAllGather ? block : block * members;
    uint64_t recv_bytes = op == Op::kAllReduce || op == Op::kReduceScatter ? block : block * members;
    auto gpu_stream = static_cast<cudaStream_t>(stream);
    CurrentDevice current(ordinal_);
    FLOWC_STAGED_CHECK(cudaError_t(current.error()));
    // The last collective's copy back must be done with the host buffer before it is reused.
    if (copied_back_) FLOWC_STAGED_CHECK(cudaEventSynchronize(copied_back_));
    FLOWC_RETURN_IF_ERROR(reserve(&send_host_, send_bytes));
    FLOWC_RETURN_IF_ERROR(reserve(&recv_host_, recv_bytes));
    FLOWC_STAGED_CHECK(cudaMemcpyAsync(send_host_.data, send, send_bytes, cudaMemcpyDeviceToHost, gpu_stream));
    // Waits for the kernels before it on the stream too: they made `send`.
    FLOWC_STAGED_CHECK(cudaStreamSynchronize(gpu_stream));
    switch (op) {
      case Op::kAllReduce:
        FLOWC_RETURN_IF_ERROR(host_->all_reduce(axis, dtype, send_host_.data, recv_host_.data, count));
        break;
      case Op::kAllGather:
        FLOWC_RETURN_IF_ERROR(host_->all_gather(axis, send_host_.data, recv_host_.data, count));
        break;
      case Op::kReduceScatter:
        FLOWC_RETURN_IF_ERROR(host_->reduce_scatter(axis, dtype, send_host_.data, recv_host_.data, count));
        break;
      case Op::kAllToAll:
        FLOWC_RETURN_IF_ERROR(host_->all_to_all(axis, send_host_.data, recv_host_.data, count));
        break;
    }
    FLOWC_STAGED_CHECK(cudaMemcpyAsync(recv, recv_host_.data, recv_bytes, cudaMemcpyHostToDevice, gpu_stream));
    if (!copied_back_) FLOWC_STAGED_CHECK(cudaEventCreateWithFlags(&copied_back_, cudaEventDisableTiming));
    FLOWC_STAGED_CHECK(cudaEventRecord(copied_back_, gpu_stream));
    return nullptr;
  }

  flowc_status copy(void* recv, const void* send, uint64_t bytes, void* stream) override {
    CurrentDevice current(ordinal_);
    FLOWC_STAGED_CHECK(cudaError_t(current.error()));
    FLOWC_STAGED_CHECK(
        cudaMemcpyAsync(recv, send, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
    return nullptr;
  }

 private:
  flowc_status reserve(Pinned* buffer, uint64_t bytes) {
    if (bytes <= buffer->bytes) return nullptr;
    if (buffer->data) FLOWC_STAGED_CHECK(cudaFreeHost(buffer->data));
    buffer->data = nullptr;
    buffer->bytes = 0;
    FLOWC_STAGED_CHECK(cudaHostAlloc(&buffer->data, bytes, cudaHostAllocDefault));
    buffer->bytes = bytes;
    return nullptr;
  }

  std::unique_ptr<Communicator> host_;
  int32_t ordinal_;
  std::string name_;
  Pinned send_host_, recv_host_;
  cudaEvent_t copied_back_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> stage_through_host(std::unique_ptr<Communicator> host, const CudaDevice& gpu) {
  return std::make_unique<StagedCommunicator>(std::move(host), gpu);
}

}  // namespace flowc
