// The NCCL communicator (runtime/comm/nccl). Built only with FLOWC_CUDA=ON.
//
//   test_nccl_communicator env          the launch and the bootstrap address read from fake
//                                       environments, and what create says where it cannot start
//                                       (a launch that does not match the mesh, no address, no GPU)
//   test_nccl_communicator without-mpi  linked with the MPI communicator built without MPI: under
//                                       an MPI launcher, the way out through NCCL_COMM_ID
//   mpirun -np N test_nccl_communicator mpi
//                                       the bootstrap through MPI: the prepare agreement, rank 0's
//                                       id to all; collectives where each rank has a GPU
//   test_nccl_communicator gpu          one rank on GPU 0 (its collectives are copies); with two GPUs
//                                       or more, also one process per GPU (NCCL refuses two ranks
//                                       on one GPU: "Duplicate GPU detected"); exits 77 without a GPU
//   test_nccl_communicator gpu-rank R N one of those processes, started by `gpu`
#include <arpa/inet.h>
#include <cuda_runtime.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "check.h"
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

using Table = std::map<std::string, std::string>;

std::function<const char*(const char*)> getenv_of(const Table& table) {
  return [&table](const char* name) -> const char* {
    auto found = table.find(name);
    return found == table.end() ? nullptr : found->second.c_str();
  };
}

// `status` failed with `code` and a message that holds `text`; frees it and returns the message.
std::string fails(flowc_status status, flowc_status_code code, const std::string& text) {
  CHECK(status, "succeeded; expected '%s'", text.c_str());
  std::string message = flowc_status_get_message(status);
  flowc_status_code got = flowc_status_get_code(status);
  flowc_status_free(status);
  CHECK(got == code, "got %s: %s", flowc_status_code_name(got), message.c_str());
  CHECK(message.find(text) != std::string::npos, "'%s' is not in '%s'", text.c_str(), message.c_str());
  return message;
}

flowc::LaunchEnv launch(const Table& table) {
  flowc::LaunchEnv env;
  flowc_status status = flowc::read_launch_env(getenv_of(table), &env);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return env;
}

void check_launch(const Table& table, int32_t rank, int32_t size, int32_t local_rank, int32_t local_size,
                  const char* launcher) {
  flowc::LaunchEnv env = launch(table);
  CHECK(env.rank == rank && env.world_size == size && env.local_rank == local_rank && env.local_size == local_size &&
            std::strcmp(env.launcher, launcher) == 0,
        "got rank %d of %d, local %d of %d, from %s", env.rank, env.world_size, env.local_rank, env.local_size,
        env.launcher);
}

void launch_fails(const Table& table, flowc_status_code code, const std::string& text) {
  flowc::LaunchEnv env;
  fails(flowc::read_launch_env(getenv_of(table), &env), code, text);
}

