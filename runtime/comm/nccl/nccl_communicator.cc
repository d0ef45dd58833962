#include "runtime/comm/nccl/nccl_communicator.h"

#include <cstdlib>

#ifdef FLOWC_WITH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <vector>

#include "runtime/base/log.h"
#include "runtime/comm/mpi/mpi_communicator.h"
#include "runtime/device/cuda/cuda_device.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 18, 0)
#error "flowc's NCCL communicator needs NCCL 2.18 or newer (ncclCommSplit): pip install \"flowc[cuda]\""
#endif

namespace flowc {

namespace {

using Prepare = std::function<flowc_status(int32_t rank, int32_t local_rank, int32_t* out_ordinal)>;

// `where` names the rank and the call: "rank 1: ncclAllReduce on mesh axis 0".
flowc_status nccl_failure(const std::string& where, ncclResult_t result, ncclComm_t comm) {
  const char* last = ncclGetLastError(comm);  // this thread's last NCCL error; comm may be null
  bool detail = last && *last;
  // Arguments are checked before NCCL sees them: NCCL refusing them is flowc's bug.
  bool flowc_bug = result == ncclInternalError || result == ncclInvalidArgument || result == ncclInvalidUsage;
  return flowc_status_make(flowc_bug ? FLOWC_STATUS_INTERNAL : FLOWC_STATUS_UNAVAILABLE, "%s: %s%s%s%s", where.c_str(),
                           ncclGetErrorString(result), detail ? " (" : "", detail ? last : "", detail ? ")" : "");
}

flowc_status cuda_failure(int32_t rank, const char* call, int32_t ordinal, cudaError_t error) {
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "rank %d: %s on GPU %d for NCCL failed: %s (%s)", rank, call,
                           ordinal, cudaGetErrorString(error), cudaGetErrorName(error));
}

flowc_status no_stream(int32_t rank) {
  return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                           "rank %d: the nccl communicator runs collectives on GPU memory; this step has no CUDA "
                           "stream (a model compiled for cpu? use FLOWC_COMM=local or mpi)",
                           rank);
}

ncclDataType_t nccl_type(flowc_comm_dtype dtype) {
  switch (dtype) {
    case FLOWC_COMM_F32: return ncclFloat32;
    case FLOWC_COMM_F64: return ncclFloat64;
    case FLOWC_COMM_I32: return ncclInt32;
    case FLOWC_COMM_I64: return ncclInt64;
  }
  return ncclUint8;  // not reached: Communicator checks the dtype of a reduction
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Mesh& mesh, int32_t rank, int32_t ordinal, int32_t on_host, ncclComm_t world)
      : Communicator(mesh, rank), ordinal_(ordinal), on_host_(on_host), world_(world) {}

  ~NcclCommunicator() override {
    CurrentDevice current(ordinal_);
    // Those split from the world before it; a 1-D mesh's axis is the world itself.
    for (ncclComm_t comm : axes_) {
      if (comm != world_) ncclCommDestroy(comm);
    }
    ncclCommDestroy(world_);
  }

  // One communicator per mesh axis. Collective over the world, with this GPU current.
  flowc_status split_axes() {
    if (mesh().num_axes() == 1) {
      axes_.push_back(world_);
      return nullptr;
    }
    for (int32_t a = 0; a < mesh().num_axes(); ++a) {
      ncclComm_t comm = nullptr;
      ncclResult_t result = ncclCommSplit(world_, mesh().group_index(rank(), a), coords()[a], &comm, nullptr);
      if (result != ncclSuccess) {
        return nccl_failure("rank " + std::to_string(rank()) + ": ncclCommSplit for mesh axis " + std::to_string(a),
                            result, world_);
      }
      axes_.push_back(comm);
    }
    return nullptr;
  }

  const char* name() const override { return "nccl"; }
  int32_t ranks_on_host() const override { return on_host_; }

 protected:
  flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                          uint64_t count, void* stream) override {
    if (!stream) return no_stream(rank());
    CurrentDevice current(ordinal_);
    if (current.error()) return cuda_failure(rank(), "cudaSetDevice", ordinal_, cudaError_t(current.error()));
    ncclComm_t comm = axes_[size_t(axis)];
    auto cuda_stream = static_cast<cudaStream_t>(stream);
    ncclResult_t result = ncclSuccess;
    const char* call = "";
    switch (op) {
      case Op::kAllReduce:
        call = "ncclAllReduce";
        result = ncclAllReduce(send, recv, size_t(count), nccl_type(dtype), ncclSum, comm, cuda_stream);
        break;
      case Op::kAllGather:
        call = "ncclAllGather";
        result = ncclAllGather(send, recv, size_t(count), ncclUint8, comm, cuda_stream);
        break;
      case Op::kReduceScatter:
        call = "ncclReduceScatter";
        result = ncclReduceScatter(send, recv, size_t(count), nccl_type(dtype), ncclSum, comm, cuda_stream);
        break;
      case Op::kAllToAll:
        call = "ncclSend/ncclRecv (all_to_all)";
        result = all_to_all(comm, mesh().shape()[size_t(axis)], static_cast<const char*>(send),
                            static_cast<char*>(recv), size_t(count), cuda_stream);
        break;
    }
    if (result == ncclSuccess) return nullptr;
    return nccl_failure("rank " + std::to_string(rank()) + ": " + call + " on mesh axis " + std::to_string(axis),
                        result, comm);
  }

  flowc_status copy(void* recv, const void* send, uint64_t bytes, void* stream) override {
    if (!stream) return no_stream(rank());
    CurrentDevice current(ordinal_);
    auto error = cudaError_t(current.error());
    if (error != cudaSuccess) return cuda_failure(rank(), "cudaSetDevice", ordinal_, error);
    error = cudaMemcpyAsync(recv, send, size_t(bytes), cudaMemcpyDefault, static_cast<cudaStream_t>(stream));
    return error != cudaSuccess ? cuda_failure(rank(), "cudaMemcpyAsync", ordinal_, error) : nullptr;
  }

 private:
  // Block p to member p and block p from it, as one group: any NCCL with send/recv (2.7 on) runs
  // it, where ncclAlltoAll is recent.
  static ncclResult_t all_to_all(ncclComm_t comm, int32_t members, const char* send, char* recv, size_t block,
                                 cudaStream_t stream) {
    ncclResult_t result = ncclGroupStart();
    if (result != ncclSuccess) return result;
    for (int32_t p = 0; p < members && result == ncclSuccess; ++p) {
      result = ncclSend(send + size_t(p) * block, block, ncclUint8, p, comm, stream);
      if (result == ncclSuccess) result = ncclRecv(recv + size_t(p) * block, block, ncclUint8, p, comm, stream);
    }
    ncclResult_t ended = ncclGroupEnd();  // closes the group even after a failed call in it
    return result != ncclSuccess ? result : ended;
  }

  const int32_t ordinal_;
  const int32_t on_host_;
  ncclComm_t world_;
  std::vector<ncclComm_t> axes_;  // [mesh axis]
};

