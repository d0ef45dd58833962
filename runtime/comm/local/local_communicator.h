#ifndef FLOWC_COMM_LOCAL_LOCAL_COMMUNICATOR_H_
#define FLOWC_COMM_LOCAL_LOCAL_COMMUNICATOR_H_

#include <memory>
#include <vector>

#include "runtime/comm/comm.h"

namespace flowc {

// Every rank of `mesh` in this process: out_comms[r] is rank r's communicator, to be called from
// one thread at a time (a rank's comm stream). They share one rendezvous per group: a member
// publishes its buffers, each member then computes its share of the result reading the others'
// buffers directly, and none returns before all are done reading. Sums run over the group in
// group order, so every member gets bitwise the same result (f16 and bf16 summed in float and
// rounded once). The shared state lives as long as any of the communicators.
flowc_status create_local_communicators(const Mesh& mesh, std::vector<std::unique_ptr<Communicator>>* out_comms);

}  // namespace flowc

#endif  // FLOWC_COMM_LOCAL_LOCAL_COMMUNICATOR_H_