void check_launch_env() {
  check_launch({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}}, 3, 8, 1, 2,
               "torchrun");
  check_launch({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
               1, 4, 1, 2, "Open MPI");
  check_launch({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"}, {"MPI_LOCALNRANKS", "1"}}, 2, 3, 0, 1,
               "PMI");
  // torchrun's variables first, then Open MPI's, then PMI's; set to nothing is unset.
  check_launch({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}}, 1,
               2, 1, 2, "torchrun");
  check_launch({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"PMI_RANK", "0"}, {"PMI_SIZE", "1"}},
               3, 4, 3, 4, "Open MPI");
  check_launch({{"RANK", ""}, {"WORLD_SIZE", ""}, {"PMI_RANK", "1"}, {"PMI_SIZE", "2"}}, 1, 2, 1, 2, "PMI");
  // Without the local pair, every rank is on this host.
  check_launch({{"PMI_RANK", "2"}, {"PMI_SIZE", "4"}}, 2, 4, 2, 4, "PMI");

  for (const char* bad : {"-1", "+1", " 1", "1 ", "0x1", "1.0", "one", "2147483648", "99999999999999999999"}) {
    launch_fails({{"RANK", bad}, {"WORLD_SIZE", "4"}}, FLOWC_STATUS_INVALID_ARGUMENT,
                 std::string("RANK is '") + bad + "', not a whole number of at least 0");
  }
  launch_fails({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "WORLD_SIZE is '0', not a whole number of at least 1");
  launch_fails({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "x"},
                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "OMPI_COMM_WORLD_LOCAL_RANK is 'x', not a whole number");
  // A malformed launch is an error even where another launcher's variables would do.
  launch_fails({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"PMI_RANK", "0"}, {"PMI_SIZE", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "RANK is 'x'");
  launch_fails({{"RANK", "4"}, {"WORLD_SIZE", "4"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "RANK is 4, not below WORLD_SIZE = 4");
  launch_fails({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "2"}, {"MPI_LOCALNRANKS", "2"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "MPI_LOCALRANKID is 2, not below MPI_LOCALNRANKS = 2");
  launch_fails({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "8"}},
               FLOWC_STATUS_INVALID_ARGUMENT, "LOCAL_WORLD_SIZE is 8, more than WORLD_SIZE = 4");
  launch_fails({{"RANK", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT, "RANK is '0' but WORLD_SIZE is not set");
  launch_fails({{"WORLD_SIZE", "2"}}, FLOWC_STATUS_INVALID_ARGUMENT, "WORLD_SIZE is '2' but RANK is not set");
  launch_fails({{"PMI_RANK", "0"}, {"PMI_SIZE", "1"}, {"MPI_LOCALRANKID", "0"}}, FLOWC_STATUS_INVALID_ARGUMENT,
               "MPI_LOCALRANKID is '0' but MPI_LOCALNRANKS is not set");
  launch_fails({{"MASTER_ADDR", "node0"}}, FLOWC_STATUS_FAILED_PRECONDITION,
               "NCCL needs one process per GPU started by a launcher: mpirun -np N, or torchrun");
  std::printf("launch env: ok\n");
}

std::string address(const Table& table) {
  std::string out;
  flowc_status status = flowc::nccl_bootstrap_address(getenv_of(table), &out);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return out;
}

void address_fails(const Table& table, const std::string& text) {
  std::string out;
  fails(flowc::nccl_bootstrap_address(getenv_of(table), &out), FLOWC_STATUS_FAILED_PRECONDITION, text);
}

void check_bootstrap_address() {
  CHECK(address({{"NCCL_COMM_ID", "10.1.2.3:4000"}, {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}}) ==
        "10.1.2.3:4000");
  // torchrun's store has MASTER_PORT; NCCL's root takes the next one.
  CHECK(address({{"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"}}) == "node0:29501");
  CHECK(address({{"NCCL_COMM_ID", ""}, {"MASTER_ADDR", "fe80::1"}, {"MASTER_PORT", "1"}}) == "[fe80::1]:2");
  CHECK(address({{"MASTER_ADDR", "[::1]"}, {"MASTER_PORT", "65534"}}) == "[::1]:65535");
  for (const char* bad : {"65535", "70000", "0", "http", "-1"}) {
    address_fails({{"MASTER_ADDR", "node0"}, {"MASTER_PORT", bad}},
                  std::string("MASTER_PORT is '") + bad + "': NCCL's bootstrap listens on the port after it");
  }
  address_fails({{"MASTER_ADDR", "node0"}}, "MASTER_PORT is not set");
  address_fails({{"MASTER_PORT", "29500"}}, "MASTER_ADDR is not set");
  address_fails({}, "MASTER_ADDR is not set: set NCCL_COMM_ID=host:port");
  std::printf("bootstrap address: ok\n");
}

// The variables of every launcher and of the bootstrap, unset so that a test sets its own.
void clear_launch_env() {
  for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                           "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                           "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "NCCL_COMM_ID",
                           "MASTER_ADDR", "MASTER_PORT"}) {
    unsetenv(name);
  }
}

void setenv_int(const char* name, int value) { setenv(name, std::to_string(value).c_str(), 1); }

// A TCP port free on this host now (the kernel's pick), for NCCL's bootstrap root.
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  CHECK(bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0);
  CHECK(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

struct Prepared {
  int32_t calls = 0, rank = -1, local_rank = -1;
};

// create_nccl_communicator on a mesh of `shape`, from this process's environment, with a prepare
// that records its call and fails with `error`, or else gives GPU `local_rank`.
flowc_status create(std::vector<int32_t> shape, Prepared* prepared, const char* error,
                    std::unique_ptr<flowc::Communicator>* out_comm) {
  flowc::Mesh mesh;
  CHECK(!flowc::Mesh::create(shape.data(), int32_t(shape.size()), &mesh));
  return flowc::create_nccl_communicator(
      mesh,
      [=](int32_t rank, int32_t local_rank, int32_t* out_ordinal) -> flowc_status {
        *prepared = {prepared->calls + 1, rank, local_rank};
        if (error) return flowc_status_make(FLOWC_STATUS_NOT_FOUND, "%s", error);
        *out_ordinal = local_rank;
        return nullptr;
      },
      out_comm);
}

void create_fails(std::vector<int32_t> shape, const char* prepare_error, flowc_status_code code,
                  const std::string& text, int32_t prepare_calls) {
  Prepared prepared;
  std::unique_ptr<flowc::Communicator> comm;
  std::string message = fails(create(shape, &prepared, prepare_error, &comm), code, text);
  CHECK(!comm);
  CHECK(prepared.calls == prepare_calls, "prepare ran %d times, not %d: %s", prepared.calls, prepare_calls,
        message.c_str());
  CHECK(!prepared.calls || (prepared.rank == 0 && prepared.local_rank == 0), "prepared rank %d (local %d)",
        prepared.rank, prepared.local_rank);
}

bool have_gpu() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
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
               "the model was compiled for a mesh of 2x2 = 4 ranks, but the launcher (torchrun) started 2 "
               "processes: start 4, one per GPU",
               0);
  create_fails({3}, nullptr, FLOWC_STATUS_INVALID_ARGUMENT,
               "a mesh of 3 ranks, but the launcher (torchrun) started 2 processes", 0);
  setenv("WORLD_SIZE", "1", 1);
  // A bootstrap with no address fails before the rank is prepared.
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_ADDR is not set", 0);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "65535", 1);
  create_fails({1}, nullptr, FLOWC_STATUS_FAILED_PRECONDITION, "MASTER_PORT is '65535'", 0);
  setenv_int("MASTER_PORT", free_port() - 1);
  // prepare's own error comes back as it is.
  create_fails({1}, "rank 0 has no weights here", FLOWC_STATUS_NOT_FOUND, "rank 0 has no weights here", 1);
  if (!have_gpu()) {
    Prepared prepared;
    std::unique_ptr<flowc::Communicator> comm;
    std::string message = fails(create({1}, &prepared, nullptr, &comm), FLOWC_STATUS_UNAVAILABLE, "rank 0: ");
    CHECK(!comm && prepared.calls == 1);
    std::printf("no GPU, as create says: %s\n", message.c_str());
  }
  // Set for the bootstrap from MASTER_ADDR, NCCL_COMM_ID is unset again.
  CHECK(!std::getenv("NCCL_COMM_ID"), "NCCL_COMM_ID was left at %s", std::getenv("NCCL_COMM_ID"));
  std::printf("create: ok\n");
}

// Under an MPI launcher with no MPI in the runtime: an error that says how to do without, and
// with NCCL_COMM_ID set, the bootstrap from it (here as far as preparing the rank).
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
               "recompile; or set NCCL_COMM_ID=host:port (rank 0's host and a free port) on every rank, for NCCL "
               "to bootstrap without MPI",
               0);
  setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(free_port())).c_str(), 1);
  create_fails({1}, "prepared from OMPI_COMM_WORLD_RANK", FLOWC_STATUS_NOT_FOUND,
               "prepared from OMPI_COMM_WORLD_RANK", 1);
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
// on the stream.
void check_one_rank() {
  clear_launch_env();
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv_int("MASTER_PORT", free_port() - 1);
  Prepared prepared;
  std::unique_ptr<flowc::Communicator> comm;
  flowc_status status = create({1}, &prepared, nullptr, &comm);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(std::strcmp(comm->name(), "nccl") == 0 && comm->rank() == 0 && comm->ranks_on_host() == 1);
  CHECK(!std::getenv("NCCL_COMM_ID"), "NCCL_COMM_ID was left at %s", std::getenv("NCCL_COMM_ID"));
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
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  std::printf("one rank: ok\n");
}

