// The communicators' conformance test: every collective on every mesh axis, for every dtype,
// at odd and zero sizes, many calls back to back, checked against sums this file computes. f16
// and bf16 sums must be rounded once, from float (the host conversions are checked first).
//
//   test_comm local          all ranks as threads of this process (meshes 4, 2x2, 2x3)
//   mpirun -np 4 test_comm mpi   one rank per process (meshes 4, 2x2), plus the errors MPI gives
//   test_comm without-mpi    (built with the communicator compiled without MPI) its error
#include <cfloat>
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
#include "runtime/comm/half.h"
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

// -- f16 and bf16 --------------------------------------------------------------------------------

// A half type as this test sees it: its conversions, the bits of +inf, and its mantissa's width.
struct HalfType {
  const char* name;
  flowc_comm_dtype dtype;
  float (*widen)(uint16_t);
  uint16_t (*narrow)(float);
  uint16_t inf;
  int mantissa_bits;
};
const HalfType kF16 = {"f16", FLOWC_COMM_F16, flowc::f16_to_float, flowc::float_to_f16, 0x7c00, 10};
const HalfType kBF16 = {"bf16", FLOWC_COMM_BF16, flowc::bf16_to_float, flowc::float_to_bf16, 0x7f80, 7};

bool is_nan(const HalfType& t, uint16_t h) { return (h & 0x7fffu) > t.inf; }

// Every value widens and narrows back to itself (NaNs stay NaN, made quiet); between each finite
// value and its neighbour away from zero, the midpoint rounds to the one whose last bit is 0 and
// the floats either side of it to the nearer; then the edges by value.
void check_conversions(const HalfType& t) {
  const uint16_t quiet = uint16_t(1u << (t.mantissa_bits - 1));
  for (uint32_t h = 0; h <= 0xffffu; ++h) {
    float value = t.widen(uint16_t(h));
    uint16_t back = t.narrow(value);
    if (is_nan(t, uint16_t(h))) {
      CHECK(std::isnan(value) && is_nan(t, back) && (back & quiet), "%s 0x%04x: NaN came back as 0x%04x", t.name, h,
            back);
      continue;
    }
    CHECK(back == h, "%s 0x%04x (%.9g) came back as 0x%04x", t.name, h, double(value), back);
    if ((h & 0x7fffu) == t.inf) continue;
    uint16_t next = uint16_t(h + 1);
    // The largest finite value's step, continued past it, leads to where inf begins.
    float step = (next & 0x7fffu) == t.inf ? value - t.widen(uint16_t(h - 1)) : t.widen(next) - value;
    float mid = value + step / 2;  // exact: float has bits to spare
    uint16_t even = (h & 1u) ? next : uint16_t(h);
    CHECK(t.narrow(mid) == even, "%s: %.9g, halfway from 0x%04x, gave 0x%04x", t.name, double(mid), h,
          t.narrow(mid));
    CHECK(t.narrow(std::nextafter(mid, value)) == h, "%s: just below %.9g gave 0x%04x, not 0x%04x", t.name,
          double(mid), t.narrow(std::nextafter(mid, value)), h);
    CHECK(t.narrow(std::nextafter(mid, 2 * mid)) == next, "%s: just above %.9g gave 0x%04x, not 0x%04x", t.name,
          double(mid), t.narrow(std::nextafter(mid, 2 * mid)), next);
  }
  const float inf = INFINITY;
  struct Edge {
    float value;
    uint16_t want;
  };
  const std::vector<Edge> edges =
      t.dtype == FLOWC_COMM_F16
          ? std::vector<Edge>{{1.0f, 0x3c00}, {-2.5f, 0xc100}, {65504.0f, 0x7bff}, {65520.0f, 0x7c00},
                              {1e6f, 0x7c00}, {FLT_MAX, 0x7c00}, {-inf, 0xfc00}, {0x1p-14f, 0x0400},
                              {0x1p-24f, 0x0001}, {-0x1p-25f, 0x8000}, {0x1.8p-25f, 0x0001}, {0x1.8p-24f, 0x0002},
                              {-0.0f, 0x8000}, {FLT_TRUE_MIN, 0x0000}}
          : std::vector<Edge>{{1.0f, 0x3f80}, {-2.5f, 0xc020}, {0x1.fep127f, 0x7f7f}, {FLT_MAX, 0x7f80},
                              {-inf, 0xff80}, {1.00390625f, 0x3f80}, {1.01171875f, 0x3f82},
                              {FLT_TRUE_MIN, 0x0000}, {-0.0f, 0x8000}};
  for (const Edge& e : edges) {
    CHECK(t.narrow(e.value) == e.want, "%s: %.9g gave 0x%04x, want 0x%04x", t.name, double(e.value),
          t.narrow(e.value), e.want);
  }
  CHECK(is_nan(t, t.narrow(NAN)) && is_nan(t, t.narrow(-NAN)));
}

