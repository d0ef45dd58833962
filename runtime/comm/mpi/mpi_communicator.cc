#include "runtime/comm/mpi/mpi_communicator.h"

#include <cstdlib>

#ifdef FLOWC_WITH_MPI

// The C API only: the C++ bindings (deprecated, and in a library we do not link) stay out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "runtime/base/log.h"
#include "runtime/comm/half.h"

namespace flowc {

namespace {

std::mutex init_mu;
// Below MPI_THREAD_MULTIPLE, MPI takes one call at a time: then every call flowc makes holds
// this lock (so two models in one process must not run collectives at once).
std::atomic<bool> serialized{false};
std::mutex call_mu;

std::unique_lock<std::mutex> mpi_lock() {
  return serialized.load() ? std::unique_lock<std::mutex>(call_mu) : std::unique_lock<std::mutex>();
}

flowc_status mpi_failure(int code, const char* what) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = std::snprintf(text, sizeof text, "code %d", code);
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "%s failed: %.*s", what, length, text);
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
  }
  return "an unknown thread level";
}

flowc_status ensure_initialized() {
  std::lock_guard<std::mutex> lock(init_mu);
  int initialized = 0, finalized = 0, provided = MPI_THREAD_SINGLE;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "MPI was finalized in this process and cannot start again");
  }
  if (!initialized) {
    int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (code != MPI_SUCCESS) return mpi_failure(code, "MPI_Init_thread");
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    // Calls come from the comm stream's thread, one at a time: works with the common MPIs.
    FLOWC_LOG(FLOWC_LOG_WARN,
              "MPI runs at %s, but flowc calls it from its comm stream's thread; initialise MPI with "
              "MPI_Init_thread(MPI_THREAD_MULTIPLE) (or SERIALIZED)",
              thread_level_name(provided));
  }
  serialized = provided < MPI_THREAD_MULTIPLE;
  return nullptr;
}

MPI_Datatype mpi_type(flowc_comm_dtype dtype) {
  switch (dtype) {
    case FLOWC_COMM_F32: return MPI_FLOAT;
    case FLOWC_COMM_F64: return MPI_DOUBLE;
    case FLOWC_COMM_I32: return MPI_INT32_T;
    case FLOWC_COMM_I64: return MPI_INT64_T;
    case FLOWC_COMM_F16:
    case FLOWC_COMM_BF16: return MPI_FLOAT;  // summed widened: MpiCommunicator::widen
  }
  return MPI_DATATYPE_NULL;
}

bool is_half(flowc_comm_dtype dtype) { return dtype == FLOWC_COMM_F16 || dtype == FLOWC_COMM_BF16; }

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const Mesh& mesh, int32_t rank, MPI_Comm world, std::vector<MPI_Comm> axes, int32_t on_host)
      : Communicator(mesh, rank), world_(world), axes_(std::move(axes)), on_host_(on_host) {}

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    auto lock = mpi_lock();
    for (MPI_Comm& comm : axes_) MPI_Comm_free(&comm);
    MPI_Comm_free(&world_);
  }

  const char* name() const override { return "mpi"; }
  int32_t ranks_on_host() const override { return on_host_; }

 protected:
  flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                          uint64_t count, void*) override {
    MPI_Comm comm = axes_[size_t(axis)];
    if (op != Op::kAllReduce && count > uint64_t(INT_MAX)) {
      return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE,
                               "rank %d: %s on mesh axis %d: %llu %s per block is more than MPI takes in one call",
                               rank(), op_name(op), axis, (unsigned long long)count,
                               op == Op::kReduceScatter ? "elements" : "bytes");
    }
    // A half type is summed in its float copy, in place, and narrowed into recv after (see widen).
    const bool half = is_half(dtype);
    if (half) FLOWC_RETURN_IF_ERROR(widen(op, axis, dtype, send, count));
    void* sum = half ? static_cast<void*>(widened_.get()) : recv;
    auto lock = mpi_lock();
    int code = MPI_SUCCESS;
    switch (op) {
      case Op::kAllReduce: {
        // MPI counts are ints: a larger reduction goes in pieces.
        size_t element = half ? sizeof(float) : comm_dtype_size(dtype);
        for (uint64_t done = 0; done < count && code == MPI_SUCCESS; done += uint64_t(INT_MAX)) {
          int n = int(std::min<uint64_t>(count - done, uint64_t(INT_MAX)));
          code = MPI_Allreduce(half ? MPI_IN_PLACE : static_cast<const char*>(send) + done * element,
                               static_cast<char*>(sum) + done * element, n, mpi_type(dtype), MPI_SUM, comm);
        }
        break;
      }
      case Op::kReduceScatter:
        if (count) {
          code = MPI_Reduce_scatter_block(half ? MPI_IN_PLACE : send, sum, int(count), mpi_type(dtype), MPI_SUM,
                                          comm);
        }
        break;
      case Op::kAllGather:
        if (count) code = MPI_Allgather(send, int(count), MPI_BYTE, recv, int(count), MPI_BYTE, comm);
        break;
      case Op::kAllToAll:
        if (count) code = MPI_Alltoall(send, int(count), MPI_BYTE, recv, int(count), MPI_BYTE, comm);
        break;
    }
    if (code == MPI_SUCCESS) {
      if (lock.owns_lock()) lock.unlock();
      if (half) narrow(dtype, recv, count);
      return nullptr;
    }
    flowc_status failure = mpi_failure(code, op_name(op));
    flowc_status named = flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "rank %d: mesh axis %d: %s", rank(), axis,
                                           flowc_status_get_message(failure));
    flowc_status_free(failure);
    return named;
  }

 private:
  // f16 and bf16, which MPI lacks, are summed as floats and rounded once, so that MPI gives the
  // local communicator's (and the reference's) result up to its order of summation. Summing the
  // 16-bit values through a user-defined MPI_Op would move half the bytes but round at every
  // step of MPI's reduction tree; this is a host path, where accuracy is the point.
  flowc_status widen(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, uint64_t count) {
    uint64_t total = op == Op::kAllReduce ? count : count * uint64_t(mesh().shape()[size_t(axis)]);
    if (total > widened_size_) {
      widened_.reset(new (std::nothrow) float[total]);
      widened_size_ = widened_ ? total : 0;
      if (!widened_) {
        return flowc_status_make(FLOWC_STATUS_RESOURCE_EXHAUSTED,
                                 "rank %d: %s on mesh axis %d: no memory for the %llu floats that %s is summed in",
                                 rank(), op_name(op), axis, (unsigned long long)total, comm_dtype_name(dtype));
      }
    }
    float (*to_float)(uint16_t) = dtype == FLOWC_COMM_F16 ? f16_to_float : bf16_to_float;
    auto in = static_cast<const uint16_t*>(send);
    for (uint64_t i = 0; i < total; ++i) widened_[i] = to_float(in[i]);
    return nullptr;
  }

  // The first `count` floats of the sum (all of it, or this member's block), rounded into recv.
  void narrow(flowc_comm_dtype dtype, void* recv, uint64_t count) const {
    uint16_t (*from_float)(float) = dtype == FLOWC_COMM_F16 ? float_to_f16 : float_to_bf16;
    auto out = static_cast<uint16_t*>(recv);
    for (uint64_t i = 0; i < count; ++i) out[i] = from_float(widened_[i]);
  }

  MPI_Comm world_;
  std::vector<MPI_Comm> axes_;
  int32_t on_host_;
  std::unique_ptr<float[]> widened_;  // kept for the next call: one thread at a time calls a rank
  uint64_t widened_size_ = 0;
};

}  // namespace