// `ranks` processes of this program, one per GPU, set up as torchrun would (NCCL_COMM_ID instead
// of MASTER_*): each runs the collectives on a mesh of 2x2 (four) or 1-D, and all must pass.
void check_ranks(int32_t ranks) {
  clear_launch_env();
  setenv("NCCL_COMM_ID", ("127.0.0.1:" + std::to_string(free_port())).c_str(), 1);
  std::vector<pid_t> children;
  for (int32_t r = 0; r < ranks; ++r) {
    std::string rank = std::to_string(r), size = std::to_string(ranks);
    char* argv[] = {const_cast<char*>("test_nccl_communicator"), const_cast<char*>("gpu-rank"), rank.data(),
                    size.data(), nullptr};
    pid_t pid = 0;
    int error = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ);
    CHECK(error == 0, "posix_spawn: %s", std::strerror(error));
    children.push_back(pid);
  }
  for (int32_t r = 0; r < ranks; ++r) {
    int status = 0;
    CHECK(waitpid(children[size_t(r)], &status, 0) == children[size_t(r)]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rank %d of %d failed (status %d)", r, ranks, status);
  }
  unsetenv("NCCL_COMM_ID");
  std::printf("%d ranks, one per GPU: ok\n", ranks);
}

int run_rank(int32_t rank, int32_t ranks) {
  alarm(120);  // when a rank dies, the others wait for it in NCCL for ever: end them
  setenv_int("RANK", rank);
  setenv_int("WORLD_SIZE", ranks);
  setenv_int("LOCAL_RANK", rank);
  setenv_int("LOCAL_WORLD_SIZE", ranks);
  Prepared prepared;
  std::unique_ptr<flowc::Communicator> comm;
  flowc_status status = create(ranks == 4 ? std::vector<int32_t>{2, 2} : std::vector<int32_t>{ranks}, &prepared,
                               nullptr, &comm);
  CHECK(!status, "%s", flowc_status_get_message(status));
  CHECK(comm->rank() == rank && comm->ranks_on_host() == ranks);
  check_cuda(cudaSetDevice(rank), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");
  check_collectives(*comm, stream);
  comm.reset();
  check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  return 0;
}

// Under mpirun -np N: a rank that cannot prepare fails every rank, and rank 0's id reaches every
// rank through MPI; then the communicator itself where each rank on this host has a GPU of its
// own, or, with no GPU, the error of every rank (all stop at their GPU, so none waits in NCCL).
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
  Prepared prepared;
  std::unique_ptr<flowc::Communicator> comm;
  status = create({env.world_size}, &prepared, env.rank == last ? "the last rank has no weights" : nullptr, &comm);
  if (env.rank == last) {
    fails(status, FLOWC_STATUS_NOT_FOUND, "the last rank has no weights");
  } else {
    fails(status, FLOWC_STATUS_UNAVAILABLE, "MPI rank " + std::to_string(last) + " could not load the model");
  }
  CHECK(prepared.calls == 1 && prepared.rank == env.rank && prepared.local_rank == env.local_rank);

  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::string message = fails(create({env.world_size}, &prepared, nullptr, &comm), FLOWC_STATUS_UNAVAILABLE,
                                "rank " + std::to_string(env.rank) + ": cudaSetDevice on GPU ");
    std::printf("mpi rank %d: no GPU, as create says after the MPI bootstrap: %s\n", env.rank, message.c_str());
  } else if (count >= env.local_size) {
    status = create({env.world_size}, &prepared, nullptr, &comm);
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
    check_ranks(std::min(count, 4));
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
    check_launch_env();
    check_bootstrap_address();
    check_create();
    return 0;
  }
  if (mode == "without-mpi") {
    check_without_mpi();
    return 0;
  }
  if (mode == "mpi") return check_mpi();
  if (mode == "gpu") return check_gpu();
  if (mode == "gpu-rank" && argc == 4) return run_rank(std::atoi(argv[2]), std::atoi(argv[3]));
  std::fprintf(stderr, "usage: %s env|without-mpi|mpi|gpu|gpu-rank RANK RANKS\n", argv[0]);
  return 2;
}
