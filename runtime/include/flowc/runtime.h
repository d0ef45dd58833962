#ifndef FLOWC_RUNTIME_H_
#define FLOWC_RUNTIME_H_

// The flowc runtime's C API. Every call returns a flowc_status (NULL is OK) and puts
// results in out_ parameters. An engine runs a plan; a model (loaded from a compiled
// folder, with named and typed inputs and outputs) will own an engine and take the same
// flowc_options.

#include <stddef.h>
#include <stdint.h>

#include "flowc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Defined in runtime/core/step.h: what a generated step sees for one request.
typedef struct flowc_step_ctx flowc_step_ctx;
// 0 on success; otherwise a flowc_status_code, which fails that request (not the engine).
typedef int (*flowc_step_fn)(flowc_step_ctx* ctx);

// One actor: a step function, the registers it reads and writes, the stream it runs on.
typedef struct flowc_plan_step {
  const char* name;
  flowc_step_fn fn;
  int32_t stream;
  const int32_t* reads;
  int32_t num_reads;
  const int32_t* writes;
  int32_t num_writes;
} flowc_plan_step;

// A plan is data. Each register has exactly one writer and at least one reader among the
// steps, which are its producer and consumers; register_slots[r] is how many requests may
// hold register r at once. A step that writes no register is a final step.
//
// comm_stream s > 0 makes stream s ordered: its steps fire strictly in plan order, request after
// request (request 0's steps on s in step order, then request 1's, ...), so that every rank of a
// device mesh issues its collectives in the same sequence; the other streams stay free-running,
// so other requests' compute overlaps them. A plan with one lists its steps in an order where
// each reads only registers that earlier steps write. Its steps also run for a request that has
// already failed (on whatever their inputs hold), so that no other rank waits for them forever.
typedef struct flowc_plan {
  const flowc_plan_step* steps;
  int32_t num_steps;
  const int32_t* register_slots;
  int32_t num_registers;
  int32_t num_streams;
  uint64_t arena_bytes;  // per request
  int32_t arena_slots;   // requests in flight at once
  const void* weights;
  int32_t comm_stream;   // 0: none (stream 0 is always compute)
} flowc_plan;

// Which communicator a model compiled for a device mesh runs its collectives on.
typedef enum flowc_comm_kind {
  // FLOWC_COMM=local|mpi|nccl from the environment if set; else NCCL for a model compiled for
  // cuda when a launcher started the process (an MPI one, or torchrun's RANK and WORLD_SIZE) and
  // the runtime has NCCL; else MPI when an MPI launcher did (OMPI_COMM_WORLD_SIZE or PMI_SIZE);
  // local with no launcher. torchrun's variables with nothing that can carry its processes
  // (no NCCL, no MPI launcher) are an error rather than every rank in every process.
  FLOWC_COMM_AUTO = 0,
  FLOWC_COMM_LOCAL = 1,  // every rank in this process, each with its own engine and threads
  FLOWC_COMM_MPI = 2,    // one process per rank (mpirun -np <ranks>); this one runs its own
  FLOWC_COMM_NCCL = 3,   // cuda only: one process per GPU, collectives on the GPU's streams
} flowc_comm_kind;

// Zero-initialised means defaults.
typedef struct flowc_options {
  int32_t num_threads;  // intra-op threads, the caller's included; 0: the core count
  int32_t comm;         // a flowc_comm_kind; one device needs none and ignores it
  int32_t device;       // which GPU (its CUDA ordinal) a model compiled for cuda runs on; cpu ignores it
} flowc_options;

typedef struct flowc_engine flowc_engine;

// Checks the plan (names the offending step or register) and starts one worker per stream.
// The engine copies what it needs from `plan` but not `weights`, which must outlive it.
flowc_status flowc_engine_create(const flowc_plan* plan, const flowc_options* options,
                                 flowc_engine** out_engine);
// Thread-safe; blocks until this request is done. Requests from concurrent callers
// pipeline through the plan. A failing step's status is returned to its own caller.
flowc_status flowc_engine_run(flowc_engine* engine, const void* const* inputs,
                              void* const* outputs, int64_t batch);
flowc_status flowc_engine_query_thread_count(const flowc_engine* engine, int32_t* out_count);
// Waits for requests in flight; no call on the engine may start after this one.
void flowc_engine_free(flowc_engine* engine);

#ifdef __cplusplus
}
#endif

#endif  // FLOWC_RUNTIME_H_
