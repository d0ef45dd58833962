// The NCCL communicator (runtime/comm/nccl). Built only with FLOWC_CUDA=ON; the launch variables
// and the ranks' meeting over TCP have their own test (test_launch.cc).
//
//   test_nccl_communicator env          what create says where it cannot start (a launch that does
//                                       not match the mesh, no address, a bad FLOWC_NCCL_TIMEOUT, no
//                                       GPU), each wait for a missing rank ending on time, and two
//                                       processes started as torchrun would: a rank that cannot be
//                                       placed fails both; with no GPU both meet, then fail at it
//   test_nccl_communicator without-mpi  linked with the MPI communicator built without MPI: under
//                                       an MPI launcher, the way out through NCCL_COMM_ID
//   mpirun -np N test_nccl_communicator mpi
//                                       the bootstrap through MPI: the placing agreement, rank 0's
//                                       id to all; collectives where each rank has a GPU
//   test_nccl_communicator gpu          one rank on GPU 0 (its collectives are copies, the agreement
//                                       after loading); with two GPUs or more, also one process per
//                                       GPU (NCCL refuses two ranks on one GPU: "Duplicate GPU
//                                       detected"), and a rank that fails to load or never says;
//                                       exits 77 without a GPU
//   test_nccl_communicator gpu-rank R N CASE    one of those processes, started by `gpu`
//   test_nccl_communicator env-rank R CASE      one of `env`'s two processes
#include <arpa/inet.h>
#include <cuda_runtime.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "free_port.h"
#include "status_check.h"
#include "runtime/comm/mpi/mpi_communicator.h"
#include "runtime/comm/nccl/nccl_communicator.h"

extern char** environ;

namespace {

constexpr int kSkipped = 77;  // ctest's SKIP_RETURN_CODE
#ifdef FLOWC_WITH_NCCL
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

// The variables of every launcher and of the bootstrap, unset so that a test sets its own.
void clear_launch_env() {
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                           "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                           "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "NCCL_COMM_ID",
                           "MASTER_ADDR", "MASTER_PORT", "FLOWC_NCCL_TIMEOUT"}) {
    unsetenv(name);
  }
}

void setenv_int(const char* name, int value) { setenv(name, std::to_string(value).c_str(), 1); }

struct Placed {
  int32_t calls = 0, rank = -1, local_rank = -1;
};

// create_nccl_communicator on a mesh of `shape`, from this process's environment, with a place
// that records its call and fails with `error`, or else gives GPU `local_rank`.
flowc_status create(std::vector<int32_t> shape, Placed* placed, const char* error,
                    std::unique_ptr<flowc::Communicator>* out_comm) {
  flowc::Mesh mesh;
  CHECK(!flowc::Mesh::create(shape.data(), int32_t(shape.size()), &mesh));
  return flowc::create_nccl_communicator(
      mesh,
      [=](int32_t rank, int32_t local_rank, int32_t* out_ordinal) -> flowc_status {
        *placed = {placed->calls + 1, rank, local_rank};
        if (error) return flowc_status_make(FLOWC_STATUS_NOT_FOUND, "%s", error);
        *out_ordinal = local_rank;
        return nullptr;
      },
      out_comm);
}

