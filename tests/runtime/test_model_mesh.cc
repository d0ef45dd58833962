// The model API on a device mesh: a hand-written model (what a generated model.cpp would be)
// for a 2x2 mesh, with its own weights per rank and collectives on an ordered comm stream,
// loaded through flowc_model_load and run as a user would.
//
//   test_model_mesh local                 every rank in this process; concurrent callers; errors
//   mpirun -np 4 test_model_mesh mpi      one rank per process, picked by FLOWC_COMM_AUTO
//   mpirun -np 2 test_model_mesh mpi-size 2   the mesh's 4 ranks against 2 processes (or, with
//                                          FLOWC_COMM=mpi and no mpirun, against MPI's singleton)
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "flowc/comm.h"
#include "flowc/model.h"
#include "runtime/core/step.h"

namespace {

constexpr int64_t kLength = 17;
constexpr size_t kBuffer = 192;  // kLength doubles rounded up to 64 bytes
constexpr int kRanks = 4;

double* buffer(flowc_step_ctx* ctx, int i) { return reinterpret_cast<double*>(ctx->arena + i * kBuffer); }
const double* input(flowc_step_ctx* ctx) { return static_cast<const double*>(ctx->inputs[0]); }
const double* weights(flowc_step_ctx* ctx) { return static_cast<const double*>(ctx->weights); }

double weight(int32_t rank, int64_t i) { return (rank + 1) * (1 + i % 3); }

// a = x * w (this rank's weights)
int scale(flowc_step_ctx* ctx) {
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 0)[i] = input(ctx)[i] * weights(ctx)[i];
  return 0;
}
// b = the sum of a over mesh axis 0
int reduce_rows(flowc_step_ctx* ctx) {
  return flowc_comm_all_reduce(ctx, 0, FLOWC_COMM_F64, buffer(ctx, 0), buffer(ctx, 1), kLength);
}
// d = b + 1; x[0] < 0 fails the request, on every rank alike
int add_one(flowc_step_ctx* ctx) {
  if (input(ctx)[0] < 0) {
    ctx->error = "negative input";
    return FLOWC_STATUS_OUT_OF_RANGE;
  }
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 2)[i] = buffer(ctx, 1)[i] + 1;
  return 0;
}
// e = the sum of d over mesh axis 1
int reduce_columns(flowc_step_ctx* ctx) {
  return flowc_comm_all_reduce(ctx, 1, FLOWC_COMM_F64, buffer(ctx, 2), buffer(ctx, 3), kLength);
}
// y = e + 2x, the same on every rank
int output(flowc_step_ctx* ctx) {
  auto* y = static_cast<double*>(ctx->outputs[0]);
  for (int64_t i = 0; i < kLength; ++i) y[i] = buffer(ctx, 3)[i] + 2 * input(ctx)[i];
  return 0;
}
// On a 2x2 mesh: sum over all ranks of x * w, plus the two ones, plus 2x.
double expected(double x, int64_t i) {
  double w = 0;
  for (int32_t r = 0; r < kRanks; ++r) w += weight(r, i);
  return x * w + 2 + 2 * x;
}

const int32_t r0[] = {0}, r1[] = {1}, r2[] = {2}, r3[] = {3};
const int32_t kSlots[] = {2, 2, 2, 2};
const flowc_plan_step kSteps[] = {
    {"scale", scale, 0, nullptr, 0, r0, 1},     {"reduce_rows", reduce_rows, 1, r0, 1, r1, 1},
    {"add_one", add_one, 0, r1, 1, r2, 1},      {"reduce_columns", reduce_columns, 1, r2, 1, r3, 1},
    {"output", output, 0, r3, 1, nullptr, 0},
};
const int64_t kShape[] = {kLength};
const flowc_tensor_info kInputs[] = {{"x", "f64", 1, kShape, kLength * 8, nullptr}};
const flowc_tensor_info kOutputs[] = {{"y", "f64", 1, kShape, kLength * 8, nullptr}};
const int32_t kMesh[] = {2, 2};
uint64_t checksums[kRanks];  // of the weights main writes

const flowc_model_desc kModel = {
    "mesh-test", {kSteps, 5, kSlots, 4, 2, 4 * kBuffer, 2, nullptr, 1}, kInputs, 1, kOutputs, 1,
    kLength * 8, 0, 0, 0, 2, kMesh, checksums,
};

}  // namespace

