// The model loader's device choice (runtime/api/model.cc) with a hand-written model whose
// description names its device: what a user is told where a model cannot run, and, on a GPU, a
// cuda model's steps on two streams, ordered by the slot's events, with weights on the device.
//
//   test_model_device cpu-build    built without CUDA: cpu models run, a cuda model is refused
//   test_model_device cuda-build   built with FLOWC_CUDA: cpu models still run; NCCL is refused for a
//                                  cpu mesh; with no usable GPU a cuda model, on one device, a
//                                  mesh, or a rank over NCCL, names the CUDA error
//   test_model_device gpu          a cuda model runs; exits 77 (skipped) where there is no GPU
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "check.h"
#include "status_check.h"
#include "flowc/model.h"
#include "runtime/core/step.h"
#ifdef FLOWC_WITH_CUDA
#include <cuda_runtime.h>

#include "runtime/device/cuda/cuda_device.h"
#endif

namespace {

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE
constexpr int64_t kLength = 64;
constexpr size_t kBytes = kLength * sizeof(float);

std::vector<float> weights() {
  std::vector<float> w(kLength);
  for (int64_t i = 0; i < kLength; ++i) w[size_t(i)] = float(i) * 0.5f;
  return w;
}

// cpu: y = x + w, in one step.
int add_on_cpu(flowc_step_ctx* ctx) {
  const auto* x = static_cast<const float*>(ctx->inputs[0]);
  const auto* w = static_cast<const float*>(ctx->weights);
  auto* y = static_cast<float*>(ctx->outputs[0]);
  for (int64_t i = 0; i < kLength; ++i) y[i] = x[i] + w[i];
  return 0;
}
const flowc_plan_step kCpuSteps[] = {{"add", add_on_cpu, 0, nullptr, 0, nullptr, 0}};

#ifdef FLOWC_WITH_CUDA
// cuda, with copies only (no kernels in a host-compiled test): y = x[:half] ++ w[half:].
// upload (stream 1): the input through pinned staging into arena buffer 0, then event 0.
// copy (stream 0): waits for event 0, arena buffer 1 = buffer 0, then event 1.
// download (stream 1): waits for event 1; buffer 1's first half and the weights' second half out.
int fail(flowc_step_ctx* ctx, cudaError_t error) {
  ctx->error = cudaGetErrorString(error);
  return FLOWC_STATUS_INTERNAL;
}
flowc::CudaDevice* gpu(flowc_step_ctx* ctx) { return static_cast<flowc::CudaDevice*>(ctx->device); }
cudaEvent_t event(flowc_step_ctx* ctx, int k) { return static_cast<cudaEvent_t>(gpu(ctx)->event(ctx->slot, k)); }
cudaStream_t stream(flowc_step_ctx* ctx) { return static_cast<cudaStream_t>(ctx->stream); }

// Each step checks that the engine filled its ctx for this device.
bool ctx_is_right(flowc_step_ctx* ctx, int32_t stream_index) {
  return ctx->stream_index == stream_index && ctx->stream == gpu(ctx)->stream(stream_index) &&
         ctx->slot == int32_t(ctx->request % 2) && !ctx->pool;
}

int upload(flowc_step_ctx* ctx) {
  if (!ctx_is_right(ctx, 1)) return FLOWC_STATUS_INTERNAL;
  void* staging = gpu(ctx)->input_staging(ctx->slot);
  std::memcpy(staging, ctx->inputs[0], kBytes);
  cudaError_t e = cudaMemcpyAsync(ctx->arena, staging, kBytes, cudaMemcpyHostToDevice, stream(ctx));
  if (e == cudaSuccess) e = cudaEventRecord(event(ctx, 0), stream(ctx));
  return e == cudaSuccess ? 0 : fail(ctx, e);
}
int copy(flowc_step_ctx* ctx) {
  if (!ctx_is_right(ctx, 0)) return FLOWC_STATUS_INTERNAL;
  cudaError_t e = cudaStreamWaitEvent(stream(ctx), event(ctx, 0), 0);
  if (e == cudaSuccess) e = cudaMemcpyAsync(ctx->arena + 256, ctx->arena, kBytes, cudaMemcpyDeviceToDevice, stream(ctx));
  if (e == cudaSuccess) e = cudaEventRecord(event(ctx, 1), stream(ctx));
  return e == cudaSuccess ? 0 : fail(ctx, e);
}
int download(flowc_step_ctx* ctx) {
  if (!ctx_is_right(ctx, 1)) return FLOWC_STATUS_INTERNAL;
  auto* staging = static_cast<uint8_t*>(gpu(ctx)->output_staging(ctx->slot));
  const auto* w = static_cast<const uint8_t*>(ctx->weights);
  cudaError_t e = cudaStreamWaitEvent(stream(ctx), event(ctx, 1), 0);
  if (e == cudaSuccess) e = cudaMemcpyAsync(staging, ctx->arena + 256, kBytes / 2, cudaMemcpyDeviceToHost, stream(ctx));
  if (e == cudaSuccess) {
    e = cudaMemcpyAsync(staging + kBytes / 2, w + kBytes / 2, kBytes / 2, cudaMemcpyDeviceToHost, stream(ctx));
  }
  if (e == cudaSuccess) e = cudaStreamSynchronize(stream(ctx));
  if (e != cudaSuccess) return fail(ctx, e);
  std::memcpy(ctx->outputs[0], staging, kBytes);
  return 0;
}
const int32_t kReg0[] = {0}, kReg1[] = {1};
const int32_t kCudaSlots[] = {2, 2};
const flowc_plan_step kCudaSteps[] = {
    {"upload", upload, 1, nullptr, 0, kReg0, 1},
    {"copy", copy, 0, kReg0, 1, kReg1, 1},
    {"download", download, 1, kReg1, 1, nullptr, 0},
};
#endif

const int64_t kShape[] = {kLength};
const flowc_tensor_info kInputs[] = {{"x", "f32", 1, kShape, kBytes, nullptr}};
const flowc_tensor_info kOutputs[] = {{"y", "f32", 1, kShape, kBytes, nullptr}};
const int32_t kMesh[] = {2};
const uint64_t kMeshChecksums[] = {0, 0};

flowc_model_desc model;  // what flowc_model_describe gives: each check sets it up first

// A cpu model (device as given) of one step.
void describe_cpu(const char* device) {
  model = flowc_model_desc{};
  model.name = "device-test";
  model.plan = {kCpuSteps, 1, nullptr, 0, 1, 0, 1, nullptr, 0};
  model.inputs = kInputs;
  model.num_inputs = 1;
  model.outputs = kOutputs;
  model.num_outputs = 1;
  model.weights_bytes = kBytes;
  std::vector<float> w = weights();
  model.weights_checksum = flowc_weights_checksum(w.data(), kBytes);
  model.device = device;
}

#ifdef FLOWC_WITH_CUDA
void describe_cuda() {
  describe_cpu("cuda");
  model.plan = {kCudaSteps, 3, kCudaSlots, 2, 2, 512, 2, nullptr, 0};
}
#else
// Only the description matters: the load is refused before any step could run.
void describe_cuda() { describe_cpu("cuda"); }
#endif

}  // namespace

