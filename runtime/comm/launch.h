#ifndef FLOWC_COMM_LAUNCH_H_
#define FLOWC_COMM_LAUNCH_H_

// What a launcher's environment says about this process: which rank of how many it is (mpirun's
// variables, or torchrun's RANK and WORLD_SIZE), and where NCCL's bootstrap root listens. Read
// by the model loader (which communicator, which GPU) and by the NCCL communicator; host code,
// no MPI, CUDA or NCCL.

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

// Where NCCL's bootstrap root listens when no MPI hands out its id (torchrun): NCCL_COMM_ID
// (host:port) as it is, else MASTER_ADDR:(MASTER_PORT + 1). torchrun's own store already listens
// on MASTER_PORT, on the same host as rank 0, which hosts the root. FAILED_PRECONDITION, naming
// what to set, when neither is usable.
flowc_status nccl_bootstrap_address(const Getenv& getenv, std::string* out_address);

}  // namespace flowc

#endif  // FLOWC_COMM_LAUNCH_H_
