#ifndef FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_
#define FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_

// NCCL: one process per GPU, collectives on GPU memory, ordered on the calling step's CUDA
// stream. The launch (which rank this process is, how many there are) comes from the launcher's
// environment: mpirun's, or torchrun's RANK and WORLD_SIZE. Only this header's .cc includes nccl.h.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/comm/comm.h"

namespace flowc {

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
flowc_status read_launch_env(const std::function<const char*(const char*)>& getenv, LaunchEnv* out_env);

// Where NCCL's bootstrap root listens when no MPI hands out its id (torchrun): NCCL_COMM_ID
// (host:port) as it is, else MASTER_ADDR:(MASTER_PORT + 1). torchrun's own store already listens
// on MASTER_PORT, on the same host as rank 0, which hosts the root. FAILED_PRECONDITION, naming
// what to set, when neither is usable.
flowc_status nccl_bootstrap_address(const std::function<const char*(const char*)>& getenv, std::string* out_address);

// This process's rank of `mesh`, one process per GPU: the NCCL world communicator, and one per
// mesh axis split from it (color = the other coordinates, key = the coordinate on the axis, so a
// group's NCCL ranks are its coordinates). The launcher must have started mesh.size() processes.
// `prepare(rank, local_rank, out_ordinal)` loads the rank (its weights on its GPU) and says
// which GPU it runs on; the communicator uses that one.
//
// Under an MPI launcher, an MPI communicator agrees on `prepare` (a rank that fails makes every
// rank fail, rather than wait) and hands out rank 0's NCCL id; without MPI in the runtime,
// NCCL_COMM_ID or MASTER_ADDR must be set instead. Otherwise (torchrun) the id comes from
// nccl_bootstrap_address, and a rank that fails to prepare leaves the others in NCCL's bootstrap
// until its connection retries give up (about a minute) or the launcher ends them.
// Collective over the launch: every process calls it with the same mesh, and one model at a time
// (the bootstrap root takes a fixed port). UNAVAILABLE when the runtime was built without NCCL.
flowc_status create_nccl_communicator(
    const Mesh& mesh,
    const std::function<flowc_status(int32_t rank, int32_t local_rank, int32_t* out_ordinal)>& prepare,
    std::unique_ptr<Communicator>* out_comm);

}  // namespace flowc

#endif  // FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_