extern "C" const flowc_model_desc* flowc_model_describe(void) { return &model; }

namespace {

std::string write_weights() {
  char folder[] = "/tmp/flowc-device-XXXXXX";
  CHECK(mkdtemp(folder));
  std::vector<float> w = weights();
  std::ofstream(std::string(folder) + "/weights.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(w.data()), std::streamsize(kBytes));
  return folder;
}

// Loading fails with `code` and a message that holds `text`; returns the message.
std::string load_fails(const std::string& folder, const flowc_options* options, flowc_status_code code,
                       const std::string& text) {
  flowc_model* loaded = nullptr;
  flowc_status status = flowc_model_load(folder.c_str(), options, &loaded);
  CHECK(!loaded, "the load returned a model");
  return fails(status, code, text);
}

// Loads the model described, runs it on a few inputs and checks y against `expected`.
void load_and_run(const std::string& folder, const flowc_options* options, float (*expected)(int64_t, float)) {
  flowc_model* loaded = nullptr;
  flowc_status status = flowc_model_load(folder.c_str(), options, &loaded);
  CHECK(!status && loaded, "%s", flowc_status_get_message(status));
  std::vector<float> w = weights();
  for (int run = 0; run < 5; ++run) {
    std::vector<float> x(kLength), y(kLength, -1);
    for (int64_t i = 0; i < kLength; ++i) x[size_t(i)] = float(run * 100 + i);
    const void* inputs[] = {x.data()};
    void* outputs[] = {y.data()};
    status = flowc_model_run(loaded, inputs, outputs);
    CHECK(!status, "%s", flowc_status_get_message(status));
    for (int64_t i = 0; i < kLength; ++i) {
      CHECK(y[size_t(i)] == expected(i, x[size_t(i)]), "run %d: y[%lld] = %g", run, (long long)i, y[size_t(i)]);
    }
  }
  flowc_model_free(loaded);
}

float x_plus_w(int64_t i, float x) { return x + weights()[size_t(i)]; }
float x_then_w(int64_t i, float x) { return i < kLength / 2 ? x : weights()[size_t(i)]; }

void check_cpu_models(const std::string& folder) {
  for (const char* device : {static_cast<const char*>(nullptr), "cpu"}) {
    describe_cpu(device);
    load_and_run(folder, nullptr, x_plus_w);
  }
  describe_cpu("tpu");
  load_fails(folder, nullptr, FLOWC_STATUS_INVALID_ARGUMENT, "compiled for device 'tpu'; this runtime runs cpu and cuda");
}

void check_cpu_build(const std::string& folder) {
  check_cpu_models(folder);
  describe_cuda();
  std::string message = load_fails(folder, nullptr, FLOWC_STATUS_UNIMPLEMENTED, "this runtime was built without CUDA");
  std::printf("a cuda model in a cpu-only runtime: %s\n", message.c_str());
}

#ifdef FLOWC_WITH_CUDA
void check_cuda_build(const std::string& folder) {
  check_cpu_models(folder);
  describe_cpu(nullptr);
  model.mesh_rank = 1;
  model.mesh_shape = kMesh;
  model.rank_weights_checksums = kMeshChecksums;
  flowc_options nccl{};
  nccl.comm = FLOWC_COMM_NCCL;
  load_fails(folder, &nccl, FLOWC_STATUS_INVALID_ARGUMENT, "runs models compiled for --target cuda; this one was");

  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess && count > 0) {
    std::printf("a GPU is here: the no-GPU error is not checked (the gpu mode runs the model)\n");
    return;
  }
  for (int32_t mesh_rank : {0, 1}) {
    describe_cuda();
    model.mesh_rank = mesh_rank;
    model.mesh_shape = kMesh;
    model.rank_weights_checksums = kMeshChecksums;
    std::string message = load_fails(folder, nullptr, FLOWC_STATUS_UNAVAILABLE,
                                     "target cuda: no usable NVIDIA GPU (cudaGetDeviceCount: ");
    CHECK(message.find("compile it with --target cpu to run here") != std::string::npos, "%s", message.c_str());
    std::printf("a cuda model %s with no usable GPU: %s\n", mesh_rank ? "on a mesh of 2" : "on one device",
                message.c_str());
  }
#ifdef FLOWC_WITH_NCCL
  // Over NCCL as torchrun's rank 1: placed on a GPU before anything loads, which with none here is
  // the error it returns, once it has tried for FLOWC_NCCL_TIMEOUT to tell rank 0 (there is none).
  flowc_options nccl_cuda{};
  nccl_cuda.comm = FLOWC_COMM_NCCL;
  load_fails(folder, &nccl_cuda, FLOWC_STATUS_FAILED_PRECONDITION, "NCCL needs one process per GPU");
  setenv("RANK", "1", 1);
  setenv("WORLD_SIZE", "2", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "1", 1);  // rank 0 would listen on port 2, where nothing does
  setenv("FLOWC_NCCL_TIMEOUT", "1", 1);
  std::string message = load_fails(folder, &nccl_cuda, FLOWC_STATUS_UNAVAILABLE,
                                   "target cuda: no usable NVIDIA GPU (cudaGetDeviceCount: ");
  for (const char* name : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "FLOWC_NCCL_TIMEOUT"}) unsetenv(name);
  std::printf("a cuda model over NCCL with no usable GPU: %s\n", message.c_str());
#endif
}

