#include "runtime/comm/local/local_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/base/spin.h"
#include "runtime/comm/half.h"

namespace flowc {

namespace {

using Clock = std::chrono::steady_clock;

// A member waits for the others this long on the CPU before it sleeps: they are usually
// microseconds behind, and a wake-up costs tens of them. Only when every rank can have a core
// (else the spinner holds up the very rank it waits for), and not with FLOWC_SPIN_US=0 (as for
// the thread pool: hosts whose cores other work needs).
constexpr int64_t kSpinNs = 20000;
// Reductions sum this many bytes of the result at a time, so it stays in L1 across members.
constexpr uint64_t kTileBytes = 16384;

int64_t spin_ns(int32_t ranks) {
  const char* value = std::getenv("FLOWC_SPIN_US");
  if (value && std::strcmp(value, "0") == 0) return 0;
  return ranks <= int32_t(std::thread::hardware_concurrency()) ? kSpinNs : 0;
}

// What one member asked for.
struct Entry {
  int32_t op;
  flowc_comm_dtype dtype;
  uint64_t count;
  const void* send;
  void* recv;
};

// One group's meeting point. Members call collectives in one order, so every member's k-th call
// is the same collective; `gathered` and `finished` count them.
struct Rendezvous {
  explicit Rendezvous(std::vector<int32_t> members) : ranks(std::move(members)), entries(ranks.size()) {}

  const std::vector<int32_t> ranks;  // in group order
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Entry> entries;
  int32_t arrived = 0;
  int32_t left = 0;
  std::atomic<uint64_t> gathered{0};  // collectives every member has entered
  std::atomic<uint64_t> finished{0};  // collectives every member is done with
  std::string mismatch;               // why the last gathered one cannot run; empty when it can
};

struct World {
  Mesh mesh;
  int64_t spin_ns;
  std::vector<std::vector<std::unique_ptr<Rendezvous>>> groups;  // [axis][Mesh::group_index]
};

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<World> world, int32_t rank) : Communicator(world->mesh, rank), world_(world) {
    for (int32_t a = 0; a < world->mesh.num_axes(); ++a) {
      groups_.push_back(world->groups[size_t(a)][size_t(world->mesh.group_index(rank, a))].get());
      member_.push_back(coords()[a]);
    }
  }

  const char* name() const override { return "local"; }
  int32_t ranks_on_host() const override { return mesh().size(); }

 protected:
  flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                          uint64_t count, void* stream) override;  // host memory: no stream

 private:
  void wait_past(Rendezvous& group, std::unique_lock<std::mutex>& lock, const std::atomic<uint64_t>& counter,
                 uint64_t k) const;
  std::string mismatch(const Rendezvous& group, int32_t axis, uint64_t k) const;

  std::shared_ptr<World> world_;
  std::vector<Rendezvous*> groups_;  // per axis: the group this rank is in
  std::vector<int32_t> member_;      // per axis: its place in that group
};

// Until `counter` passes k: a short spin, then sleep on the group's condition variable.
void LocalCommunicator::wait_past(Rendezvous& group, std::unique_lock<std::mutex>& lock,
                                  const std::atomic<uint64_t>& counter, uint64_t k) const {
  if (world_->spin_ns > 0) {
    lock.unlock();
    Clock::time_point deadline = Clock::now() + std::chrono::nanoseconds(world_->spin_ns);
    for (int i = 1; counter.load(std::memory_order_acquire) <= k; ++i) {
      cpu_relax();
      if (i % 64 == 0 && Clock::now() > deadline) break;
    }
    lock.lock();
  }
  group.cv.wait(lock, [&] { return counter.load(std::memory_order_relaxed) > k; });
}

