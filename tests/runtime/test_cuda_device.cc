// The CUDA device (runtime/device/cuda). Built only with FLOWC_CUDA=ON.
//
//   test_cuda_device errors   what create() says where it cannot make a device: with no usable GPU
//                             (no driver, as on a build machine) the clear UNAVAILABLE error
//   test_cuda_device gpu      memory, copies, staging, workspaces and an event ordering two
//                             streams; exits 77 (skipped) where there is no GPU
#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "status_check.h"
#include "runtime/device/cuda/cuda_device.h"

using flowc::CudaDevice;

namespace {

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE

void check_cuda(cudaError_t error, const char* what) {
  CHECK(error == cudaSuccess, "%s: %s", what, cudaGetErrorString(error));
}

// create() fails with `code` and a message that holds `text`; returns the message.
std::string create_fails(const CudaDevice::Options& options, flowc_status_code code, const std::string& text) {
  std::unique_ptr<CudaDevice> device;
  flowc_status status = CudaDevice::create(options, &device);
  CHECK(!device, "create made a device");
  return fails(status, code, text);
}

void check_errors() {
  CudaDevice::Options no_streams;
  no_streams.num_streams = 0;
  create_fails(no_streams, FLOWC_STATUS_INVALID_ARGUMENT, "at least one stream and one slot (has 0 and 1)");

  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    std::string expected = std::string("target cuda: no usable NVIDIA GPU (cudaGetDeviceCount: ") +
                           cudaGetErrorString(error) + ", " + cudaGetErrorName(error) +
                           "); this model was compiled for --target cuda and needs an NVIDIA GPU with its driver; "
                           "compile it with --target cpu to run here";
    std::string message = create_fails(CudaDevice::Options{}, FLOWC_STATUS_UNAVAILABLE, expected);
    CHECK(message == expected, "got '%s'", message.c_str());
    std::printf("no usable GPU, as create() says: %s\n", message.c_str());
  } else {
    CudaDevice::Options beyond;
    beyond.ordinal = count;
    std::string message = create_fails(beyond, FLOWC_STATUS_OUT_OF_RANGE,
                                       "there is no GPU " + std::to_string(count) + "; this machine has " +
                                           std::to_string(count));
    std::printf("%d GPU(s); an ordinal past them: %s\n", count, message.c_str());
  }
  std::printf("errors: ok\n");
}

// Sleeps on the stream it is enqueued on, so that work behind it runs late.
void CUDART_CB sleep_on_stream(void*) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