// What rank 0 hands out under MPI: its NCCL id, or why it has none, so that no rank waits for it.
struct IdMessage {
  ncclResult_t result;
  ncclUniqueId id;
};

// Under an MPI launcher: an MPI communicator agrees on `prepare_rank` and hands out rank 0's id.
// When MPI never starts (a runtime built without it) and `env_has_address` (NCCL_COMM_ID or
// MASTER_ADDR is set), *out_use_env says to bootstrap from the environment instead.
flowc_status bootstrap_through_mpi(const Mesh& mesh, const std::function<flowc_status(int32_t)>& prepare_rank,
                                   bool env_has_address, int32_t* out_rank, int32_t* out_on_host,
                                   ncclUniqueId* out_id, bool* out_use_env) {
  bool prepared = false;
  std::unique_ptr<Communicator> host;
  flowc_status status = create_mpi_communicator(
      mesh,
      [&](int32_t rank) {
        prepared = true;
        return prepare_rank(rank);
      },
      &host);
  if (status && !prepared) {
    if (env_has_address) {
      FLOWC_LOG(FLOWC_LOG_INFO, "%s; NCCL bootstraps from NCCL_COMM_ID or MASTER_ADDR instead",
                flowc_status_get_message(status));
      flowc_status_free(status);
      *out_use_env = true;
      return nullptr;
    }
    flowc_status named = flowc_status_make(
        flowc_status_get_code(status),
        "%s; or set NCCL_COMM_ID=host:port (rank 0's host and a free port) on every rank, for NCCL to "
        "bootstrap without MPI",
        flowc_status_get_message(status));
    flowc_status_free(status);
    return named;
  }
  FLOWC_RETURN_IF_ERROR(status);
  IdMessage message{};
  if (host->rank() == 0) message.result = ncclGetUniqueId(&message.id);
  FLOWC_RETURN_IF_ERROR(broadcast_from_first(*host, &message, sizeof message));
  if (message.result != ncclSuccess) {
    return nccl_failure("rank " + std::to_string(host->rank()) + ": ncclGetUniqueId on rank 0", message.result,
                        nullptr);
  }
  *out_rank = host->rank();
  *out_on_host = host->ranks_on_host();
  *out_id = message.id;
  return nullptr;
}

