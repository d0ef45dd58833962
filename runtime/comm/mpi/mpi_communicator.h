#ifndef FLOWC_COMM_MPI_MPI_COMMUNICATOR_H_
#define FLOWC_COMM_MPI_MPI_COMMUNICATOR_H_

#include <functional>
#include <memory>

#include "runtime/comm/comm.h"

namespace flowc {

// This process's rank of `mesh`, one process per rank: rank = MPI_COMM_WORLD's rank, one
// communicator per mesh axis (MPI_Comm_split: color = the other coordinates, key = the
// coordinate on the axis). Initialises MPI (asking for MPI_THREAD_MULTIPLE) unless the
// application did, and then finalizes it at process exit: MPI cannot start again once
// finalized, so a later model in the same process could not. Collective over MPI_COMM_WORLD:
// every process calls it with the same mesh. `prepare(rank)` gets this process ready to run that
// rank (reads its weights, ...); when it fails on one process, that one returns its error and
// every other an error naming its rank, rather than waiting in a collective for it.
// UNAVAILABLE when the runtime was built without MPI.
flowc_status create_mpi_communicator(const Mesh& mesh, const std::function<flowc_status(int32_t rank)>& prepare,
                                     std::unique_ptr<Communicator>* out_comm);

// Whether an MPI launcher started this process (OMPI_COMM_WORLD_SIZE or PMI_SIZE is set).
bool launched_by_mpi();

}  // namespace flowc

#endif  // FLOWC_COMM_MPI_MPI_COMMUNICATOR_H_