void check_gpu() {
  CudaDevice::Options options;
  options.num_streams = 2;
  options.slots = 3;
  options.input_bytes = 100;
  options.output_bytes = 300;
  std::unique_ptr<CudaDevice> device;
  flowc_status status = CudaDevice::create(options, &device);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(std::strcmp(device->name(), "cuda") == 0 && device->ordinal() == 0);

  auto s0 = static_cast<cudaStream_t>(device->stream(0));
  auto s1 = static_cast<cudaStream_t>(device->stream(1));
  CHECK(s0 && s1 && s0 != s1);
  for (int32_t i = 0; i < 2; ++i) {
    size_t bytes = 0;
    CHECK(device->blas(i) && device->blas_workspace(i, &bytes) && bytes == CudaDevice::kBlasWorkspaceBytes);
  }

  void* none = &options;
  CHECK(!device->allocate(0, &none) && !none);
  constexpr size_t kBytes = 1 << 20;
  void* memory = nullptr;
  status = device->allocate(kBytes, &memory);
  CHECK(!status && memory, "%s", flowc_status_get_message(status));
  CHECK(reinterpret_cast<uintptr_t>(memory) % 64 == 0);
  std::vector<uint8_t> pattern(kBytes), back(kBytes);
  for (size_t i = 0; i < kBytes; ++i) pattern[i] = uint8_t(i * 7 + 1);
  CHECK(!device->copy_to_device(memory, pattern.data(), kBytes));
  check_cuda(cudaMemcpy(back.data(), memory, kBytes, cudaMemcpyDeviceToHost), "cudaMemcpy");
  CHECK(back == pattern);

  // Pinned staging: per slot, the outputs then the error flag's copy, at aligned strides.
  for (int32_t slot = 0; slot < options.slots; ++slot) {
    for (void* staging : {device->input_staging(slot), device->output_staging(slot)}) {
      cudaPointerAttributes attributes;
      check_cuda(cudaPointerGetAttributes(&attributes, staging), "cudaPointerGetAttributes");
      CHECK(attributes.type == cudaMemoryTypeHost, "staging of slot %d is not pinned", slot);
    }
  }
  auto* in0 = static_cast<uint8_t*>(device->input_staging(0));
  auto* out0 = static_cast<uint8_t*>(device->output_staging(0));
  CHECK(static_cast<uint8_t*>(device->input_staging(1)) - in0 == 256);
  CHECK(static_cast<uint8_t*>(device->output_staging(1)) - out0 == 512 + 256);
  std::memset(out0, 0, 512 + sizeof(int));

  // Error flags start at zero; drain_slot clears one that a failed request left raised.
  int flags[3] = {-1, -1, -1};
  check_cuda(cudaMemcpy(flags, device->error_flag(0), sizeof(flags), cudaMemcpyDeviceToHost), "cudaMemcpy");
  CHECK(flags[0] == 0 && flags[1] == 0 && flags[2] == 0);
  check_cuda(cudaMemset(device->error_flag(1), 0x11, sizeof(int)), "cudaMemset");
  device->drain_slot(1);
  check_cuda(cudaMemcpy(flags, device->error_flag(0), sizeof(flags), cudaMemcpyDeviceToHost), "cudaMemcpy");
  CHECK(flags[1] == 0, "flag of slot 1 is %d after drain_slot", flags[1]);

  // An event orders two streams: stream 1 copies out what stream 0 writes after a sleep.
  check_cuda(cudaLaunchHostFunc(s0, sleep_on_stream, nullptr), "cudaLaunchHostFunc");
  check_cuda(cudaMemsetAsync(memory, 0x5a, 512, s0), "cudaMemsetAsync");
  auto event = static_cast<cudaEvent_t>(device->event(2, CudaDevice::kEventsPerSlot - 1));
  check_cuda(cudaEventRecord(event, s0), "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(s1, event, 0), "cudaStreamWaitEvent");
  check_cuda(cudaMemcpyAsync(out0, memory, 512, cudaMemcpyDeviceToHost, s1), "cudaMemcpyAsync");
  check_cuda(cudaMemcpyAsync(out0 + 512, device->error_flag(0), sizeof(int), cudaMemcpyDeviceToHost, s1),
             "cudaMemcpyAsync");
  check_cuda(cudaStreamSynchronize(s1), "cudaStreamSynchronize");
  for (size_t i = 0; i < 512; ++i) CHECK(out0[i] == 0x5a, "byte %zu is %d: stream 1 did not wait", i, out0[i]);
  CHECK(device->event(0, 0) != event);

  // A workspace grows on demand and is kept when smaller ones are asked for.
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
  CHECK(!device->workspace(1, 1000, &scratch, &scratch_bytes) && scratch && scratch_bytes >= 1000);
  void* first = scratch;
  CHECK(!device->workspace(1, 10, &scratch, &scratch_bytes) && scratch == first && scratch_bytes >= 1000);
  CHECK(!device->workspace(1, 4 << 20, &scratch, &scratch_bytes) && scratch && scratch_bytes >= size_t(4 << 20));
  check_cuda(cudaMemsetAsync(scratch, 0, 4 << 20, s1), "cudaMemsetAsync");

  // Calls from another thread find the GPU current there too.
  std::thread([&] {
    void* other = nullptr;
    flowc_status thread_status = device->allocate(4096, &other);
    CHECK(!thread_status && other, "%s", flowc_status_get_message(thread_status));
    check_cuda(cudaMemsetAsync(other, 1, 4096, static_cast<cudaStream_t>(device->stream(1))), "cudaMemsetAsync");
    check_cuda(cudaStreamSynchronize(static_cast<cudaStream_t>(device->stream(1))), "cudaStreamSynchronize");
    device->free(other);
  }).join();

  device->free(memory);
  device.reset();
  std::printf("gpu: ok\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "errors";
  if (mode == "errors") {
    check_errors();
    return 0;
  }
  CHECK(mode == "gpu", "usage: test_cuda_device errors|gpu");
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    std::printf("skipped: no usable GPU here (cudaGetDeviceCount: %s)\n", cudaGetErrorString(error));
    return kSkipped;
  }
  check_gpu();
  return 0;
}