// create fails with `code` and `text` on rank `rank`, having placed it `place_calls` times (0 or
// 1); returns the message.
std::string create_fails(std::vector<int32_t> shape, const char* place_error, flowc_status_code code,
                         const std::string& text, int32_t place_calls, int32_t rank = 0) {
  Placed placed;
  std::unique_ptr<flowc::Communicator> comm;
  std::string message = fails(create(shape, &placed, place_error, &comm), code, text);
  CHECK(!comm);
  CHECK(placed.calls == place_calls, "place ran %d times, not %d: %s", placed.calls, place_calls, message.c_str());
  CHECK(!placed.calls || (placed.rank == rank && placed.local_rank == rank), "placed rank %d (local %d)", placed.rank,
        placed.local_rank);
  return message;
}

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_create() {
  clear_launch_env();
  if (!kHaveNccl) {
    setenv("RANK", "0", 1);
    setenv("WORLD_SIZE", "1", 1);
    create_fails({1}, nullptr, FLOWC_STATUS_UNAVAILABLE,
                 "the NCCL communicator is missing: flowc's runtime was built without NCCL; pip install", 0);
    std::printf("create: this runtime has no NCCL, as create says\n");
    return;
  }
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "NCCL needs one process per GPU", 0);
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "2", 1);
  create_fails({2, 2}, nullptr, FLOWC_STATUS_INVALID_ARGUMENT,
               "rank 0: the model was compiled for a mesh of 2x2 = 4 ranks, but the launcher (torchrun) started 2 "
               "processes: start 4, one per GPU",
               0);
  create_fails({3}, nullptr, FLOWC_STATUS_INVALID_ARGUMENT,
               "a mesh of 3 ranks, but the launcher (torchrun) started 2 processes", 0);
  setenv("RANK", "1", 1);
  create_fails({3}, nullptr, FLOWC_STATUS_INVALID_ARGUMENT,
               "rank 1: the model was compiled for a mesh of 3 ranks, but the launcher (torchrun) started 2 processes",
               0);
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  // A bootstrap with no address, or a wrong one, fails before the rank is placed.
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_ADDR is not set", 0);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "65535", 1);
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_PORT is '65535'", 0);
  int port = free_port();
  setenv_int("MASTER_PORT", port - 1);
  setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(port)).c_str(), 1);
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "is MASTER_PORT + 1, where rank 0 hands out NCCL's id",
               0);
  unsetenv("NCCL_COMM_ID");
  setenv("FLOWC_NCCL_TIMEOUT", "0", 1);
  create_fails({1}, nullptr, FLOWC_STATUS_INVALID_ARGUMENT,
               "FLOWC_NCCL_TIMEOUT is '0', not a whole number of seconds of at least 1", 0);
  unsetenv("FLOWC_NCCL_TIMEOUT");
  // place's own error comes back as it is.
  create_fails({1}, "rank 0 has no weights here", FLOWC_STATUS_NOT_FOUND, "rank 0 has no weights here", 1);
  if (!have_gpu()) {
    std::string message = create_fails({1}, nullptr, FLOWC_STATUS_UNAVAILABLE, "rank 0: cudaSetDevice on GPU 0", 1);
    std::printf("no GPU, as create says: %s\n", message.c_str());
    // NCCL_COMM_ID alone: no exchange, every rank derives the id, and goes as far.
    unsetenv("MASTER_ADDR");
    unsetenv("MASTER_PORT");
    setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(free_port())).c_str(), 1);
    create_fails({1}, nullptr, FLOWC_STATUS_UNAVAILABLE, "rank 0: cudaSetDevice on GPU 0", 1);
    unsetenv("NCCL_COMM_ID");
  }

  // Alone of two ranks, each gives up after FLOWC_NCCL_TIMEOUT, saying on whom it waited.
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv_int("MASTER_PORT", port - 1);
  setenv("WORLD_SIZE", "2", 1);
  setenv("FLOWC_NCCL_TIMEOUT", "1", 1);
  std::string address = "127.0.0.1:" + std::to_string(port);
  auto start = std::chrono::steady_clock::now();
  create_fails({2}, nullptr, FLOWC_STATUS_UNAVAILABLE,
               "rank 0: rank 1 did not reach " + address + " within 1 s (FLOWC_NCCL_TIMEOUT)", 1);
  setenv("RANK", "1", 1);
  create_fails({2}, nullptr, FLOWC_STATUS_UNAVAILABLE,
               "rank 1 could not reach rank 0 at " + address + " within 1 s (FLOWC_NCCL_TIMEOUT)", 1, 1);
  // A rank that cannot be placed still goes to tell rank 0; its own error is what it returns.
  create_fails({2}, "rank 1 has no GPU here", FLOWC_STATUS_NOT_FOUND, "rank 1 has no GPU here", 1, 1);
  double took = seconds_since(start);
  CHECK(took < 10, "three waits of 1 s took %g s", took);
  // The environment is read, never written.
  CHECK(!std::getenv("NCCL_COMM_ID"), "NCCL_COMM_ID was set to %s", std::getenv("NCCL_COMM_ID"));
  std::printf("create: ok\n");
}

