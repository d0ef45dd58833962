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
typedef struct flowc_plan {
  const flowc_plan_step* steps;
  int32_t num_steps;
  const int32_t* register_slots;
  int32_t num_registers;
  int32_t num_streams;
  uint64_t arena_bytes;  // per request
  int32_t arena_slots;   // requests in flight at once
  const void* weights;
} flowc_plan;

// Zero-initialised means defaults.
typedef struct flowc_options {
  int32_t num_threads;  // intra-op threads, the caller's included; 0: the core count
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
