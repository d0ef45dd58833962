#ifndef FLOWC_COMM_COMM_H_
#define FLOWC_COMM_COMM_H_

// The communicator layer: a device mesh and collectives over the groups of its axes. A driver
// (local threads, MPI processes, NCCL) implements Communicator; the actor core and the
// generated steps see only this header (no MPI, no CUDA, no NCCL).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flowc/comm.h"
#include "flowc/status.h"

namespace flowc {

// Bytes per element of a flowc_comm_dtype; 0 for a value that is none.
size_t comm_dtype_size(flowc_comm_dtype dtype);
const char* comm_dtype_name(flowc_comm_dtype dtype);

// A device mesh: `shape[a]` devices along axis a, ranks numbering the coordinates row-major.
class Mesh {
 public:
  static constexpr int32_t kMaxAxes = 8;

  Mesh() = default;
  // Checks the shape: 1..kMaxAxes axes of at least 1 device, at most INT32_MAX ranks in all.
  static flowc_status create(const int32_t* shape, int32_t num_axes, Mesh* out_mesh);

  int32_t num_axes() const { return int32_t(shape_.size()); }
  int32_t size() const { return size_; }
  const std::vector<int32_t>& shape() const { return shape_; }
  std::vector<int32_t> coords(int32_t rank) const;
  // The ranks that share every coordinate of `rank` but the one on `axis`, by that coordinate.
  std::vector<int32_t> group(int32_t rank, int32_t axis) const;
  // Which group of `axis` `rank` is in: the row-major index of its other coordinates.
  int32_t group_index(int32_t rank, int32_t axis) const;
  int32_t num_groups(int32_t axis) const { return size_ / shape_[size_t(axis)]; }
  // "2x4", "4".
  std::string describe() const;

 private:
  std::vector<int32_t> shape_;
  int32_t size_ = 1;
};

// One rank's endpoint. Every rank issues the same collectives in the same order (the plan's
// comm stream does that); one thread at a time calls a given rank's communicator. A collective
// runs in the group of `axis` (see Mesh::group) and blocks until every member has called it.
// Results are the same on every member; the local communicator's are bitwise so.
//
// `stream` is the native stream of the calling step (a cudaStream_t; null on cpu). A driver over
// GPU memory (NCCL, or the cuda device's staging around a host driver) orders the collective on
// it, after the work enqueued there before; a host driver ignores it, and its buffers are host
// memory.
class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual const char* name() const = 0;  // "local", "mpi", "nccl", "mpi (staged through host memory)"
  const Mesh& mesh() const { return mesh_; }
  int32_t rank() const { return rank_; }
  const int32_t* coords() const { return coords_.data(); }
  // Ranks that share this one's host (and so its cores): all of them for the local one.
  virtual int32_t ranks_on_host() const = 0;

  // The collectives of flowc/comm.h, with their arguments checked here once for every driver
  // (axis, dtype, NULL buffers of nonzero size, overlap, sizes that overflow).
  flowc_status all_reduce(int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv, uint64_t count,
                          void* stream = nullptr);
  flowc_status all_gather(int32_t axis, const void* send, void* recv, uint64_t block_bytes, void* stream = nullptr);
  flowc_status reduce_scatter(int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                              uint64_t count, void* stream = nullptr);
  flowc_status all_to_all(int32_t axis, const void* send, void* recv, uint64_t block_bytes,
                          void* stream = nullptr);

 protected:
  Communicator(const Mesh& mesh, int32_t rank);

  enum class Op : int32_t { kAllReduce, kAllGather, kReduceScatter, kAllToAll };
  static const char* op_name(Op op);

  // What a driver implements: called with checked arguments, on groups of two or more members.
  // `count` is elements for the reductions, bytes per block for the rest (dtype is then 0).
  virtual flowc_status collective(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                                  uint64_t count, void* stream) = 0;
  // A group of one: every collective is a copy of `bytes` from send to recv. Host memcpy here;
  // a driver over GPU memory copies on `stream`.
  virtual flowc_status copy(void* recv, const void* send, uint64_t bytes, void* stream);

 private:
  flowc_status check_and_run(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                             uint64_t count, void* stream);

  Mesh mesh_;
  int32_t rank_;
  std::vector<int32_t> coords_;
};

// Rank 0's `bytes` at `data` to every rank, through all-gathers alone (axis by axis, each rank
// keeps the block of the member at coordinate 0), so any host communicator can bootstrap
// another: NCCL's unique id goes out this way under MPI. Collective over the mesh.
flowc_status broadcast_from_first(Communicator& comm, void* data, size_t bytes);

}  // namespace flowc

#endif  // FLOWC_COMM_COMM_H_
