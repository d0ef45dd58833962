#ifndef FLOWC_COMM_LAUNCH_H_
#define FLOWC_COMM_LAUNCH_H_

// What a launcher's environment says about this process: which rank of how many it is (mpirun's
// variables, or torchrun's RANK and WORLD_SIZE), where the ranks meet to start NCCL without MPI,
// and how long they wait for each other; and that meeting itself, over TCP. Read by the model
// loader (which communicator, which GPU) and by the NCCL communicator; host code, no MPI, CUDA or
// NCCL.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "flowc/status.h"

namespace flowc {

using Getenv = std::function<const char*(const char*)>;

// Variable `name` from `getenv`, or null: set to nothing is unset, to a launcher as to us.
const char* launch_variable(const Getenv& getenv, const char* name);

// Where a launcher put this process: rank of world_size processes, local_rank of the local_size
// on its host. `launcher` is "torchrun", "Open MPI" or "PMI" (MPICH, Intel MPI, Slurm).
struct LaunchEnv {
  int32_t rank = -1, world_size = -1, local_rank = -1, local_size = -1;
  const char* launcher = "";
};

// The launch from `getenv` (std::getenv, or a table in tests), from the first launcher whose
// variables are set: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE (torchrun);
// OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE (Open MPI); PMI_RANK, PMI_SIZE,
// MPI_LOCALRANKID, MPI_LOCALNRANKS (PMI). Without the local pair every rank is taken to be on
// this host. INVALID_ARGUMENT, naming the variable and its value, for a value that is not a
// decimal count, a rank not below its size, or one of a pair without the other;
// FAILED_PRECONDITION when no launcher's variables are set.
flowc_status read_launch_env(const Getenv& getenv, LaunchEnv* out_env);

// How the ranks get NCCL's unique id where no MPI hands it out (torchrun, or by hand).
struct NcclBootstrap {
  // host:port of flowc's id exchange (rendezvous_over_tcp), MASTER_ADDR:(MASTER_PORT + 1): rank
  // 0 listens there while the ranks start. torchrun's own store has MASTER_PORT. Empty when
  // MASTER_ADDR or MASTER_PORT is unset and NCCL_COMM_ID is set: every rank then derives the id
  // from NCCL_COMM_ID alone.
  std::string exchange;
  // NCCL_COMM_ID as set by the user (flowc never sets it), or empty: where rank 0's NCCL listens
  // for the other ranks' NCCL. Unset, NCCL picks a free port on rank 0's host.
  std::string comm_id;
};

// The bootstrap from `getenv`. FAILED_PRECONDITION, naming what to set, when neither NCCL_COMM_ID
// nor MASTER_ADDR and MASTER_PORT are usable, or when NCCL_COMM_ID's port is MASTER_PORT or
// MASTER_PORT + 1 (taken by torchrun's store and flowc's exchange); INVALID_ARGUMENT when
// NCCL_COMM_ID is not host:port.
flowc_status read_nccl_bootstrap(const Getenv& getenv, NcclBootstrap* out_bootstrap);

// FLOWC_NCCL_TIMEOUT: the longest one rank waits for the others at any one step of starting NCCL
// and loading (the id exchange, NCCL's init and splits, the agreement after loading), in whole
// seconds; kDefaultNcclTimeout when unset. INVALID_ARGUMENT, naming the value, for one that is
// not a whole number of at least 1.
constexpr int32_t kDefaultNcclTimeout = 600;
flowc_status read_nccl_timeout(const Getenv& getenv, int32_t* out_seconds);

// Rank 0's `bytes` to every one of `size` ranks over TCP, once every rank has said whether it is
// ready: the meeting that starts NCCL where no MPI does. Rank 0 listens on `address`'s port, on
// every interface, until each other rank has connected and said whether it is `ready`; then,
// where all are, `make(data)` fills rank 0's `data` (rank 0 returns make's error where it
// fails). Every rank gets those bytes in `data`, and the lowest rank that is not ready (0 when
// `make` failed) in *out_unready, -1 when all are. The others connect to `address`, retrying
// until the deadline. No rank waits more than `timeout_s` in all: UNAVAILABLE naming the address
// and the ranks missing. INVALID_ARGUMENT for an address that is not host:port; rank 0 fails
// with UNAVAILABLE or FAILED_PRECONDITION where its port is taken, or two live callers say they
// are the same rank, or one was started with another `size`; it then closes every connection, so
// that the others fail at once, saying that rank 0 gave up (a rank not yet connected cannot tell
// that from a rank 0 not yet started, and retries until its own deadline). A rank whose
// connection closes before the answer (it exited) no longer counts, and may connect again. Where
// the bytes go out, each rank acknowledges them and keeps them only once rank 0 has heard from
// every rank: where one does not, rank 0 fails naming it, and the others at once. A caller that
// is not a flowc rank is ignored, and at most 64 that say nothing are kept waiting. Each attempt
// to connect tries rank 0's addresses in turn, at most 1 s each.
flowc_status rendezvous_over_tcp(const std::string& address, int32_t rank, int32_t size, bool ready, double timeout_s,
                                 const std::function<flowc_status(void* data)>& make, void* data, size_t bytes,
                                 int32_t* out_unready);

}  // namespace flowc

#endif  // FLOWC_COMM_LAUNCH_H_
