// The CUDA device (runtime/device/cuda). Built only with FLOWC_CUDA=ON.
//
//   test_cuda_device errors   what create() says where it cannot make a device: with no usable GPU
//                             (no driver, as on a build machine) the clear UNAVAILABLE error
//   test_cuda_device gpu      memory, copies, staging, workspaces, an event ordering two
//                             streams, and steps replayed as a CUDA graph (cuda_graph.h); exits 77
//                             (skipped) where there is no GPU
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
#include "runtime/core/step.h"
#include "runtime/device/cuda/cuda_device.h"
#include "runtime/device/cuda/cuda_graph.h"

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
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // the device's streams do not wait for it
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

// -- steps replayed as a CUDA graph ------------------------------------------------------------
// The steps move an arena's bytes through the stream's workspace with async copies, so that a
// replayed graph's answer can be told from a stale one: each request writes new input first.
constexpr size_t kGraphBytes = 4096;
int g_calls = 0;  // step calls: they stop where the graph replays

cudaStream_t stream_of(flowc_step_ctx* ctx) { return static_cast<cudaStream_t>(ctx->stream); }

// The stream's workspace, kGraphBytes of it (grown on a slot's first request, never in a capture).
void* workspace_of(flowc_step_ctx* ctx) {
  void* scratch = nullptr;
  size_t bytes = 0;
  flowc_status status = static_cast<CudaDevice*>(ctx->device)->workspace(ctx->stream_index, kGraphBytes, &scratch,
                                                                         &bytes);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return scratch;
}

int step_to_workspace(flowc_step_ctx* ctx) {
  ++g_calls;
  return cudaMemcpyAsync(workspace_of(ctx), ctx->arena, kGraphBytes, cudaMemcpyDeviceToDevice, stream_of(ctx)) ? 1 : 0;
}

int step_from_workspace(flowc_step_ctx* ctx) {
  ++g_calls;
  return cudaMemcpyAsync(ctx->arena + kGraphBytes, workspace_of(ctx), kGraphBytes, cudaMemcpyDeviceToDevice,
                         stream_of(ctx)) ? 1 : 0;
}

int step_mark(flowc_step_ctx* ctx) {
  ++g_calls;
  return cudaMemsetAsync(ctx->arena + 2 * kGraphBytes, 0x7f, 64, stream_of(ctx)) ? 1 : 0;
}

int step_waits_for_host(flowc_step_ctx* ctx) {  // cannot be captured
  ++g_calls;
  cudaError_t error = cudaStreamSynchronize(stream_of(ctx));
  if (error != cudaSuccess) ctx->error = cudaGetErrorString(error);
  return error == cudaSuccess ? 0 : FLOWC_STATUS_INTERNAL;
}

int step_fails(flowc_step_ctx* ctx) {
  ctx->error = "the kernel's message";
  return FLOWC_STATUS_OUT_OF_RANGE;
}