// What `rank`, member m of a group of n, sends at element i of a half sum in call `call`: a
// value the type holds exactly, and sums that are exact in float in any order, so that MPI's
// order cannot change them. Most elements: one member (i % n) sends a big value, the others
// multiples of a quarter of its ulp, so that a sum rounded at each step (as a pairwise MPI_Op
// would) often differs from the sum rounded once. Then ties, overflow, inf, NaN, subnormals.
float half_term(const HalfType& t, int32_t rank, uint64_t m, uint64_t n, int call, uint64_t i) {
  uint64_t h = (uint64_t(rank) * 7919u + i * 104729u + uint64_t(call) * 15485863u) % 1000003u;
  const int bits = t.mantissa_bits;
  const bool f16 = t.dtype == FLOWC_COMM_F16;
  const float sign = (h >> 7) & 1u ? -1.0f : 1.0f;
  switch (i % 16) {
    case 0:  // 1 + (n - 1) half ulps: rounded once it moves, at each step it stays 1 (a tie to even)
      return m == 0 ? 1.0f : std::ldexp(1.0f, -bits - 1);
    case 1: {  // the largest finite value + (n - 1) quarter ulps: inf from three members, rounded once
      float largest = t.widen(uint16_t(t.inf - 1));
      return m == 0 ? largest : std::ldexp(largest - t.widen(uint16_t(t.inf - 2)), -2);
    }
    case 2: return m == i % n ? INFINITY : float(h % 5);  // inf from one member
    case 3: return m == 0 ? NAN : float(h % 5);            // NaN from one
    case 4: return m == 0 ? INFINITY : m == 1 ? -INFINITY : 1.0f;  // inf - inf: NaN
    case 5:  // subnormals, summed into subnormals and small normals
      return sign * std::ldexp(float(h % (m == i % n ? 1u << bits : 16u)), f16 ? -24 : -133);
    default: {
      int exponent = f16 ? int(i % 11) - 5 : int(i % 61) - 30;
      if (m == i % n) return sign * std::ldexp(float((1u << bits) + h % (1u << bits)), exponent - bits);
      return float(int(h % 7) - 3) * std::ldexp(1.0f, exponent - bits - 2);
    }
  }
}

// One half all-reduce or reduce-scatter by one rank, checked bitwise against the group-order sum
// in float rounded once (any NaN for a NaN).
void check_half_sum(Communicator& comm, const std::vector<int32_t>& shape, const HalfType& t, Kind kind, int32_t axis,
                    uint64_t count, int call) {
  std::vector<int32_t> group = group_of(shape, comm.rank(), size_t(axis));
  uint64_t n = group.size(), me = 0;
  while (group[me] != comm.rank()) ++me;
  auto term = [&](uint64_t member, uint64_t at) {
    float value = half_term(t, group[member], member, n, call, at);
    uint16_t h = t.narrow(value);
    CHECK(std::isnan(value) || t.widen(h) == value, "%s cannot hold the test's %.9g", t.name, double(value));
    return h;
  };
  std::vector<uint16_t> send((kind == kAllReduce ? 1 : n) * count), recv(count + 1, 0xa5a5);
  for (uint64_t i = 0; i < send.size(); ++i) send[i] = term(me, i);
  flowc_status status = kind == kAllReduce ? comm.all_reduce(axis, t.dtype, send.data(), recv.data(), count)
                                           : comm.reduce_scatter(axis, t.dtype, send.data(), recv.data(), count);
  CHECK(!status, "rank %d %s %s axis %d: %s", comm.rank(), t.name, kKindNames[kind], axis,
        flowc_status_get_message(status));
  uint64_t stepwise_differs = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t at = (kind == kAllReduce ? 0 : me * count) + i;
    uint16_t stepwise = term(0, at);
    float sum = t.widen(stepwise);
    for (uint64_t m = 1; m < n; ++m) {
      float add = t.widen(term(m, at));
      sum += add;
      stepwise = t.narrow(t.widen(stepwise) + add);
    }
    uint16_t want = t.narrow(sum);
    bool nan = is_nan(t, want);
    CHECK(nan ? is_nan(t, recv[i]) : recv[i] == want,
          "rank %d %s %s axis %d count %llu element %llu: got 0x%04x (%.9g), want 0x%04x (%.9g)", comm.rank(),
          t.name, kKindNames[kind], axis, (unsigned long long)count, (unsigned long long)i, recv[i],
          double(t.widen(recv[i])), want, double(sum));
    stepwise_differs += !nan && stepwise != want;
  }
  CHECK(recv[count] == 0xa5a5, "rank %d %s %s wrote past its receive buffer", comm.rank(), t.name, kKindNames[kind]);
  // Else the test could not tell rounding once from rounding at each step.
  CHECK(n < 3 || count < 16 || stepwise_differs > 0, "%s: no element where the roundings differ", t.name);
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
    for (const HalfType* t : {&kF16, &kBF16}) {
      for (uint64_t count : {0, 1, 7, 1031}) {
        check_half_sum(comm, shape, *t, kAllReduce, axis, count, call++);
        check_half_sum(comm, shape, *t, kReduceScatter, axis, count, call++);
      }
    }
  }
  // Large enough that the local all_reduce splits the sum among members and tiles it.
  check_one(comm, shape, kAllReduce, 0, FLOWC_COMM_F32, 70001, call++, exact);
  check_half_sum(comm, shape, kF16, kAllReduce, 0, 70001, call++);
  check_half_sum(comm, shape, kBF16, kReduceScatter, 0, 20001, call++);
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
  CHECK(flowc_comm_all_reduce(&ctx, 0, flowc_comm_dtype(9), a, b, 1) == FLOWC_STATUS_INVALID_ARGUMENT);
  CHECK(ctx.error && std::strstr(ctx.error, "dtype 9 is not a flowc_comm_dtype"), "%s", ctx.error);
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
  check_conversions(kF16);
  check_conversions(kBF16);
  std::printf("f16, bf16: every value round-trips through float; every halfway point rounds to even\n");
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
