#ifndef FLOWC_COMM_H_
#define FLOWC_COMM_H_

// Collectives as generated steps call them. A model compiled for a device mesh runs one copy of
// its plan per rank (SPMD); ranks number the mesh's coordinates row-major (on a 2x4 mesh, rank
// r sits at (r / 4, r % 4)). The group of `mesh_axis` is the ranks that share every coordinate
// but that one, ordered by their coordinate on it; a collective runs inside each such group.
//
// Buffers are contiguous; block i of a gathered or scattered buffer belongs to the group's
// i-th member. The generated code packs and unpacks any other layout. `send` and `recv` never
// overlap. Each call returns 0, or a flowc_status_code with ctx->error pointing at a message
// (INVALID_ARGUMENT for a bad axis or dtype, FAILED_PRECONDITION in an engine with no
// communicator, or when the local communicator sees ranks disagree on the call).
// A rank's collectives are issued in one order, the same on every rank: the plan's comm stream
// fires its steps in plan order, request after request (flowc_plan.comm_stream). Sums of
// integers wrap; the local communicator adds the members' values in group order, so every
// member gets bitwise the same result (MPI's order is its own).

#include <stdint.h>

#include "flowc/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

// Element types a reduction can sum. F16 (IEEE binary16) and BF16: the local and MPI
// communicators sum them in float and round once, as the reference does; NCCL sums in the type
// itself, rounding at each step.
typedef enum flowc_comm_dtype {
  FLOWC_COMM_F32 = 1,
  FLOWC_COMM_F64 = 2,
  FLOWC_COMM_I32 = 3,
  FLOWC_COMM_I64 = 4,
  FLOWC_COMM_F16 = 5,
  FLOWC_COMM_BF16 = 6,
} flowc_comm_dtype;

// This rank's coordinate on `mesh_axis` and that axis's size (the group's).
int flowc_comm_coord(flowc_step_ctx* ctx, int32_t mesh_axis, int32_t* out_coord, int32_t* out_size);

// recv[k] = sum over the group of send[k], for count elements.
int flowc_comm_all_reduce(flowc_step_ctx* ctx, int32_t mesh_axis, flowc_comm_dtype dtype, const void* send,
                          void* recv, uint64_t count);
// recv (size * block_bytes) = every member's send (block_bytes each), in group order.
int flowc_comm_all_gather(flowc_step_ctx* ctx, int32_t mesh_axis, const void* send, void* recv,
                          uint64_t block_bytes);
// send holds size blocks of count elements; recv (count) = the sum over the group of block `coord`.
int flowc_comm_reduce_scatter(flowc_step_ctx* ctx, int32_t mesh_axis, flowc_comm_dtype dtype, const void* send,
                              void* recv, uint64_t count);
// send holds size blocks; block j goes to member j; recv block i comes from member i.
int flowc_comm_all_to_all(flowc_step_ctx* ctx, int32_t mesh_axis, const void* send, void* recv,
                          uint64_t block_bytes);

#ifdef __cplusplus
}
#endif

#endif  // FLOWC_COMM_H_