extern "C" const flowc_model_desc* flowc_model_describe(void) { return &kModel; }

namespace {

// A fresh folder with every rank's weights.r<rank>.bin.
std::string write_weights() {
  char folder[] = "/tmp/flowc-mesh-XXXXXX";
  CHECK(mkdtemp(folder));
  for (int32_t r = 0; r < kRanks; ++r) {
    std::vector<double> w(kLength);
    for (int64_t i = 0; i < kLength; ++i) w[size_t(i)] = weight(r, i);
    checksums[r] = flowc_weights_checksum(w.data(), sizeof(double) * w.size());
    std::ofstream(std::string(folder) + "/weights.r" + std::to_string(r) + ".bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(w.data()), std::streamsize(sizeof(double) * w.size()));
  }
  return folder;
}

void remove_folder(const std::string& folder) {
  for (int32_t r = 0; r < kRanks; ++r) std::remove((folder + "/weights.r" + std::to_string(r) + ".bin").c_str());
  rmdir(folder.c_str());
}

flowc_model* load(const std::string& folder, int32_t comm) {
  flowc_options options{};
  options.comm = comm;
  flowc_model* model = nullptr;
  flowc_status status = flowc_model_load(folder.c_str(), &options, &model);
  CHECK(!status && model, "%s", flowc_status_get_message(status));
  return model;
}

void check_run(flowc_model* model, double base) {
  std::vector<double> x(kLength), y(kLength, -1);
  for (int64_t i = 0; i < kLength; ++i) x[size_t(i)] = base + double(i);
  const void* inputs[] = {x.data()};
  void* outputs[] = {y.data()};
  flowc_status status = flowc_model_run(model, inputs, outputs);
  CHECK(!status, "%s", flowc_status_get_message(status));
  for (int64_t i = 0; i < kLength; ++i) {
    CHECK(y[size_t(i)] == expected(x[size_t(i)], i), "base %g element %lld: %g, want %g", base, (long long)i,
          y[size_t(i)], expected(x[size_t(i)], i));
  }
}

void expect_error(flowc_status status, flowc_status_code code, const char* part) {
  CHECK(flowc_status_get_code(status) == code, "got %s: %s", flowc_status_code_name(flowc_status_get_code(status)),
        flowc_status_get_message(status));
  CHECK(std::strstr(flowc_status_get_message(status), part), "'%s' does not say '%s'",
        flowc_status_get_message(status), part);
  flowc_status_free(status);
}

void check_local() {
  std::string folder = write_weights();
  unsetenv("FLOWC_COMM");
  flowc_model* model = load(folder, FLOWC_COMM_AUTO);  // no MPI launcher: local
  int32_t ranks = 0, rank = 0, threads = 0;
  CHECK(!flowc_model_query_ranks(model, &ranks, &rank) && ranks == kRanks && rank == -1);
  CHECK(!flowc_model_query_threads(model, &threads) && threads >= kRanks);

  // Callers at once; each answer is its own, and a failing request fails only its caller.
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([model, c] {
      for (int k = 0; k < 50; ++k) {
        if (k % 17 == 5) {
          std::vector<double> x(kLength, -1.0), y(kLength);
          const void* inputs[] = {x.data()};
          void* outputs[] = {y.data()};
          expect_error(flowc_model_run(model, inputs, outputs), FLOWC_STATUS_OUT_OF_RANGE,
                       "step 'add_one' (#2) failed with code 3: negative input");
        } else {
          check_run(model, c * 1000 + k * 10);
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(!flowc_model_set_threads(model, 8));
  CHECK(!flowc_model_query_threads(model, &threads) && threads == 8, "%d", threads);
  check_run(model, 7);
  flowc_model_free(model);
  std::printf("local: 4 ranks in one process, 4 callers x 50 runs right; set_threads(8) gives 2 a rank\n");

  // How the communicator is chosen, and what a wrong choice says.
  flowc_options options{};
  options.comm = 7;
  expect_error(flowc_model_load(folder.c_str(), &options, &model), FLOWC_STATUS_INVALID_ARGUMENT,
               "options.comm is 7; use FLOWC_COMM_AUTO (0), FLOWC_COMM_LOCAL (1), FLOWC_COMM_MPI (2) or "
               "FLOWC_COMM_NCCL (3)");
  setenv("FLOWC_COMM", "gloo", 1);
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_INVALID_ARGUMENT,
               "FLOWC_COMM is 'gloo'; use local, mpi or nccl");
  setenv("FLOWC_COMM", "nccl", 1);
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_INVALID_ARGUMENT,
               "the NCCL communicator runs models compiled for --target cuda; this one was compiled for cpu");
  model = load(folder, FLOWC_COMM_LOCAL);  // an explicit choice wins over the environment
  check_run(model, 3);
  flowc_model_free(model);
  setenv("FLOWC_COMM", "local", 1);
  model = load(folder, FLOWC_COMM_AUTO);
  CHECK(!flowc_model_query_ranks(model, &ranks, &rank) && rank == -1);
  flowc_model_free(model);
  unsetenv("FLOWC_COMM");
  // torchrun's variables, but nothing that carries its processes for a cpu model: an error, not
  // every rank in each of its processes.
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "4", 1);
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_FAILED_PRECONDITION,
               "RANK and WORLD_SIZE=4 say a launcher started this process as one of several, but a model compiled "
               "for cpu runs one process per rank under MPI only");
  model = load(folder, FLOWC_COMM_LOCAL);  // unless the caller asks for every rank here
  flowc_model_free(model);
  unsetenv("RANK");
  unsetenv("WORLD_SIZE");

  // Each rank's weights are checked like weights.bin.
  std::string r3 = folder + "/weights.r3.bin";
  std::ofstream(r3, std::ios::binary | std::ios::app).write("x", 1);
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_FAILED_PRECONDITION,
               "weights.r3.bin has 137 bytes, the model expects 136");
  std::remove(r3.c_str());
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_NOT_FOUND, "weights.r3.bin");
  checksums[2] ^= 1;
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_FAILED_PRECONDITION,
               "weights.r2.bin does not match the model");
  checksums[2] ^= 1;
  remove_folder(folder);
  std::printf("local: comm choice, FLOWC_COMM and each rank's weights file checked, with errors naming them\n");
}

