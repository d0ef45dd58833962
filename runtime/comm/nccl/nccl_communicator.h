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
// group's NCCL ranks are its coordinates; a 1-D mesh's one axis too). The launcher must have
// started mesh.size() processes.
// `place(rank, local_rank, out_ordinal)` says which GPU the rank runs on (and should be quick:
// the rank's weights load after, once NCCL is up); the communicator uses that one.
//
// Every rank first says whether it could be placed, and none starts NCCL unless all could: under
// an MPI launcher through an MPI communicator, which also hands out rank 0's NCCL id; otherwise
// through rank 0's id exchange (rendezvous_over_tcp at read_nccl_bootstrap's address; with
// NCCL_COMM_ID alone, every rank derives the id from it, and there is no such check). The
// environment is read, never written. The world communicator is non-blocking: no wait for the
// other ranks (the exchange, NCCL's init, each split, agree_on_load) lasts more than
// FLOWC_NCCL_TIMEOUT (read_nccl_timeout), and a rank that gives up aborts what it made. The
// axes' communicators, which the steps' collectives use, block.
// Collective over the launch: every process calls it with the same mesh, and one model at a time
// (the exchange takes a fixed port). UNAVAILABLE when the runtime was built without NCCL.
flowc_status create_nccl_communicator(
    const Mesh& mesh,
    const std::function<flowc_status(int32_t rank, int32_t local_rank, int32_t* out_ordinal)>& place,
    std::unique_ptr<Communicator>* out_comm);

// After create_nccl_communicator, once the rank has loaded its weights and started its engine (or
// failed to): every rank says whether it did, in one all-reduce over the world communicator, so
// that no rank keeps a model that another could not load. `loaded` is this rank's failure, or
// null; this takes it. Null when every rank loaded; else this rank's own error, or UNAVAILABLE
// naming the lowest rank that failed, or, after FLOWC_NCCL_TIMEOUT, one saying that the others did
// not answer. On any failure `comm`'s NCCL communicators are aborted, so that freeing it waits on
// no other rank. Collective over the mesh.
flowc_status agree_on_load(Communicator& comm, flowc_status loaded);

}  // namespace flowc

#endif  // FLOWC_COMM_NCCL_NCCL_COMMUNICATOR_H_
