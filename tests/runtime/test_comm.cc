// The communicators' conformance test: every collective on every mesh axis, for every dtype,
// at odd and zero sizes, many calls back to back, checked against sums this file computes.
//
//   test_comm local          all ranks as threads of this process (meshes 4, 2x2, 2x3)
//   mpirun -np 4 test_comm mpi   one rank per process (meshes 4, 2x2), plus the errors MPI gives
//   test_comm without-mpi    (built with the communicator compiled without MPI) its error
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "check.h"
#include "flowc/comm.h"
#include "runtime/comm/comm.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/comm/mpi/mpi_communicator.h"
#include "runtime/core/step.h"

using flowc::Communicator;

namespace {

const flowc_comm_dtype kDtypes[] = {FLOWC_COMM_F32, FLOWC_COMM_F64, FLOWC_COMM_I32, FLOWC_COMM_I64};

// The group of `rank` on `axis`, worked out here rather than by flowc::Mesh.
std::vector<int32_t> group_of(const std::vector<int32_t>& shape, int32_t rank, size_t axis) {
  std::vector<int32_t> coords(shape.size());
  for (size_t a = shape.size(), r = size_t(rank); a-- > 0;) {
    coords[a] = int32_t(r % size_t(shape[a]));
    r /= size_t(shape[a]);
  }
  std::vector<int32_t> out;
  for (int32_t c = 0; c < shape[axis]; ++c) {
    coords[axis] = c;
    int32_t r = 0;
    for (size_t a = 0; a < shape.size(); ++a) r = r * shape[a] + coords[a];
    out.push_back(r);
  }
  return out;
}

// Element i of what `rank` sends in call `call`: fractions whose sums depend on the order of
// addition, so that the local communicator's bitwise agreement means something.
template <typename T>
T value(int32_t rank, int call, uint64_t i) {
  uint64_t h = (uint64_t(rank) * 7919u + i * 104729u + uint64_t(call) * 15485863u) % 100003u;
  if (std::is_floating_point<T>::value) return T(1) / T(1 + int64_t(h % 997)) + T(int64_t(h) - 50000) / T(64);
  return T(int64_t(h) - 50000) * T(std::is_same<T, int64_t>::value ? 40000 : 1);
}

// `scale`: the sum of the terms' magnitudes, which bounds the rounding of any order of adding them.
template <typename T>
bool same(T got, T want, bool exact, double scale) {
  if (exact || !std::is_floating_point<T>::value) return std::memcmp(&got, &want, sizeof(T)) == 0;
  double tolerance = std::is_same<T, float>::value ? 1e-6 : 1e-14;
  return std::fabs(double(got) - double(want)) <= tolerance * (1 + scale);
}

enum Kind { kAllReduce, kAllGather, kReduceScatter, kAllToAll };
const char* kKindNames[] = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all"};

// One collective by one rank, checked. `exact`: sums must equal the group-order sum bitwise.
template <typename T>
void check_one(Communicator& comm, const std::vector<int32_t>& shape, Kind kind, int32_t axis,
               flowc_comm_dtype dtype, uint64_t count, int call, bool exact) {
  std::vector<int32_t> group = group_of(shape, comm.rank(), size_t(axis));
  uint64_t n = group.size();
  uint64_t me = 0;
  while (group[me] != comm.rank()) ++me;
  bool blocks_out = kind == kAllReduce || kind == kAllGather;
  std::vector<T> send((blocks_out ? 1 : n) * count + 1), recv((kind == kAllGather || kind == kAllToAll ? n : 1) * count + 1);
  for (uint64_t i = 0; i < send.size(); ++i) send[i] = value<T>(comm.rank(), call, i);
  const T guard = value<T>(-1, call, 0);
  for (T& r : recv) r = guard;
  uint64_t bytes = count * sizeof(T);
  flowc_status status = nullptr;
  switch (kind) {
    case kAllReduce: status = comm.all_reduce(axis, dtype, send.data(), recv.data(), count); break;
    case kAllGather: status = comm.all_gather(axis, send.data(), recv.data(), bytes); break;
    case kReduceScatter: status = comm.reduce_scatter(axis, dtype, send.data(), recv.data(), count); break;
    case kAllToAll: status = comm.all_to_all(axis, send.data(), recv.data(), bytes); break;
  }
  CHECK(!status, "rank %d %s axis %d: %s", comm.rank(), kKindNames[kind], axis, flowc_status_get_message(status));
  uint64_t received = recv.size() - 1;
  for (uint64_t i = 0; i < received; ++i) {
    T want{};
    double scale = 0;
    switch (kind) {
      case kAllReduce:
      case kReduceScatter: {
        uint64_t at = (kind == kAllReduce ? 0 : me * count) + i;
        want = value<T>(group[0], call, at);
        scale = std::fabs(double(want));
        for (uint64_t m = 1; m < n; ++m) {
          T add = value<T>(group[m], call, at);
          scale += std::fabs(double(add));
          // Integers wrap, as the communicators' sums do.
          if constexpr (std::is_floating_point<T>::value) {
            want = want + add;
          } else {
            want = T(std::make_unsigned_t<T>(want) + std::make_unsigned_t<T>(add));
          }
        }
        break;
      }
      case kAllGather: want = value<T>(group[i / count], call, i % count); break;
      case kAllToAll: want = value<T>(group[i / count], call, me * count + i % count); break;
    }
    CHECK(same(recv[i], want, exact, scale), "rank %d %s axis %d count %llu element %llu: got %.17g, want %.17g",
          comm.rank(), kKindNames[kind], axis, (unsigned long long)count, (unsigned long long)i, double(recv[i]),
          double(want));
  }
  CHECK(std::memcmp(&recv[received], &guard, sizeof(T)) == 0, "rank %d %s wrote past its receive buffer",
        comm.rank(), kKindNames[kind]);
}

void check_one(Communicator& comm, const std::vector<int32_t>& shape, Kind kind, int32_t axis,
               flowc_comm_dtype dtype, uint64_t count, int call, bool exact) {
  switch (dtype) {
    case FLOWC_COMM_F32: return check_one<float>(comm, shape, kind, axis, dtype, count, call, exact);
    case FLOWC_COMM_F64: return check_one<double>(comm, shape, kind, axis, dtype, count, call, exact);
    case FLOWC_COMM_I32: return check_one<int32_t>(comm, shape, kind, axis, dtype, count, call, exact);
    case FLOWC_COMM_I64: return check_one<int64_t>(comm, shape, kind, axis, dtype, count, call, exact);
  }
}

// Bytes through the byte collectives, at odd sizes.
void check_bytes(Communicator& comm, const std::vector<int32_t>& shape, Kind kind, int32_t axis, uint64_t bytes,
                 int call) {
  std::vector<int32_t> group = group_of(shape, comm.rank(), size_t(axis));
  uint64_t n = group.size(), me = 0;
  while (group[me] != comm.rank()) ++me;
  auto byte = [&](int32_t rank, uint64_t i) { return uint8_t(rank * 37 + i * 11 + uint64_t(call) * 5); };
  std::vector<uint8_t> send((kind == kAllGather ? 1 : n) * bytes), recv(n * bytes + 1, 0xA5);
  for (uint64_t i = 0; i < send.size(); ++i) send[i] = byte(comm.rank(), i);
  flowc_status status = kind == kAllGather ? comm.all_gather(axis, send.data(), recv.data(), bytes)
                                           : comm.all_to_all(axis, send.data(), recv.data(), bytes);
  CHECK(!status, "%s", flowc_status_get_message(status));
  for (uint64_t i = 0; i < n * bytes; ++i) {
    uint8_t want = byte(group[i / bytes], (kind == kAllGather ? 0 : me * bytes) + i % bytes);
    CHECK(recv[i] == want, "rank %d %s of %llu bytes: byte %llu is %d, want %d", comm.rank(), kKindNames[kind],
          (unsigned long long)bytes, (unsigned long long)i, recv[i], want);
  }
  CHECK(recv[n * bytes] == 0xA5);
}

// Every rank runs the same sequence: the full matrix, then `rounds` calls back to back.
void check_collectives(Communicator& comm, const std::vector<int32_t>& shape, bool exact, int rounds) {
  int call = 0;
  for (int32_t axis = 0; axis < int32_t(shape.size()); ++axis) {
    for (flowc_comm_dtype dtype : kDtypes) {
      for (uint64_t count : {0, 1, 7, 1031}) {
        for (Kind kind : {kAllReduce, kAllGather, kReduceScatter, kAllToAll}) {
          check_one(comm, shape, kind, axis, dtype, count, call++, exact);
        }
      }
    }
    for (uint64_t bytes : {1, 3, 1027}) {
      check_bytes(comm, shape, kAllGather, axis, bytes, call++);
      check_bytes(comm, shape, kAllToAll, axis, bytes, call++);
    }
  }
  // Large enough that the local all_reduce splits the sum among members and tiles it.
  check_one(comm, shape, kAllReduce, 0, FLOWC_COMM_F32, 70001, call++, exact);
  for (int k = 0; k < rounds; ++k, ++call) {
    uint64_t h = uint64_t(k) * 2654435761u;
    check_one(comm, shape, Kind(h % 4), int32_t((h >> 8) % shape.size()), kDtypes[(h >> 16) % 4], (h >> 24) % 40,
              call, exact);
  }
}

void expect_error(flowc_status status, flowc_status_code code, const std::vector<std::string>& parts) {
  CHECK(flowc_status_get_code(status) == code, "got %s: %s", flowc_status_code_name(flowc_status_get_code(status)),
        flowc_status_get_message(status));
  std::string message = flowc_status_get_message(status);
  for (const std::string& part : parts) {
    CHECK(message.find(part) != std::string::npos, "'%s' does not say '%s'", message.c_str(), part.c_str());
  }
  flowc_status_free(status);
}

// Arguments every driver refuses before any rendezvous (so one rank can make them alone).
void check_bad_arguments(Communicator& comm) {
  float a[8] = {}, b[8] = {};
  expect_error(comm.all_reduce(0, flowc_comm_dtype(7), a, b, 2), FLOWC_STATUS_INVALID_ARGUMENT,
               {"all_reduce on mesh axis 0", "dtype 7 is not a flowc_comm_dtype"});
  expect_error(comm.reduce_scatter(0, flowc_comm_dtype(0), a, b, 1), FLOWC_STATUS_INVALID_ARGUMENT,
               {"reduce_scatter", "dtype 0 is not a flowc_comm_dtype"});
  expect_error(comm.all_gather(5, a, b, 4), FLOWC_STATUS_INVALID_ARGUMENT, {"mesh axis 5", "has axes 0.."});
  expect_error(comm.all_to_all(-1, a, b, 4), FLOWC_STATUS_INVALID_ARGUMENT, {"mesh axis -1"});
  expect_error(comm.all_reduce(0, FLOWC_COMM_F32, nullptr, b, 2), FLOWC_STATUS_INVALID_ARGUMENT,
               {"the send buffer is NULL"});
  expect_error(comm.all_reduce(0, FLOWC_COMM_F32, a, a + 1, 2), FLOWC_STATUS_INVALID_ARGUMENT, {"overlap"});
  expect_error(comm.all_gather(0, a, b, UINT64_MAX / 2), FLOWC_STATUS_OUT_OF_RANGE, {"too large"});

  // The C functions that generated steps call: statuses become codes and ctx->error.
  flowc_step_ctx ctx{};
  ctx.comm = &comm;
  int32_t coord = -1, size = -1;
  CHECK(flowc_comm_coord(&ctx, 0, &coord, &size) == 0);
  CHECK(coord == comm.coords()[0] && size == comm.mesh().shape()[0]);
  CHECK(flowc_comm_all_reduce(&ctx, 0, flowc_comm_dtype(5), a, b, 1) == FLOWC_STATUS_INVALID_ARGUMENT);
  CHECK(ctx.error && std::strstr(ctx.error, "dtype 5 is not a flowc_comm_dtype"), "%s", ctx.error);
  ctx.error = nullptr;
  CHECK(flowc_comm_coord(&ctx, 9, &coord, &size) == FLOWC_STATUS_INVALID_ARGUMENT);
  CHECK(ctx.error && std::strstr(ctx.error, "mesh axis 9 is out of range"), "%s", ctx.error);
  flowc_step_ctx alone{};
  CHECK(flowc_comm_all_gather(&alone, 0, a, b, 4) == FLOWC_STATUS_FAILED_PRECONDITION);
  CHECK(alone.error && std::strstr(alone.error, "no communicator"), "%s", alone.error);
}

// Each rank of `shape` on a thread of its own, running `body`.
void run_local(const std::vector<int32_t>& shape, const std::function<void(Communicator&)>& body) {
  flowc::Mesh mesh;
  flowc_status status = flowc::Mesh::create(shape.data(), int32_t(shape.size()), &mesh);
  CHECK(!status, "%s", flowc_status_get_message(status));
  std::vector<std::unique_ptr<Communicator>> comms;
  status = flowc::create_local_communicators(mesh, &comms);
  CHECK(!status && comms.size() == size_t(mesh.size()));
  std::vector<std::thread> threads;
  for (auto& comm : comms) threads.emplace_back([&body, c = comm.get()] { body(*c); });
  for (auto& t : threads) t.join();
}

void check_local() {
  for (std::vector<int32_t> shape : {std::vector<int32_t>{4}, {2, 2}, {2, 3}, {1, 3}}) {
    run_local(shape, [&](Communicator& comm) {
      CHECK(std::strcmp(comm.name(), "local") == 0 && comm.ranks_on_host() == comm.mesh().size());
      check_collectives(comm, shape, true, 400);
    });
    std::string name;
    for (int32_t dim : shape) name += (name.empty() ? "" : "x") + std::to_string(dim);
    std::printf("local %s: every collective, axis and dtype bitwise right; 400 more calls back to back\n",
                name.c_str());
  }
  // Ranks that disagree on a collective all hear of it, and the group still works afterwards.
  run_local({3}, [](Communicator& comm) {
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {};
    uint64_t count = comm.rank() == 1 ? 6 : 5;
    expect_error(comm.all_reduce(0, FLOWC_COMM_F32, a, b, count), FLOWC_STATUS_FAILED_PRECONDITION,
                 {"rank " + std::to_string(comm.rank()) + ": collective #0 on mesh axis 0 differs between ranks",
                  "rank 0 calls all_reduce of 5 f32", "rank 1 calls all_reduce of 6 f32"});
    expect_error(comm.rank() == 2 ? comm.all_gather(0, a, b, 4) : comm.all_reduce(0, FLOWC_COMM_F32, a, b, 1),
                 FLOWC_STATUS_FAILED_PRECONDITION, {"rank 2 calls all_gather of 4 bytes per block"});
    CHECK(!comm.all_reduce(0, FLOWC_COMM_F32, a, b, 8));
    CHECK(b[7] == 24);
    check_bad_arguments(comm);
  });
  std::printf("local: mismatched collectives and bad arguments give errors naming them\n");
}

void check_mpi() {
  // The mesh must have as many ranks as MPI has processes; nothing hangs when it does not.
  std::vector<int32_t> two = {2};
  flowc::Mesh mesh;
  CHECK(!flowc::Mesh::create(two.data(), 1, &mesh));
  std::unique_ptr<Communicator> comm;
  auto ready = [](int32_t) -> flowc_status { return nullptr; };
  expect_error(flowc::create_mpi_communicator(mesh, ready, &comm), FLOWC_STATUS_FAILED_PRECONDITION,
               {"mesh 2 has 2 ranks", "MPI_COMM_WORLD has 4 processes", "mpirun -np 2"});
  CHECK(!comm);

  for (std::vector<int32_t> shape : {std::vector<int32_t>{4}, {2, 2}}) {
    CHECK(!flowc::Mesh::create(shape.data(), int32_t(shape.size()), &mesh));
    int32_t prepared = -1;
    flowc_status status = flowc::create_mpi_communicator(
        mesh, [&](int32_t rank) -> flowc_status { prepared = rank; return nullptr; }, &comm);
    CHECK(!status, "%s", flowc_status_get_message(status));
    CHECK(std::strcmp(comm->name(), "mpi") == 0 && prepared == comm->rank() && comm->ranks_on_host() >= 1);
    check_collectives(*comm, shape, false, 200);
    if (comm->rank() == 0) {
      std::printf("mpi %s: every collective, axis and dtype; 200 more calls back to back\n", mesh.describe().c_str());
    }
    check_bad_arguments(*comm);
  }

  // One process failing to get ready fails every process, none waiting for it.
  flowc_status status = flowc::create_mpi_communicator(
      mesh,
      [](int32_t rank) {
        return rank == 2 ? flowc_status_make(FLOWC_STATUS_NOT_FOUND, "cannot open weights.r2.bin") : nullptr;
      },
      &comm);
  CHECK(status && !comm, "a failed prepare still gave a communicator");
  const char* message = flowc_status_get_message(status);
  CHECK(std::strstr(message, "cannot open weights.r2.bin") || std::strstr(message, "MPI rank 2 could not load"),
        "%s", message);
  flowc_status_free(status);
  std::printf("mpi: size mismatch and a rank that cannot load give errors naming them\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "local";
  if (mode == "local") {
    check_local();
  } else if (mode == "mpi") {
    check_mpi();
  } else if (mode == "without-mpi") {
    std::vector<int32_t> one = {1};
    flowc::Mesh mesh;
    CHECK(!flowc::Mesh::create(one.data(), 1, &mesh));
    std::unique_ptr<Communicator> comm;
    expect_error(flowc::create_mpi_communicator(mesh, [](int32_t) -> flowc_status { return nullptr; }, &comm),
                 FLOWC_STATUS_UNAVAILABLE, {"built without MPI: install libopenmpi-dev", "and recompile"});
    std::printf("without MPI: selecting it says how to get it\n");
  } else {
    std::fprintf(stderr, "usage: test_comm local|mpi|without-mpi\n");
    return 2;
  }
  std::printf("comm %s: ok\n", mode.c_str());
  return 0;
}