// The world communicator on GPU `ordinal` and those of the mesh axes; the caller's GPU stays current.
flowc_status start_nccl(const Mesh& mesh, int32_t rank, int32_t ordinal, int32_t on_host, const ncclUniqueId& id,
                        std::unique_ptr<Communicator>* out_comm) {
  CurrentDevice current(ordinal);
  if (current.error()) return cuda_failure(rank, "cudaSetDevice", ordinal, cudaError_t(current.error()));
  ncclComm_t world = nullptr;
  ncclResult_t result = ncclCommInitRank(&world, mesh.size(), id, rank);
  if (result != ncclSuccess) {
    flowc_status failure = nccl_failure("rank " + std::to_string(rank) + ": ncclCommInitRank on GPU " +
                                            std::to_string(ordinal) + " (" + std::to_string(mesh.size()) + " ranks)",
                                        result, nullptr);
    if (result != ncclInvalidUsage) return failure;
    // Mostly "Duplicate GPU detected": more ranks on a host than GPUs, which NCCL refuses.
    flowc_status named = flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                           "%s; NCCL needs a GPU of its own for each rank: with fewer GPUs than "
                                           "ranks on a host, use FLOWC_COMM=mpi or local",
                                           flowc_status_get_message(failure));
    flowc_status_free(failure);
    return named;
  }
  // It owns the world from here, so a failed split frees what was made.
  auto comm = std::make_unique<NcclCommunicator>(mesh, rank, ordinal, on_host, world);
  FLOWC_RETURN_IF_ERROR(comm->split_axes());
  *out_comm = std::move(comm);
  return nullptr;
}

}  // namespace

flowc_status create_nccl_communicator(const Mesh& mesh, const Prepare& prepare,
                                      std::unique_ptr<Communicator>* out_comm) {
  out_comm->reset();
  const Getenv getenv = [](const char* name) -> const char* { return std::getenv(name); };
  LaunchEnv env;
  FLOWC_RETURN_IF_ERROR(read_launch_env(getenv, &env));
  if (env.world_size != mesh.size()) {
    std::string ranks = mesh.num_axes() > 1 ? mesh.describe() + " = " + std::to_string(mesh.size())
                                            : std::to_string(mesh.size());
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "the model was compiled for a mesh of %s ranks, but the launcher (%s) started %d "
                             "process%s: start %d, one per GPU",
                             ranks.c_str(), env.launcher, env.world_size, env.world_size == 1 ? "" : "es",
                             mesh.size());
  }
  int32_t rank = env.rank, on_host = env.local_size, ordinal = -1;
  auto prepare_rank = [&](int32_t r) -> flowc_status {
    FLOWC_RETURN_IF_ERROR(prepare(r, env.local_rank, &ordinal));
    if (ordinal >= 0) return nullptr;
    return flowc_status_make(FLOWC_STATUS_INTERNAL, "rank %d: preparing the rank chose no GPU for NCCL", r);
  };
  ncclUniqueId id;
  bool use_env = !launched_by_mpi();
  if (!use_env) {
    bool env_has_address = launch_variable(getenv, "NCCL_COMM_ID") || launch_variable(getenv, "MASTER_ADDR");
    FLOWC_RETURN_IF_ERROR(bootstrap_through_mpi(mesh, prepare_rank, env_has_address, &rank, &on_host, &id, &use_env));
  }
  if (!use_env) return start_nccl(mesh, rank, ordinal, on_host, id, out_comm);

  std::string address;
  FLOWC_RETURN_IF_ERROR(nccl_bootstrap_address(getenv, &address));
  FLOWC_RETURN_IF_ERROR(prepare_rank(rank));
  // With NCCL_COMM_ID set, ncclGetUniqueId gives every rank the same id (that address and a fixed
  // magic) without starting a root, and rank 0's ncclCommInitRank starts the root there (NCCL's
  // src/bootstrap.cc, bootstrapGetUniqueId; src/init.cc). Set by us, it is unset again after:
  // left set, every later NCCL id in this process (PyTorch's, say) would point at our root.
  bool ours = !launch_variable(getenv, "NCCL_COMM_ID");
  if (ours) setenv("NCCL_COMM_ID", address.c_str(), 1);
  ncclResult_t result = ncclGetUniqueId(&id);
  flowc_status status =
      result == ncclSuccess ? start_nccl(mesh, rank, ordinal, on_host, id, out_comm)
                            : nccl_failure("rank " + std::to_string(rank) + ": ncclGetUniqueId for NCCL_COMM_ID=" +
                                               address,
                                           result, nullptr);
  if (ours) unsetenv("NCCL_COMM_ID");
  return status;
}

}  // namespace flowc

#else  // !FLOWC_WITH_NCCL

namespace flowc {

flowc_status create_nccl_communicator(const Mesh&,
                                      const std::function<flowc_status(int32_t, int32_t, int32_t*)>&,
                                      std::unique_ptr<Communicator>* out_comm) {
  out_comm->reset();
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                           "the NCCL communicator is missing: flowc's runtime was built without NCCL; pip install "
                           "\"flowc[cuda]\" (nvidia-nccl-cu13) or install NCCL, and rebuild the model's project");
}

}  // namespace flowc

#endif  // FLOWC_WITH_NCCL