flowc_status create_mpi_communicator(const Mesh& mesh, const std::function<flowc_status(int32_t rank)>& prepare,
                                     std::unique_ptr<Communicator>* out_comm) {
  out_comm->reset();
  FLOWC_RETURN_IF_ERROR(ensure_initialized());
  int size = 0, rank = 0;
  {
    auto lock = mpi_lock();
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
  if (size != mesh.size()) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "the model's mesh %s has %d ranks, but MPI_COMM_WORLD has %d process%s: launch it "
                             "with mpirun -np %d",
                             mesh.describe().c_str(), mesh.size(), size, size == 1 ? "" : "es", mesh.size());
  }
  flowc_status prepared = prepare(rank);
  auto lock = mpi_lock();
  // A communicator of our own, so that our collectives never match the application's.
  MPI_Comm world = MPI_COMM_NULL;
  int code = MPI_Comm_dup(MPI_COMM_WORLD, &world);
  if (code != MPI_SUCCESS) {
    flowc_status_free(prepared);
    return mpi_failure(code, "MPI_Comm_dup");
  }
  MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
  std::vector<MPI_Comm> axes;
  auto give_up = [&](flowc_status status) {
    for (MPI_Comm& comm : axes) MPI_Comm_free(&comm);
    MPI_Comm_free(&world);
    return status;
  };
  int first_unready = INT_MAX, mine = prepared ? rank : INT_MAX;
  code = MPI_Allreduce(&mine, &first_unready, 1, MPI_INT, MPI_MIN, world);
  if (code != MPI_SUCCESS) {
    flowc_status_free(prepared);
    return give_up(mpi_failure(code, "MPI_Allreduce"));
  }
  if (prepared) return give_up(prepared);
  if (first_unready != INT_MAX) {
    // The rank that gave up reports its own reason; the others say which one it was.
    return give_up(flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                                     "MPI rank %d could not load the model (its own error says why), so no rank does",
                                     first_unready));
  }
  std::vector<int32_t> coords = mesh.coords(rank);
  for (int32_t a = 0; a < mesh.num_axes(); ++a) {
    MPI_Comm comm = MPI_COMM_NULL;
    code = MPI_Comm_split(world, mesh.group_index(rank, a), coords[size_t(a)], &comm);
    if (code != MPI_SUCCESS) return give_up(mpi_failure(code, "MPI_Comm_split"));
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    axes.push_back(comm);
  }
  MPI_Comm host = MPI_COMM_NULL;
  int on_host = 1;
  if (MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &host) == MPI_SUCCESS) {
    MPI_Comm_size(host, &on_host);
    MPI_Comm_free(&host);
  }
  *out_comm = std::make_unique<MpiCommunicator>(mesh, rank, world, std::move(axes), on_host);
  return nullptr;
}

}  // namespace flowc

#else  // !FLOWC_WITH_MPI

namespace flowc {

flowc_status create_mpi_communicator(const Mesh&, const std::function<flowc_status(int32_t rank)>&,
                                     std::unique_ptr<Communicator>* out_comm) {
  out_comm->reset();
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                           "the MPI communicator is missing: flowc's runtime was built without MPI: install "
                           "libopenmpi-dev (and openmpi-bin for mpirun) and recompile");
}

}  // namespace flowc

#endif  // FLOWC_WITH_MPI

namespace flowc {

bool launched_by_mpi() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE"); }

}  // namespace flowc
