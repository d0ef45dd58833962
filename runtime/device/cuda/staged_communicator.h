#ifndef FLOWC_DEVICE_CUDA_STAGED_COMMUNICATOR_H_
#define FLOWC_DEVICE_CUDA_STAGED_COMMUNICATOR_H_

// A host communicator (local threads, MPI processes) for a cuda model's collectives, whose
// buffers live on the GPU: each collective waits for the calling step's stream, copies its send
// buffer into pinned host memory, runs the host collective there, and copies the result back on
// that stream. Slower than NCCL (two copies and a synchronisation per collective), but it needs
// no NCCL and runs several ranks on one GPU (NCCL refuses that), so any mesh plan runs anywhere.

#include <memory>

#include "runtime/comm/comm.h"
#include "runtime/device/cuda/cuda_device.h"

namespace flowc {

// `host`'s rank, its collectives staged through `gpu`'s host memory. `gpu` must outlive it.
std::unique_ptr<Communicator> stage_through_host(std::unique_ptr<Communicator> host, const CudaDevice& gpu);

}  // namespace flowc

#endif  // FLOWC_DEVICE_CUDA_STAGED_COMMUNICATOR_H_