void check_mpi() {
  std::string folder = write_weights();
  flowc_model* model = load(folder, FLOWC_COMM_AUTO);  // under mpirun: MPI
  int32_t ranks = 0, rank = -1;
  CHECK(!flowc_model_query_ranks(model, &ranks, &rank) && ranks == kRanks && rank >= 0 && rank < kRanks);
  for (int k = 0; k < 40; ++k) check_run(model, k * 10);
  CHECK(!flowc_model_set_threads(model, 1));
  check_run(model, 1);
  flowc_model_free(model);

  // One process without its weights: it says why, the others say which rank, and none hangs.
  std::remove((folder + "/weights.r2.bin").c_str());
  flowc_status status = flowc_model_load(folder.c_str(), nullptr, &model);
  if (rank == 2) {
    expect_error(status, FLOWC_STATUS_NOT_FOUND, "weights.r2.bin");
  } else {
    expect_error(status, FLOWC_STATUS_UNAVAILABLE, "MPI rank 2 could not load the model");
  }
  remove_folder(folder);
  if (rank == 0) std::printf("mpi: 4 processes, one rank each, 40 runs right; a missing rank's weights fail all\n");
}

void check_mpi_size(const std::string& processes) {
  std::string folder = write_weights();
  flowc_model* model = nullptr;
  std::string message = "the model's mesh 2x2 has 4 ranks, but MPI_COMM_WORLD has " + processes +
                        (processes == "1" ? " process" : " processes") + ": launch it with mpirun -np 4";
  expect_error(flowc_model_load(folder.c_str(), nullptr, &model), FLOWC_STATUS_FAILED_PRECONDITION, message.c_str());
  CHECK(!model);
  remove_folder(folder);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "local";
  if (mode == "local") {
    check_local();
  } else if (mode == "mpi") {
    check_mpi();
  } else if (mode == "mpi-size" && argc > 2) {
    check_mpi_size(argv[2]);
  } else {
    std::fprintf(stderr, "usage: test_model_mesh local | mpi | mpi-size PROCESSES\n");
    return 2;
  }
  std::printf("model mesh %s: ok\n", mode.c_str());
  return 0;
}
