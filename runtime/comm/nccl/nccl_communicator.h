#ifndef FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_
#define FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_

// NCCL: one process per GPU, collectives on GPU memory, ordered on the calling step's CUDA
// stream. The launch (which rank this process is, how many there are) comes from the launcher's
// environment: mpirun's, or torchrun's RANK and WORLD_SIZE. Only this header's .cc includes nccl.h.

#include <cstdint>
#include <functional>
#include <memory>

#include "runtime/comm/comm.h"
#include "runtime/comm/launch.h"

namespace flowc {

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