// Empty when every member asked for the same collective; else what differs, by rank.
std::string LocalCommunicator::mismatch(const Rendezvous& group, int32_t axis, uint64_t k) const {
  auto describe = [](const Entry& e) {
    bool reduces = Op(e.op) == Op::kAllReduce || Op(e.op) == Op::kReduceScatter;
    return std::string(op_name(Op(e.op))) + " of " + std::to_string(e.count) +
           (reduces ? std::string(" ") + comm_dtype_name(e.dtype) : std::string(" bytes per block"));
  };
  const Entry& first = group.entries[0];
  for (size_t i = 1; i < group.entries.size(); ++i) {
    const Entry& e = group.entries[i];
    if (e.op == first.op && e.dtype == first.dtype && e.count == first.count) continue;
    return "collective #" + std::to_string(k) + " on mesh axis " + std::to_string(axis) +
           " differs between ranks: rank " + std::to_string(group.ranks[0]) + " calls " + describe(first) +
           ", rank " + std::to_string(group.ranks[i]) + " calls " + describe(e);
  }
  return {};
}

// dst[0, len) = the sum over members, in group order, of their send at element `offset`. Integer
// sums wrap (as unsigned), so garbage from a failed request cannot overflow into undefined behaviour.
template <typename T>
void sum_members(T* dst, const std::vector<Entry>& entries, uint64_t offset, uint64_t len) {
  const uint64_t tile = kTileBytes / sizeof(T);
  for (uint64_t begin = 0; begin < len; begin += tile) {
    uint64_t n = std::min(tile, len - begin);
    T* out = dst + begin;
    std::memcpy(out, static_cast<const T*>(entries[0].send) + offset + begin, n * sizeof(T));
    for (size_t i = 1; i < entries.size(); ++i) {
      const T* src = static_cast<const T*>(entries[i].send) + offset + begin;
      for (uint64_t j = 0; j < n; ++j) out[j] = out[j] + src[j];
    }
  }
}

// The same for a half type: the members' values widened to float, summed in group order, and
// rounded once at the end, as the reference computes half sums.
template <float (*widen)(uint16_t), uint16_t (*narrow)(float)>
void sum_members_half(uint16_t* dst, const std::vector<Entry>& entries, uint64_t offset, uint64_t len) {
  constexpr uint64_t tile = kTileBytes / sizeof(float);
  float sum[tile];
  for (uint64_t begin = 0; begin < len; begin += tile) {
    uint64_t n = std::min(tile, len - begin);
    const uint16_t* first = static_cast<const uint16_t*>(entries[0].send) + offset + begin;
    for (uint64_t j = 0; j < n; ++j) sum[j] = widen(first[j]);
    for (size_t i = 1; i < entries.size(); ++i) {
      const uint16_t* src = static_cast<const uint16_t*>(entries[i].send) + offset + begin;
      for (uint64_t j = 0; j < n; ++j) sum[j] += widen(src[j]);
    }
    for (uint64_t j = 0; j < n; ++j) dst[begin + j] = narrow(sum[j]);
  }
}

void sum_members(flowc_comm_dtype dtype, void* dst, const std::vector<Entry>& entries, uint64_t offset,
                 uint64_t len) {
  switch (dtype) {
    case FLOWC_COMM_F32: return sum_members(static_cast<float*>(dst), entries, offset, len);
    case FLOWC_COMM_F64: return sum_members(static_cast<double*>(dst), entries, offset, len);
    case FLOWC_COMM_I32: return sum_members(static_cast<uint32_t*>(dst), entries, offset, len);
    case FLOWC_COMM_I64: return sum_members(static_cast<uint64_t*>(dst), entries, offset, len);
    case FLOWC_COMM_F16:
      return sum_members_half<f16_to_float, float_to_f16>(static_cast<uint16_t*>(dst), entries, offset, len);
    case FLOWC_COMM_BF16:
      return sum_members_half<bf16_to_float, float_to_bf16>(static_cast<uint16_t*>(dst), entries, offset, len);
  }
}

