#include "runtime/comm/nccl/nccl_communicator.h"

#include <cstdlib>

#ifdef FLOWC_WITH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <climits>
#include <string>
#include <thread>
#include <vector>

#include "runtime/base/log.h"
#include "runtime/comm/mpi/mpi_communicator.h"
#include "runtime/device/cuda/cuda_device.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 18, 0)
#error "flowc's NCCL communicator needs NCCL 2.18 or newer (ncclCommSplit): pip install \"flowc[cuda]\""
#endif

namespace flowc {

namespace {

using Clock = std::chrono::steady_clock;
using Place = std::function<flowc_status(int32_t rank, int32_t local_rank, int32_t* out_ordinal)>;

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
    case FLOWC_COMM_F16: return ncclFloat16;    // NCCL sums in the type itself, rounding at each step
    case FLOWC_COMM_BF16: return ncclBfloat16;
  }
  return ncclUint8;  // not reached: Communicator checks the dtype of a reduction
}

// Waits while non-blocking `comm` works in the background on the call that returned `result`,
// until `deadline`: NCCL's final result, or ncclInProgress when the deadline came first.
ncclResult_t wait_for(ncclComm_t comm, ncclResult_t result, Clock::time_point deadline) {
  for (int polls = 0; result == ncclInProgress && Clock::now() < deadline; ++polls) {
    if (!comm) return ncclInternalError;  // NCCL gave no communicator to ask
    // Spins at first (work done at once), then sleeps (an init, the other ranks still coming).
    if (polls < 1000) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    ncclResult_t polled = ncclCommGetAsyncError(comm, &result);
    if (polled != ncclSuccess) result = polled;
  }
  return result;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Mesh& mesh, int32_t rank, int32_t ordinal, int32_t on_host, int32_t timeout_s)
      : Communicator(mesh, rank),
        ordinal_(ordinal),
        on_host_(on_host),
        timeout_s_(timeout_s),
        axes_(size_t(mesh.num_axes()), nullptr) {}

  // The world is finalized within FLOWC_NCCL_TIMEOUT (its work done, NCCL's own streams idle),
  // and only then are the axes' communicators destroyed: they block, so they are aborted with
  // everything else where the world does not finish in time or any communicator reports an
  // error. An axis's collective that hangs without reporting an error may still hold its destroy.
  ~NcclCommunicator() override {
    CurrentDevice current(ordinal_);
    if (!aborted_ && !finished()) abort();
    if (!aborted_) {
      for (ncclComm_t comm : axes_) {  // split from the world: freed before it
        if (comm) ncclCommDestroy(comm);
      }
      if (world_) ncclCommDestroy(world_);  // finalized: frees what is left, without waiting
    }
    if (vote_stream_) cudaStreamDestroy(vote_stream_);
    cudaFree(vote_);
  }

  // NCCL's world communicator of `id`, one per mesh axis split from it, and what agree needs.
  // Collective over the world, with this GPU current; on failure, what was made is aborted.
  //
  // The world is non-blocking, so that every wait on it for the other ranks (its init, each
  // split, the agreement) ends by the deadline and can be aborted. The axes' communicators, which
  // carry the steps' collectives, block: recent NCCLs run each call on a non-blocking one through
  // a thread of its own. A 1-D mesh's axis is split from the world too, for that reason.
  flowc_status start(const ncclUniqueId& id) {
    CurrentDevice current(ordinal_);
    if (current.error()) return cuda_failure(rank(), "cudaSetDevice", ordinal_, cudaError_t(current.error()));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    std::string what = "ncclCommInitRank on GPU " + std::to_string(ordinal_) + " (" +
                       std::to_string(mesh().size()) + " ranks)";
    Clock::time_point until = deadline();
    ncclResult_t result = ncclCommInitRankConfig(&world_, mesh().size(), id, rank(), &config);
    result = wait_for(world_, result, until);  // world_ is set by the call above
    if (result != ncclSuccess) {
      flowc_status failure = failed(what, result, world_,
                                    "a rank did not start NCCL (its own error says why) or cannot reach this one");
      abort();
      if (result != ncclInvalidUsage) return failure;
      // Mostly "Duplicate GPU detected": more ranks on a host than GPUs, which NCCL refuses.
      flowc_status named = flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                             "%s; NCCL needs a GPU of its own for each rank: with fewer GPUs than "
                                             "ranks on a host, use FLOWC_COMM=mpi or local",
                                             flowc_status_get_message(failure));
      flowc_status_free(failure);
      return named;
    }
    flowc_status status = split_axes();
    cudaError_t error = cudaSuccess;
    if (!status && (error = cudaMalloc(&vote_, sizeof *vote_)) != cudaSuccess) {
      status = cuda_failure(rank(), "cudaMalloc (4 bytes for the agreement after loading)", ordinal_, error);
    }
    if (!status && (error = cudaStreamCreateWithFlags(&vote_stream_, cudaStreamNonBlocking)) != cudaSuccess) {
      status = cuda_failure(rank(), "cudaStreamCreate (for the agreement after loading)", ordinal_, error);
    }
    if (status) abort();
    return status;
  }

  // See agree_on_load.
  flowc_status agree(flowc_status loaded) {
    int32_t lowest = INT32_MAX;
    flowc_status voted = aborted_ ? flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                                      "rank %d: NCCL was aborted on this rank before the agreement "
                                                      "after loading",
                                                      rank())
                                  : vote(loaded ? rank() : INT32_MAX, &lowest);
    if (!voted && !loaded && lowest == INT32_MAX) return nullptr;
    abort();
    if (loaded) {
      flowc_status_free(voted);
      return loaded;
    }
    if (voted) return voted;
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: rank %d could not load the model (its own error says why), so no rank keeps it",
                             rank(), lowest);
  }

  // Every NCCL communicator made, without waiting for any other rank. NCCL's background work on
  // the world (its init, a split) ends first, so a split it finishes is aborted too.
  void abort() {
    if (aborted_) return;
    aborted_ = true;
    CurrentDevice current(ordinal_);
    if (world_) ncclCommAbort(world_);
    for (ncclComm_t comm : axes_) {
      if (comm) ncclCommAbort(comm);
    }
  }

  const char* name() const override { return "nccl"; }
  int32_t ranks_on_host() const override { return on_host_; }

 protected:
  flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                          uint64_t count, void* stream) override {
    if (!stream) return no_stream(rank());
    if (aborted_) {
      return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                               "rank %d: NCCL was aborted on this rank after an earlier failure; load the model again",
                               rank());
    }
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
  Clock::time_point deadline() const { return Clock::now() + std::chrono::seconds(timeout_s_); }

  // Whether every communicator can be destroyed without waiting for ever: none reports an error,
  // and the world's ncclCommFinalize ended within FLOWC_NCCL_TIMEOUT. Logs why not.
  bool finished() {
    for (size_t a = 0; a < axes_.size(); ++a) {
      ncclResult_t state = ncclSuccess;
      if (axes_[a]) ncclCommGetAsyncError(axes_[a], &state);
      if (state != ncclSuccess) {
        FLOWC_LOG(FLOWC_LOG_WARN, "rank %d: NCCL's communicator for mesh axis %zu reports %s; NCCL is aborted", rank(),
                  a, ncclGetErrorString(state));
        return false;
      }
    }
    if (!world_) return true;
    ncclResult_t result = wait_for(world_, ncclCommFinalize(world_), deadline());
    if (result == ncclInProgress) {
      FLOWC_LOG(FLOWC_LOG_WARN, "rank %d: ncclCommFinalize not done after %d s (FLOWC_NCCL_TIMEOUT); NCCL is aborted",
                rank(), timeout_s_);
    } else if (result != ncclSuccess) {
      FLOWC_LOG(FLOWC_LOG_WARN, "rank %d: ncclCommFinalize: %s; NCCL is aborted", rank(), ncclGetErrorString(result));
    }
    return result == ncclSuccess;
  }

  // What `what` ("ncclCommSplit for mesh axis 1") ended with: NCCL's error, or for ncclInProgress
  // the timeout, with `if_late` saying what that means.
  flowc_status failed(const std::string& what, ncclResult_t result, ncclComm_t comm, const char* if_late) const {
    if (result != ncclInProgress) return nccl_failure("rank " + std::to_string(rank()) + ": " + what, result, comm);
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                             "rank %d: %s: not done after %d s (FLOWC_NCCL_TIMEOUT): %s; NCCL is aborted on this rank",
                             rank(), what.c_str(), timeout_s_, if_late);
  }

  // One blocking communicator per mesh axis, each split from the world in turn (NCCL takes no
  // other call on the world while a split is in progress).
  flowc_status split_axes() {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 1;
    for (int32_t a = 0; a < mesh().num_axes(); ++a) {
      std::string what = "ncclCommSplit for mesh axis " + std::to_string(a);
      const char* if_late = "a rank did not split (its own error says why): every rank of the world takes part";
      Clock::time_point until = deadline();
      // The split's background work writes axes_[a] when it is done: the world says when.
      ncclResult_t result =
          ncclCommSplit(world_, mesh().group_index(rank(), a), coords()[a], &axes_[size_t(a)], &config);
      result = wait_for(world_, result, until);
      if (result != ncclSuccess) return failed(what, result, world_, if_late);
      if (!axes_[size_t(a)]) {
        return flowc_status_make(FLOWC_STATUS_INTERNAL, "rank %d: %s gave no communicator", rank(), what.c_str());
      }
      result = wait_for(axes_[size_t(a)], ncclInProgress, until);
      if (result != ncclSuccess) return failed(what, result, axes_[size_t(a)], if_late);
    }
    return nullptr;
  }

  // The lowest of every rank's `mine`, through one all-reduce on the world communicator; the
  // wait for it ends by the deadline.
  flowc_status vote(int32_t mine, int32_t* out_lowest) {
    CurrentDevice current(ordinal_);
    if (current.error()) return cuda_failure(rank(), "cudaSetDevice", ordinal_, cudaError_t(current.error()));
    const std::string what = "ncclAllReduce of the agreement after loading";
    const char* if_late = "a rank is still loading (raise FLOWC_NCCL_TIMEOUT if loading takes that long), or it "
                          "failed before it could say (its own error says why)";
    Clock::time_point until = deadline();
    cudaError_t error = cudaMemcpyAsync(vote_, &mine, sizeof mine, cudaMemcpyHostToDevice, vote_stream_);
    if (error != cudaSuccess) return cuda_failure(rank(), "cudaMemcpyAsync", ordinal_, error);
    ncclResult_t result = ncclAllReduce(vote_, vote_, 1, ncclInt32, ncclMin, world_, vote_stream_);
    result = wait_for(world_, result, until);
    if (result != ncclSuccess) return failed(what, result, world_, if_late);
    // The all-reduce runs on the GPU until every rank has joined it; a peer that is gone may show
    // first as the world's error. At the deadline the stream is asked once more: a vote that
    // ended meanwhile, as it did for the other ranks, is not thrown away.
    while ((error = cudaStreamQuery(vote_stream_)) == cudaErrorNotReady) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(world_, &state);
      if (state != ncclSuccess && state != ncclInProgress) return failed(what, state, world_, if_late);
      if (Clock::now() >= until) {
        if ((error = cudaStreamQuery(vote_stream_)) != cudaErrorNotReady) break;
        return failed(what, ncclInProgress, world_, if_late);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (error == cudaSuccess) error = cudaMemcpy(out_lowest, vote_, sizeof *out_lowest, cudaMemcpyDeviceToHost);
    return error != cudaSuccess ? cuda_failure(rank(), what.c_str(), ordinal_, error) : nullptr;
  }

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
  const int32_t timeout_s_;
  ncclComm_t world_ = nullptr;
  std::vector<ncclComm_t> axes_;  // [mesh axis]
  int32_t* vote_ = nullptr;       // the agreement's int on the GPU, and its stream
  cudaStream_t vote_stream_ = nullptr;
  bool aborted_ = false;
};

