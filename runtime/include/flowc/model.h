#ifndef FLOWC_MODEL_H_
#define FLOWC_MODEL_H_

// A compiled model's C API: load it from its folder, ask for its inputs and outputs, run it on
// caller-owned buffers. Every call returns a flowc_status (NULL is OK; release any other with
// flowc_status_free after reading flowc_status_get_message) and puts results in out_ parameters.
// One loaded model serves concurrent callers: each flowc_model_run gets its own answer.

#include <stddef.h>
#include <stdint.h>

#include "flowc/runtime.h"
#include "flowc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct flowc_tensor_info {
  const char* name;      // as the model names it, up to a NUL byte if the name holds one
  const char* dtype;     // the IR spelling: "f32", "i64", "bool", ...
  int32_t rank;
  const int64_t* shape;  // rank dims; at the batch bound for a model compiled with one
  uint64_t nbytes;       // what the caller's buffer must hold, dense row-major (at the bound)
  // NULL when the shape is fixed; else rank numbers: dim d at batch b is
  // shape[d] - per_batch[d] * (max_batch - b). flowc_model_query_*_shape does that sum.
  const int64_t* per_batch;
} flowc_tensor_info;

typedef struct flowc_model flowc_model;

// Reads `dir`/weights.bin and starts the engine. `options` may be NULL; num_threads 0 takes the
// thread count given at compile time, if any, else the core count.
//
// A model compiled for a device mesh runs one copy of its plan per rank, each with its own
// weights (`dir`/weights.r<rank>.bin), on the communicator options->comm selects:
// - local: every rank in this process, each with its own engine and max(1, num_threads / ranks)
//   threads; a run hands the same inputs to every rank and returns rank 0's outputs.
// - MPI (mpirun -np <ranks>): this process runs the rank MPI_COMM_WORLD gives it and reads only
//   that rank's weights; 0 threads means the cores shared among the ranks on this host. Loading,
//   runs and freeing are collective: every process makes the same calls, with the same inputs,
//   in the same order (concurrent callers in one process are not ordered across processes).
//
// A model compiled for target cuda runs on GPU options->device (0 when `options` is NULL), in a
// runtime built with FLOWC_CUDA; with no usable GPU the load fails with FLOWC_STATUS_UNAVAILABLE.
// It runs on one GPU only (no mesh yet) and has no intra-op threads: set_threads accepts any
// count, query_threads reports 1.
flowc_status flowc_model_load(const char* dir, const flowc_options* options, flowc_model** out_model);
// Waits for runs in flight; no call on the model may start after this one.
void flowc_model_free(flowc_model* model);

flowc_status flowc_model_query_name(const flowc_model* model, const char** out_name);
flowc_status flowc_model_query_input_count(const flowc_model* model, int32_t* out_count);
flowc_status flowc_model_query_output_count(const flowc_model* model, int32_t* out_count);
// The info's pointers stay valid until the model is freed.
flowc_status flowc_model_query_input(const flowc_model* model, int32_t index, flowc_tensor_info* out_info);
flowc_status flowc_model_query_output(const flowc_model* model, int32_t index, flowc_tensor_info* out_info);

// The batch bound of a model compiled with a dynamic batch (max_batch); 0 when its shapes are fixed.
flowc_status flowc_model_query_max_batch(const flowc_model* model, int64_t* out_max_batch);
// Input or output `index`'s dims (rank of them into out_shape) and bytes at `batch` rows, which must
// be 1..max_batch; a model with fixed shapes takes any batch and reports its one shape.
flowc_status flowc_model_query_input_shape(const flowc_model* model, int32_t index, int64_t batch,
                                           int64_t* out_shape, uint64_t* out_nbytes);
flowc_status flowc_model_query_output_shape(const flowc_model* model, int32_t index, int64_t batch,
                                            int64_t* out_shape, uint64_t* out_nbytes);

// inputs[i] holds input i (nbytes of it), outputs[i] receives output i; buffers must not overlap.
// Thread-safe; blocks until this request is done. A model with a dynamic batch runs at its bound.
flowc_status flowc_model_run(flowc_model* model, const void* const* inputs, void* const* outputs);
// Runs `batch` rows (1..max_batch) of a model compiled with a dynamic batch: the buffers hold the
// shapes flowc_model_query_*_shape gives for `batch`.
flowc_status flowc_model_run_batch(flowc_model* model, int64_t batch, const void* const* inputs,
                                   void* const* outputs);

// Intra-op threads, the caller's included (0: the core count), shared among the ranks that run
// in this process. Waits for runs in flight.
flowc_status flowc_model_set_threads(flowc_model* model, int32_t num_threads);
flowc_status flowc_model_query_threads(const flowc_model* model, int32_t* out_count);

// The ranks in the model's mesh (1 on one device), and the one this process runs under MPI; -1
// when every rank runs in this process. Either pointer may be NULL.
flowc_status flowc_model_query_ranks(const flowc_model* model, int32_t* out_ranks, int32_t* out_rank);

// -- for generated code ----------------------------------------------------------------------

// What a compiled model says of itself; its model.cpp defines flowc_model_describe(). The
// fields after max_batch, zero-initialised, mean one device (no mesh), on the CPU.
typedef struct flowc_model_desc {
  const char* name;
  flowc_plan plan;  // plan.weights is NULL here: the loader points it at weights.bin's bytes (on the GPU for cuda)
  const flowc_tensor_info* inputs;
  int32_t num_inputs;
  const flowc_tensor_info* outputs;
  int32_t num_outputs;
  uint64_t weights_bytes;     // of weights.bin, or of each rank's weights.r<rank>.bin
  uint64_t weights_checksum;  // flowc_weights_checksum of weights.bin
  int32_t default_threads;    // used when the loader's options say 0; 0 here too: the core count
  int64_t max_batch;          // the batch bound; 0: fixed shapes
  int32_t mesh_rank;                       // mesh axes; 0: one device
  const int32_t* mesh_shape;               // devices per axis; ranks = their product, row-major
  const uint64_t* rank_weights_checksums;  // per rank, of weights.r<rank>.bin; NULL for one device
  const char* device;                      // what the steps run on: "cpu" (or NULL) or "cuda"
} flowc_model_desc;

const flowc_model_desc* flowc_model_describe(void);

// Sum over the file's little-endian 64-bit words w[i] of w[i] * (2i + 1), mod 2^64 (a short
// tail is zero-padded): catches a weights.bin from another compile at memory speed.
uint64_t flowc_weights_checksum(const void* data, uint64_t nbytes);

#ifdef __cplusplus
}
#endif

#endif  // FLOWC_MODEL_H_