flowc_status LocalCommunicator::collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send,
                                           void* recv, uint64_t count, void*) {
  Rendezvous& group = *groups_[size_t(axis)];
  const int32_t n = int32_t(group.ranks.size());
  const int32_t m = member_[size_t(axis)];
  std::unique_lock<std::mutex> lock(group.mu);
  // This member finished every earlier collective of the group, and none finishes without it.
  const uint64_t k = group.finished.load(std::memory_order_relaxed);
  group.entries[size_t(m)] = {int32_t(op), dtype, count, send, recv};
  if (++group.arrived == n) {
    group.arrived = 0;
    group.mismatch = mismatch(group, axis, k);
    group.gathered.store(k + 1, std::memory_order_release);
    group.cv.notify_all();
  } else {
    wait_past(group, lock, group.gathered, k);
  }
  std::string failure = group.mismatch;
  lock.unlock();

  // Each member writes only its own receive buffer, but for all_reduce, where member m sums
  // chunk m of the result and copies it to every member: the work is shared, not repeated.
  const std::vector<Entry>& entries = group.entries;
  if (failure.empty()) {
    auto* out = static_cast<uint8_t*>(recv);
    switch (op) {
      case Op::kAllReduce: {
        uint64_t element = comm_dtype_size(dtype);
        uint64_t align = 64 / element;  // chunks start on cache lines: no false sharing
        uint64_t chunk = ((count + uint64_t(n) - 1) / uint64_t(n) + align - 1) / align * align;
        uint64_t begin = std::min(count, uint64_t(m) * chunk), end = std::min(count, begin + chunk);
        if (begin < end) {
          sum_members(dtype, out + begin * element, entries, begin, end - begin);
          for (int32_t i = 0; i < n; ++i) {
            if (i == m) continue;
            std::memcpy(static_cast<uint8_t*>(entries[size_t(i)].recv) + begin * element, out + begin * element,
                        size_t((end - begin) * element));
          }
        }
        break;
      }
      case Op::kReduceScatter:
        if (count) sum_members(dtype, out, entries, uint64_t(m) * count, count);
        break;
      case Op::kAllGather:
        for (int32_t i = 0; i < n && count; ++i) {
          std::memcpy(out + uint64_t(i) * count, entries[size_t(i)].send, size_t(count));
        }
        break;
      case Op::kAllToAll:
        for (int32_t i = 0; i < n && count; ++i) {
          std::memcpy(out + uint64_t(i) * count,
                      static_cast<const uint8_t*>(entries[size_t(i)].send) + uint64_t(m) * count, size_t(count));
        }
        break;
    }
  }

  lock.lock();
  if (++group.left == n) {
    group.left = 0;
    group.finished.store(k + 1, std::memory_order_release);
    group.cv.notify_all();
  } else {
    wait_past(group, lock, group.finished, k);
  }
  lock.unlock();
  if (failure.empty()) return nullptr;
  return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION, "rank %d: %s", rank(), failure.c_str());
}

}  // namespace

flowc_status create_local_communicators(const Mesh& mesh, std::vector<std::unique_ptr<Communicator>>* out_comms) {
  out_comms->clear();
  auto world = std::make_shared<World>();
  world->mesh = mesh;
  world->spin_ns = spin_ns(mesh.size());
  for (int32_t a = 0; a < mesh.num_axes(); ++a) {
    std::vector<std::unique_ptr<Rendezvous>> groups(size_t(mesh.num_groups(a)));
    for (int32_t r = 0; r < mesh.size(); ++r) {
      auto& group = groups[size_t(mesh.group_index(r, a))];
      if (!group) group = std::make_unique<Rendezvous>(mesh.group(r, a));
    }
    world->groups.push_back(std::move(groups));
  }
  for (int32_t r = 0; r < mesh.size(); ++r) out_comms->push_back(std::make_unique<LocalCommunicator>(world, r));
  return nullptr;
}

}  // namespace flowc