// What rank 0 hands out under MPI: its NCCL id, or why it has none, so that no rank waits for it.
struct IdMessage {
  ncclResult_t result;
  ncclUniqueId id;
};

// Under an MPI launcher: an MPI communicator agrees on `place_rank` and hands out rank 0's id.
// When MPI never starts (a runtime built without it) and `env_has_address` (NCCL_COMM_ID or
// MASTER_ADDR is set), *out_use_env says to bootstrap from the environment instead.
flowc_status bootstrap_through_mpi(const Mesh& mesh, const std::function<flowc_status(int32_t)>& place_rank,
                                   bool env_has_address, int32_t* out_rank, int32_t* out_on_host,
                                   ncclUniqueId* out_id, bool* out_use_env) {
  bool placed = false;
  std::unique_ptr<Communicator> host;
  flowc_status status = create_mpi_communicator(
      mesh,
      [&](int32_t rank) {
        placed = true;
        return place_rank(rank);
      },
      &host);
  if (status && !placed) {
    if (env_has_address) {
      FLOWC_LOG(FLOWC_LOG_INFO, "%s; NCCL bootstraps from MASTER_ADDR or NCCL_COMM_ID instead",
                flowc_status_get_message(status));
      flowc_status_free(status);
      *out_use_env = true;
      return nullptr;
    }
    flowc_status named = flowc_status_make(
        flowc_status_get_code(status),
        "%s; or set MASTER_ADDR and MASTER_PORT (rank 0's host, and a port whose next one is free too) or "
        "NCCL_COMM_ID=host:port on every rank, for NCCL to bootstrap without MPI",
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

// Without MPI: every rank says through rank 0's exchange whether `place_rank` worked, and gets
// rank 0's id, made once all have; or, with NCCL_COMM_ID alone, derives the id from it.
flowc_status bootstrap_from_env(const Getenv& getenv, int32_t rank, int32_t size, int32_t timeout_s,
                                const std::function<flowc_status(int32_t)>& place_rank, ncclUniqueId* out_id) {
  NcclBootstrap bootstrap;
  FLOWC_RETURN_IF_ERROR(read_nccl_bootstrap(getenv, &bootstrap));
  flowc_status placed = place_rank(rank);
  if (bootstrap.exchange.empty()) {
    // The same id on every rank (that address, a fixed magic); rank 0's ncclCommInitRank listens
    // there (NCCL's src/bootstrap.cc, bootstrapGetUniqueId; src/init.cc).
    FLOWC_RETURN_IF_ERROR(placed);
    ncclResult_t result = ncclGetUniqueId(out_id);
    if (result == ncclSuccess) return nullptr;
    return nccl_failure("rank " + std::to_string(rank) + ": ncclGetUniqueId from NCCL_COMM_ID=" + bootstrap.comm_id,
                        result, nullptr);
  }
  int32_t unready = -1;
  flowc_status met = rendezvous_over_tcp(
      bootstrap.exchange, rank, size, !placed, timeout_s,
      [](void* data) -> flowc_status {
        // NCCL's root starts listening here (with NCCL_COMM_ID set, in rank 0's ncclCommInitRank).
        ncclResult_t result = ncclGetUniqueId(static_cast<ncclUniqueId*>(data));
        return result == ncclSuccess ? nullptr : nccl_failure("rank 0: ncclGetUniqueId", result, nullptr);
      },
      out_id, sizeof *out_id, &unready);
  if (placed) {
    flowc_status_free(met);  // this rank's own error says more; the others heard it is not ready
    return placed;
  }
  FLOWC_RETURN_IF_ERROR(met);
  if (unready < 0) return nullptr;
  return flowc_status_make(FLOWC_STATUS_UNAVAILABLE,
                           "rank %d: rank %d could not get ready for NCCL (its own error says why), so no rank "
                           "starts it",
                           rank, unready);
}

}  // namespace

flowc_status create_nccl_communicator(const Mesh& mesh, const Place& place, std::unique_ptr<Communicator>* out_comm) {
  out_comm->reset();
  const Getenv getenv = [](const char* name) -> const char* { return std::getenv(name); };
  LaunchEnv env;
  FLOWC_RETURN_IF_ERROR(read_launch_env(getenv, &env));
  if (env.world_size != mesh.size()) {
    std::string ranks = mesh.num_axes() > 1 ? mesh.describe() + " = " + std::to_string(mesh.size())
                                            : std::to_string(mesh.size());
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "rank %d: the model was compiled for a mesh of %s ranks, but the launcher (%s) started "
                             "%d process%s: start %d, one per GPU",
                             env.rank, ranks.c_str(), env.launcher, env.world_size, env.world_size == 1 ? "" : "es",
                             mesh.size());
  }
  int32_t timeout_s = 0;
  FLOWC_RETURN_IF_ERROR(read_nccl_timeout(getenv, &timeout_s));
  int32_t rank = env.rank, on_host = env.local_size, ordinal = -1;
  auto place_rank = [&](int32_t r) -> flowc_status {
    FLOWC_RETURN_IF_ERROR(place(r, env.local_rank, &ordinal));
    if (ordinal >= 0) return nullptr;
    return flowc_status_make(FLOWC_STATUS_INTERNAL, "rank %d: placing the rank chose no GPU for NCCL", r);
  };
  ncclUniqueId id;
  bool use_env = !launched_by_mpi();
  if (!use_env) {
    bool env_has_address = launch_variable(getenv, "NCCL_COMM_ID") || launch_variable(getenv, "MASTER_ADDR");
    FLOWC_RETURN_IF_ERROR(bootstrap_through_mpi(mesh, place_rank, env_has_address, &rank, &on_host, &id, &use_env));
  }
  if (use_env) FLOWC_RETURN_IF_ERROR(bootstrap_from_env(getenv, rank, mesh.size(), timeout_s, place_rank, &id));
  auto comm = std::make_unique<NcclCommunicator>(mesh, rank, ordinal, on_host, timeout_s);
  FLOWC_RETURN_IF_ERROR(comm->start(id));
  *out_comm = std::move(comm);
  return nullptr;
}

flowc_status agree_on_load(Communicator& comm, flowc_status loaded) {
  auto* nccl = dynamic_cast<NcclCommunicator*>(&comm);
  if (nccl) return nccl->agree(loaded);
  return loaded ? loaded
                : flowc_status_make(FLOWC_STATUS_INTERNAL, "agree_on_load was given the %s communicator, not NCCL's",
                                    comm.name());
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

// create_nccl_communicator made no communicator to agree over.
flowc_status agree_on_load(Communicator&, flowc_status loaded) { return loaded; }

}  // namespace flowc

#endif  // FLOWC_WITH_NCCL