void check_gpu(const std::string& folder) {
  describe_cuda();
  load_and_run(folder, nullptr, x_then_w);

  flowc_options beyond{};
  int count = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
  beyond.device = count;
  load_fails(folder, &beyond, FLOWC_STATUS_OUT_OF_RANGE, "there is no GPU");

  // Threads mean nothing to a GPU model: set_threads is accepted, and it reports one.
  flowc_model* loaded = nullptr;
  flowc_status status = flowc_model_load(folder.c_str(), nullptr, &loaded);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(!flowc_model_set_threads(loaded, 8));
  int32_t threads = 0;
  CHECK(!flowc_model_query_threads(loaded, &threads) && threads == 1, "%d threads", threads);
  flowc_model_free(loaded);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  std::string folder = write_weights();
  int result = 0;
  if (mode == "cpu-build") {
    check_cpu_build(folder);
#ifdef FLOWC_WITH_CUDA
  } else if (mode == "cuda-build") {
    check_cuda_build(folder);
  } else if (mode == "gpu") {
    int count = 0;
    cudaError_t error = cudaGetDeviceCount(&count);
    if (error == cudaSuccess && count > 0) {
      check_gpu(folder);
    } else {
      std::printf("skipped: no usable GPU here (cudaGetDeviceCount: %s)\n", cudaGetErrorString(error));
      result = kSkipped;
    }
#endif
  } else {
    CHECK(false, "unknown mode '%s' for this build", mode.c_str());
  }
  std::remove((folder + "/weights.bin").c_str());
  rmdir(folder.c_str());
  if (!result) std::printf("%s: ok\n", mode.c_str());
  return result;
}