// One request of slot `slot` through `steps`: fresh input bytes in, the copy and the mark out.
void run_request(CudaDevice* device, uint8_t* arena, int32_t slot, const flowc::cuda::GraphStep* steps, int32_t count,
                 int seed) {
  std::vector<uint8_t> input(kGraphBytes), back(2 * kGraphBytes + 64);
  for (size_t i = 0; i < kGraphBytes; ++i) input[i] = uint8_t(i * 13 + seed);
  check_cuda(cudaMemcpy(arena, input.data(), kGraphBytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  check_cuda(cudaMemset(arena + kGraphBytes, 0, kGraphBytes + 64), "cudaMemset");
  check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // the device's streams do not wait for these
  flowc_step_ctx ctx{};
  ctx.arena = arena;
  ctx.device = device;
  ctx.stream = device->stream(0);
  ctx.stream_index = 0;
  ctx.slot = slot;
  int code = flowc::cuda::run_graph(&ctx, steps, count);
  CHECK(code == 0, "slot %d, seed %d: %d: %s", slot, seed, code, ctx.error ? ctx.error : "");
  check_cuda(cudaStreamSynchronize(stream_of(&ctx)), "cudaStreamSynchronize");
  check_cuda(cudaMemcpy(back.data(), arena, back.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
  for (size_t i = 0; i < kGraphBytes; ++i) {
    CHECK(back[kGraphBytes + i] == input[i], "slot %d, seed %d: byte %zu is %d, not %d", slot, seed, i,
          back[kGraphBytes + i], input[i]);
  }
  for (size_t i = 0; i < 64; ++i) CHECK(back[2 * kGraphBytes + i] == 0x7f);
}

void check_graphs() {
  CudaDevice::Options options;
  options.num_streams = 1;
  options.slots = 2;
  std::unique_ptr<CudaDevice> device;
  flowc_status status = CudaDevice::create(options, &device);
  CHECK(!status, "%s", flowc_status_get_message(status));
  uint8_t* arenas[2] = {nullptr, nullptr};
  for (uint8_t*& arena : arenas) CHECK(!device->allocate(2 * kGraphBytes + 64, reinterpret_cast<void**>(&arena)));
  const flowc::cuda::GraphStep steps[] = {{"to workspace", step_to_workspace},
                                          {"from workspace", step_from_workspace},
                                          {"mark", step_mark}};

  // A slot's first request runs the steps, its second captures them, later ones replay the graph.
  g_calls = 0;
  run_request(device.get(), arenas[0], 0, steps, 3, 1);
  CHECK(g_calls == 3 && !device->slot_graph(0)->exec);
  run_request(device.get(), arenas[0], 0, steps, 3, 2);
  CHECK(g_calls == 6 && device->slot_graph(0)->exec && !device->slot_graph(0)->off);
  for (int seed = 3; seed < 8; ++seed) run_request(device.get(), arenas[0], 0, steps, 3, seed);
  CHECK(g_calls == 6, "the steps ran %d times; the graph was not replayed", g_calls);
  // Each slot has its own graph over its own arena.
  run_request(device.get(), arenas[1], 1, steps, 3, 8);
  run_request(device.get(), arenas[1], 1, steps, 3, 9);
  run_request(device.get(), arenas[1], 1, steps, 3, 10);
  CHECK(g_calls == 12 && device->slot_graph(1)->exec != device->slot_graph(0)->exec);
  run_request(device.get(), arenas[0], 0, steps, 3, 11);
  CHECK(g_calls == 12);

  // The workspace moves: the graphs that point into it are captured again.
  void* scratch = nullptr;
  size_t bytes = 0;
  CHECK(!device->workspace(0, 1 << 20, &scratch, &bytes));
  run_request(device.get(), arenas[0], 0, steps, 3, 12);
  CHECK(g_calls == 15 && device->slot_graph(0)->exec);
  run_request(device.get(), arenas[0], 0, steps, 3, 13);
  CHECK(g_calls == 15);

  // A step that waits for the host cannot be captured: the slot runs its steps one by one.
  const flowc::cuda::GraphStep waiting[] = {{"to workspace", step_to_workspace},
                                            {"waits", step_waits_for_host},
                                            {"from workspace", step_from_workspace},
                                            {"mark", step_mark}};
  std::unique_ptr<CudaDevice> other;
  status = CudaDevice::create(options, &other);
  CHECK(!status, "%s", flowc_status_get_message(status));
  g_calls = 0;
  for (int seed = 0; seed < 4; ++seed) run_request(other.get(), arenas[0], 0, waiting, 4, seed);
  // 4, then 2 (the capture stops at the step that waits) + 4, then 4 and 4
  CHECK(g_calls == 18 && other->slot_graph(0)->off && !other->slot_graph(0)->exec, "%d calls", g_calls);
  check_cuda(cudaGetLastError(), "the failed capture's error");

  // With graphs off, always one by one; a failing step's message names it.
  options.graphs = false;
  status = CudaDevice::create(options, &other);
  CHECK(!status, "%s", flowc_status_get_message(status));
  g_calls = 0;
  for (int seed = 0; seed < 3; ++seed) run_request(other.get(), arenas[0], 0, steps, 3, seed);
  CHECK(g_calls == 9 && !other->slot_graph(0)->exec);
  const flowc::cuda::GraphStep failing[] = {{"mark", step_mark}, {"node \"bad\"", step_fails}};
  flowc_step_ctx ctx{};
  ctx.arena = arenas[0];
  ctx.device = other.get();
  ctx.stream = other->stream(0);
  CHECK(flowc::cuda::run_graph(&ctx, failing, 2) == FLOWC_STATUS_OUT_OF_RANGE);
  CHECK(ctx.error && std::string(ctx.error) == "node \"bad\": the kernel's message", "got '%s'", ctx.error);

  for (uint8_t* arena : arenas) device->free(arena);
  std::printf("graphs: ok\n");
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
  check_graphs();
  return 0;
}