// Two processes of this program started as torchrun would start them, each in `env-rank R CASE`.
void check_pair(const char* which) {
  clear_launch_env();
  setenv("WORLD_SIZE", "2", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv_int("MASTER_PORT", free_port() - 1);
  setenv("FLOWC_NCCL_TIMEOUT", "30", 1);  // what the test waits at most, were the meeting to fail
  std::vector<pid_t> children;
  for (int32_t r = 0; r < 2; ++r) {
    std::string rank = std::to_string(r);
    setenv("RANK", rank.c_str(), 1);
    char* argv[] = {const_cast<char*>("test_nccl_communicator"), const_cast<char*>("env-rank"), rank.data(),
                    const_cast<char*>(which), nullptr};
    pid_t pid = 0;
    int error = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ);
    CHECK(error == 0, "posix_spawn: %s", std::strerror(error));
    children.push_back(pid);
  }
  for (int32_t r = 0; r < 2; ++r) {
    int status = 0;
    CHECK(waitpid(children[size_t(r)], &status, 0) == children[size_t(r)]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: rank %d failed (status %d)", which, r, status);
  }
  clear_launch_env();
}

// One of check_pair's processes: "unplaced", rank 1 cannot be placed, and both fail at once;
// "no-gpu", both are placed, meet, and fail at their GPU (there is none).
int run_pair_rank(int32_t rank, const std::string& which) {
  alarm(60);
  Placed placed;
  std::unique_ptr<flowc::Communicator> comm;
  auto start = std::chrono::steady_clock::now();
  bool unplaced = which == "unplaced";
  flowc_status status = create({2}, &placed, unplaced && rank == 1 ? "rank 1 has no GPU here" : nullptr, &comm);
  if (unplaced && rank == 1) {
    fails(status, FLOWC_STATUS_NOT_FOUND, "rank 1 has no GPU here");
  } else if (unplaced) {
    fails(status, FLOWC_STATUS_UNAVAILABLE,
          "rank 0: rank 1 could not get ready for NCCL (its own error says why), so no rank starts it");
  } else {
    fails(status, FLOWC_STATUS_UNAVAILABLE, "rank " + std::to_string(rank) + ": cudaSetDevice on GPU");
  }
  CHECK(!comm && placed.calls == 1 && placed.rank == rank);
  double took = seconds_since(start);
  CHECK(took < 10, "rank %d took %g s", rank, took);
  return 0;
}

void check_pairs() {
  if (!kHaveNccl) return;
  check_pair("unplaced");
  if (!have_gpu()) check_pair("no-gpu");
  std::printf("two processes: ok (a rank that cannot be placed fails both at once%s)\n",
              have_gpu() ? "" : "; with no GPU both meet, then fail at it");
}

// Under an MPI launcher with no MPI in the runtime: an error that says how to do without, and
// with MASTER_ADDR and MASTER_PORT, or NCCL_COMM_ID, set, the bootstrap from them (here as far as
// placing the rank).
void check_without_mpi() {
  clear_launch_env();
  setenv("OMPI_COMM_WORLD_RANK", "0", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
  CHECK(flowc::launched_by_mpi());
  if (!kHaveNccl) {
    std::printf("without-mpi: this runtime has no NCCL; nothing to fall back from\n");
    return;
  }
  create_fails({1}, nullptr, FLOWC_STATUS_UNAVAILABLE,
               "flowc's runtime was built without MPI: install libopenmpi-dev (and openmpi-bin for mpirun) and "
               "recompile; or set MASTER_ADDR and MASTER_PORT (rank 0's host, and a port whose next one is free "
               "too) or NCCL_COMM_ID=host:port on every rank, for NCCL to bootstrap without MPI",
               0);
  setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(free_port())).c_str(), 1);
  create_fails({1}, "placed from OMPI_COMM_WORLD_RANK", FLOWC_STATUS_NOT_FOUND, "placed from OMPI_COMM_WORLD_RANK",
               1);
  unsetenv("NCCL_COMM_ID");
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv_int("MASTER_PORT", free_port() - 1);
  create_fails({1}, "placed again", FLOWC_STATUS_NOT_FOUND, "placed again", 1);
  std::printf("without-mpi: ok\n");
}

void check_cuda(cudaError_t error, const char* what) {
  CHECK(error == cudaSuccess, "%s: %s", what, cudaGetErrorString(error));
}

// `send` on the GPU through `call(send, recv)` on `stream`; what lands in a receive buffer of
// `recv_count` elements, filled with 0xff bytes first so that a collective that wrote nothing shows.
template <typename T, typename Call>
std::vector<T> on_gpu(const std::vector<T>& send, size_t recv_count, cudaStream_t stream, Call call) {
  void *device_send = nullptr, *device_recv = nullptr;
  check_cuda(cudaMalloc(&device_send, send.size() * sizeof(T)), "cudaMalloc");
  check_cuda(cudaMalloc(&device_recv, recv_count * sizeof(T)), "cudaMalloc");
  check_cuda(cudaMemcpy(device_send, send.data(), send.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
  check_cuda(cudaMemset(device_recv, 0xff, recv_count * sizeof(T)), "cudaMemset");
  flowc_status status = call(device_send, device_recv);
  CHECK(!status, "%s", flowc_status_get_message(status));
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  std::vector<T> recv(recv_count);
  check_cuda(cudaMemcpy(recv.data(), device_recv, recv_count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
  check_cuda(cudaFree(device_send), "cudaFree");
  check_cuda(cudaFree(device_recv), "cudaFree");
  return recv;
}

// What rank `rank` sends: element k of block j (every rank knows every other's).
template <typename T>
T sent(int32_t rank, int32_t block, int32_t k) {
  return T(rank * 1000 + block * 100 + k);
}

// The four collectives on every axis of `comm`'s mesh, through the public calls, on GPU memory.
void check_collectives(flowc::Communicator& comm, cudaStream_t stream) {
  constexpr int32_t kCount = 64;  // elements (bytes for gathers) per block
  const flowc::Mesh& mesh = comm.mesh();
  for (int32_t axis = 0; axis < mesh.num_axes(); ++axis) {
    std::vector<int32_t> group = mesh.group(comm.rank(), axis);
    auto members = int32_t(group.size());
    int32_t me = comm.coords()[axis];

    std::vector<float> block(kCount), sum(kCount, 0.0f);
    for (int32_t k = 0; k < kCount; ++k) {
      block[size_t(k)] = sent<float>(comm.rank(), 0, k);
      for (int32_t member : group) sum[size_t(k)] += sent<float>(member, 0, k);
    }
    CHECK(on_gpu(block, kCount, stream, [&](void* send, void* recv) {
            return comm.all_reduce(axis, FLOWC_COMM_F32, send, recv, kCount, stream);
          }) == sum, "all_reduce on axis %d", axis);

    std::vector<int64_t> blocks(size_t(members * kCount)), scattered(kCount, 0);
    for (int32_t j = 0; j < members; ++j) {
      for (int32_t k = 0; k < kCount; ++k) blocks[size_t(j * kCount + k)] = sent<int64_t>(comm.rank(), j, k);
    }
    for (int32_t member : group) {
      for (int32_t k = 0; k < kCount; ++k) scattered[size_t(k)] += sent<int64_t>(member, me, k);
    }
    CHECK(on_gpu(blocks, kCount, stream, [&](void* send, void* recv) {
            return comm.reduce_scatter(axis, FLOWC_COMM_I64, send, recv, kCount, stream);
          }) == scattered, "reduce_scatter on axis %d", axis);

    std::vector<uint8_t> mine(kCount), gathered, all(size_t(members * kCount)), exchanged;
    for (int32_t k = 0; k < kCount; ++k) mine[size_t(k)] = sent<uint8_t>(comm.rank(), 0, k);
    for (int32_t j = 0; j < members; ++j) {
      for (int32_t k = 0; k < kCount; ++k) {
        all[size_t(j * kCount + k)] = sent<uint8_t>(comm.rank(), j, k);
        gathered.push_back(sent<uint8_t>(group[size_t(j)], 0, k));
        exchanged.push_back(sent<uint8_t>(group[size_t(j)], me, k));
      }
    }
    CHECK(on_gpu(mine, gathered.size(), stream, [&](void* send, void* recv) {
            return comm.all_gather(axis, send, recv, kCount, stream);
          }) == gathered, "all_gather on axis %d", axis);
    CHECK(on_gpu(all, all.size(), stream, [&](void* send, void* recv) {
            return comm.all_to_all(axis, send, recv, kCount, stream);
          }) == exchanged, "all_to_all on axis %d", axis);
  }
}

// One rank on GPU 0, bootstrapped from MASTER_ADDR and MASTER_PORT: its collectives are copies
// on the stream; the agreement after loading passes, or fails with this rank's own error and
// leaves the communicator aborted.
void check_one_rank() {
  clear_launch_env();
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv_int("MASTER_PORT", free_port() - 1);
  Placed placed;
  std::unique_ptr<flowc::Communicator> comm;
  flowc_status status = create({1}, &placed, nullptr, &comm);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(std::strcmp(comm->name(), "nccl") == 0 && comm->rank() == 0 && comm->ranks_on_host() == 1);
  status = flowc::agree_on_load(*comm, nullptr);
  CHECK(!status, "%s", flowc_status_get_message(status));
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  check_collectives(*comm, stream);
  std::vector<float> data(4);
  on_gpu(data, 4, stream, [&](void* send, void* recv) {
    fails(comm->all_reduce(0, FLOWC_COMM_F32, send, recv, 4, nullptr), FLOWC_STATUS_FAILED_PRECONDITION,
          "rank 0: the nccl communicator runs collectives on GPU memory; this step has no CUDA stream");
    return flowc_status(nullptr);
  });
  comm.reset();

  status = create({1}, &placed, nullptr, &comm);
  CHECK(!status, "%s", flowc_status_get_message(status));
  fails(flowc::agree_on_load(*comm, flowc_status_make(FLOWC_STATUS_NOT_FOUND, "no weights.r0.bin")),
        FLOWC_STATUS_NOT_FOUND, "no weights.r0.bin");
  on_gpu(data, 4, stream, [&](void* send, void* recv) {
    fails(comm->all_reduce(0, FLOWC_COMM_F32, send, recv, 4, stream), FLOWC_STATUS_FAILED_PRECONDITION,
          "rank 0: NCCL was aborted on this rank after an earlier failure");
    return flowc_status(nullptr);
  });
  comm.reset();  // aborted: nothing to wait for
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  CHECK(!std::getenv("NCCL_COMM_ID"), "NCCL_COMM_ID was set to %s", std::getenv("NCCL_COMM_ID"));
  std::printf("one rank: ok\n");
}

// `ranks` processes of this program, one per GPU, set up as torchrun would, each in
// `gpu-rank R N CASE`: "exchange" (MASTER_ADDR and MASTER_PORT) and "comm-id" (NCCL_COMM_ID
// alone) run the collectives on a mesh of 2x2 (four) or 1-D; "fail-load", the last rank fails to
// load; "silent", the last rank says nothing until after the others' FLOWC_NCCL_TIMEOUT.
void check_ranks(int32_t ranks, const char* which) {
  clear_launch_env();
  if (std::strcmp(which, "comm-id") == 0) {
    setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(free_port())).c_str(), 1);
  } else {
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv_int("MASTER_PORT", free_port() - 1);
  }
  if (std::strcmp(which, "silent") == 0) setenv("FLOWC_NCCL_TIMEOUT", "3", 1);
  std::vector<pid_t> children;
  for (int32_t r = 0; r < ranks; ++r) {
    std::string rank = std::to_string(r), size = std::to_string(ranks);
    char* argv[] = {const_cast<char*>("test_nccl_communicator"), const_cast<char*>("gpu-rank"), rank.data(),
                    size.data(), const_cast<char*>(which), nullptr};
    pid_t pid = 0;
    int error = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ);
    CHECK(error == 0, "posix_spawn: %s", std::strerror(error));
    children.push_back(pid);
  }
  for (int32_t r = 0; r < ranks; ++r) {
    int status = 0;
    CHECK(waitpid(children[size_t(r)], &status, 0) == children[size_t(r)]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: rank %d of %d failed (status %d)", which, r, ranks,
          status);
  }
  clear_launch_env();
  std::printf("%d ranks, one per GPU, %s: ok\n", ranks, which);
}

int run_rank(int32_t rank, int32_t ranks, const std::string& which) {
  alarm(120);  // a rank that waits for ever is a failure: end it
  setenv_int("RANK", rank);
  setenv_int("WORLD_SIZE", ranks);
  setenv_int("LOCAL_RANK", rank);
  setenv_int("LOCAL_WORLD_SIZE", ranks);
  Placed placed;
  std::unique_ptr<flowc::Communicator> comm;
  flowc_status status = create(ranks == 4 ? std::vector<int32_t>{2, 2} : std::vector<int32_t>{ranks}, &placed,
                               nullptr, &comm);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(comm->rank() == rank && comm->ranks_on_host() == ranks);
  int32_t last = ranks - 1;
  if (which == "fail-load") {
    flowc_status loaded =
        rank == last ? flowc_status_make(FLOWC_STATUS_NOT_FOUND, "rank %d has no weights", rank) : nullptr;
    status = flowc::agree_on_load(*comm, loaded);
    if (rank == last) {
      fails(status, FLOWC_STATUS_NOT_FOUND, "has no weights");
    } else {
      fails(status, FLOWC_STATUS_UNAVAILABLE,
            "rank " + std::to_string(rank) + ": rank " + std::to_string(last) + " could not load the model");
    }
    return 0;
  }
  if (which == "silent") {
    auto start = std::chrono::steady_clock::now();
    if (rank == last) std::this_thread::sleep_for(std::chrono::seconds(6));
    status = flowc::agree_on_load(*comm, nullptr);
    CHECK(status, "rank %d: the agreement passed without the silent rank", rank);
    if (rank != last) {
      fails(status, FLOWC_STATUS_UNAVAILABLE, "not done after 3 s (FLOWC_NCCL_TIMEOUT)");
      double took = seconds_since(start);
      CHECK(took >= 2.5 && took < 20, "rank %d gave up after %g s", rank, took);
    }
    flowc_status_free(status);
    return 0;
  }
  status = flowc::agree_on_load(*comm, nullptr);
  CHECK(!status, "%s", flowc_status_get_message(status));
  check_cuda(cudaSetDevice(rank), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  check_collectives(*comm, stream);
  comm.reset();
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  return 0;
}

// Under mpirun -np N: a rank that cannot be placed fails every rank, and rank 0's id reaches every
// rank through MPI; then the communicator itself (the agreement, the collectives) where each rank
// on this host has a GPU of its own, or, with no GPU, the error of every rank (all stop at their
// GPU, so none waits in NCCL).
int check_mpi() {
  CHECK(flowc::launched_by_mpi(), "the mpi mode runs under mpirun");
  if (!kHaveNccl) {
    std::printf("mpi: this runtime has no NCCL; nothing to bootstrap\n");
    return 0;
  }
  unsetenv("NCCL_COMM_ID");
  flowc::LaunchEnv env;
  flowc_status status = flowc::read_launch_env([](const char* name) -> const char* { return std::getenv(name); }, &env);
  CHECK(!status, "%s", flowc_status_get_message(status));
  int32_t last = env.world_size - 1;
  Placed placed;
  std::unique_ptr<flowc::Communicator> comm;
  status = create({env.world_size}, &placed, env.rank == last ? "the last rank has no GPU" : nullptr, &comm);
  if (env.rank == last) {
    fails(status, FLOWC_STATUS_NOT_FOUND, "the last rank has no GPU");
  } else {
    fails(status, FLOWC_STATUS_UNAVAILABLE, "MPI rank " + std::to_string(last) + " could not load the model");
  }
  CHECK(placed.calls == 1 && placed.rank == env.rank && placed.local_rank == env.local_rank);

  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::string message = fails(create({env.world_size}, &placed, nullptr, &comm), FLOWC_STATUS_UNAVAILABLE,
                                "rank " + std::to_string(env.rank) + ": cudaSetDevice on GPU ");
    std::printf("mpi rank %d: no GPU, as create says after the MPI bootstrap: %s\n", env.rank, message.c_str());
  } else if (count >= env.local_size) {
    status = create({env.world_size}, &placed, nullptr, &comm);
    CHECK(!status, "%s", flowc_status_get_message(status));
    status = flowc::agree_on_load(*comm, nullptr);
    CHECK(!status, "%s", flowc_status_get_message(status));
    check_cuda(cudaSetDevice(env.local_rank), "cudaSetDevice");
    cudaStream_t stream = nullptr;
    check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
    check_collectives(*comm, stream);
    comm.reset();
    check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  } else {
    std::printf("mpi rank %d: %d GPU(s) for %d ranks on this host: the communicator itself is not tried\n", env.rank,
                count, env.local_size);
  }
  std::printf("mpi rank %d: ok\n", env.rank);
  return 0;
}

int check_gpu() {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    std::printf("no GPU (%s): skipped\n", error != cudaSuccess ? cudaGetErrorString(error) : "none");
    return kSkipped;
  }
  if (!kHaveNccl) {
    std::printf("this runtime has no NCCL: skipped\n");
    return kSkipped;
  }
  check_one_rank();
  if (count >= 2) {
    for (const char* which : {"exchange", "comm-id", "fail-load", "silent"}) check_ranks(std::min(count, 4), which);
  } else {
    std::printf("one GPU: the test of several ranks needs two (NCCL refuses two ranks on one GPU)\n");
  }
  std::printf("gpu: ok\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "env") {
    check_create();
    check_pairs();
    return 0;
  }
  if (mode == "env-rank" && argc == 4) return run_pair_rank(std::atoi(argv[2]), argv[3]);
  if (mode == "without-mpi") {
    check_without_mpi();
    return 0;
  }
  if (mode == "mpi") return check_mpi();
  if (mode == "gpu") return check_gpu();
  if (mode == "gpu-rank" && argc == 5) return run_rank(std::atoi(argv[2]), std::atoi(argv[3]), argv[4]);
  std::fprintf(stderr, "usage: %s env|without-mpi|mpi|gpu | env-rank R CASE | gpu-rank R N CASE\n", argv[0]);
  return 2;
}
