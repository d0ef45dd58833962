#include "runtime/comm/comm.h"

#include <cstring>
#include <string>
#include <vector>

#include "runtime/core/step.h"

namespace flowc {

size_t comm_dtype_size(flowc_comm_dtype dtype) {
  switch (dtype) {
    case FLOWC_COMM_F32: return 4;
    case FLOWC_COMM_F64: return 8;
    case FLOWC_COMM_I32: return 4;
    case FLOWC_COMM_I64: return 8;
    case FLOWC_COMM_F16: return 2;
    case FLOWC_COMM_BF16: return 2;
  }
  return 0;
}

const char* comm_dtype_name(flowc_comm_dtype dtype) {
  switch (dtype) {
    case FLOWC_COMM_F32: return "f32";
    case FLOWC_COMM_F64: return "f64";
    case FLOWC_COMM_I32: return "i32";
    case FLOWC_COMM_I64: return "i64";
    case FLOWC_COMM_F16: return "f16";
    case FLOWC_COMM_BF16: return "bf16";
  }
  return "?";
}

flowc_status Mesh::create(const int32_t* shape, int32_t num_axes, Mesh* out_mesh) {
  if (num_axes < 1 || num_axes > kMaxAxes || !shape) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "a mesh has 1 to %d axes, not %d%s", kMaxAxes,
                             num_axes, num_axes > 0 && !shape ? " (its shape is NULL)" : "");
  }
  Mesh mesh;
  int64_t size = 1;
  for (int32_t a = 0; a < num_axes; ++a) {
    if (shape[a] < 1) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "mesh axis %d has %d devices; needs at least 1", a,
                               shape[a]);
    }
    size *= shape[a];
    if (size > INT32_MAX) {
      return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "a mesh with more than %d ranks is too large", INT32_MAX);
    }
    mesh.shape_.push_back(shape[a]);
  }
  mesh.size_ = int32_t(size);
  *out_mesh = std::move(mesh);
  return nullptr;
}

std::vector<int32_t> Mesh::coords(int32_t rank) const {
  std::vector<int32_t> out(shape_.size());
  for (size_t a = shape_.size(); a-- > 0;) {
    out[a] = rank % shape_[a];
    rank /= shape_[a];
  }
  return out;
}

std::vector<int32_t> Mesh::group(int32_t rank, int32_t axis) const {
  int32_t stride = 1;
  for (size_t a = size_t(axis) + 1; a < shape_.size(); ++a) stride *= shape_[a];
  int32_t first = rank - coords(rank)[size_t(axis)] * stride;
  std::vector<int32_t> out;
  for (int32_t i = 0; i < shape_[size_t(axis)]; ++i) out.push_back(first + i * stride);
  return out;
}

int32_t Mesh::group_index(int32_t rank, int32_t axis) const {
  std::vector<int32_t> c = coords(rank);
  int32_t index = 0;
  for (size_t a = 0; a < shape_.size(); ++a) {
    if (int32_t(a) != axis) index = index * shape_[a] + c[a];
  }
  return index;
}

std::string Mesh::describe() const {
  std::string out;
  for (size_t a = 0; a < shape_.size(); ++a) out += (a ? "x" : "") + std::to_string(shape_[a]);
  return out;
}

Communicator::Communicator(const Mesh& mesh, int32_t rank) : mesh_(mesh), rank_(rank), coords_(mesh.coords(rank)) {}

const char* Communicator::op_name(Op op) {
  switch (op) {
    case Op::kAllReduce: return "all_reduce";
    case Op::kAllGather: return "all_gather";
    case Op::kReduceScatter: return "reduce_scatter";
    case Op::kAllToAll: return "all_to_all";
  }
  return "?";
}

flowc_status Communicator::all_reduce(int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                                      uint64_t count, void* stream) {
  return check_and_run(Op::kAllReduce, axis, dtype, send, recv, count, stream);
}

flowc_status Communicator::all_gather(int32_t axis, const void* send, void* recv, uint64_t block_bytes,
                                      void* stream) {
  return check_and_run(Op::kAllGather, axis, flowc_comm_dtype(0), send, recv, block_bytes, stream);
}

flowc_status Communicator::reduce_scatter(int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                                          uint64_t count, void* stream) {
  return check_and_run(Op::kReduceScatter, axis, dtype, send, recv, count, stream);
}

flowc_status Communicator::all_to_all(int32_t axis, const void* send, void* recv, uint64_t block_bytes,
                                      void* stream) {
  return check_and_run(Op::kAllToAll, axis, flowc_comm_dtype(0), send, recv, block_bytes, stream);
}

flowc_status Communicator::copy(void* recv, const void* send, uint64_t bytes, void*) {
  std::memcpy(recv, send, size_t(bytes));
  return nullptr;
}

flowc_status Communicator::check_and_run(Op op, int32_t axis, flowc_comm_dtype dtype, const void* send, void* recv,
                                         uint64_t count, void* stream) {
  const char* what = op_name(op);
  if (axis < 0 || axis >= mesh_.num_axes()) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "rank %d: %s on mesh axis %d: the mesh %s has axes 0..%d",
                             rank_, what, axis, mesh_.describe().c_str(), mesh_.num_axes() - 1);
  }
  bool reduces = op == Op::kAllReduce || op == Op::kReduceScatter;
  uint64_t element = 1;
  if (reduces) {
    element = comm_dtype_size(dtype);
    if (!element) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                               "rank %d: %s on mesh axis %d: dtype %d is not a flowc_comm_dtype "
                               "(f32 = 1, f64 = 2, i32 = 3, i64 = 4, f16 = 5, bf16 = 6)",
                               rank_, what, axis, int(dtype));
    }
  }
  uint64_t members = uint64_t(mesh_.shape()[size_t(axis)]);
  uint64_t block = count * element;
  // All four move `members` blocks on one side and one block or all of them on the other.
  bool overflow = element && block / element != count;
  uint64_t whole = block * members;
  overflow = overflow || (members && whole / members != block) || whole > uint64_t(PTRDIFF_MAX);
  if (overflow) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "rank %d: %s on mesh axis %d: %llu %s is too large",
                             rank_, what, axis, (unsigned long long)count, reduces ? "elements" : "bytes per block");
  }
  uint64_t send_bytes = op == Op::kAllReduce || op == Op::kAllGather ? block : whole;
  uint64_t recv_bytes = op == Op::kAllReduce || op == Op::kReduceScatter ? block : whole;
  if ((send_bytes && !send) || (recv_bytes && !recv)) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "rank %d: %s on mesh axis %d: %s buffer is NULL", rank_,
                             what, axis, send_bytes && !send ? "the send" : "the receive");
  }
  auto s = reinterpret_cast<uintptr_t>(send), r = reinterpret_cast<uintptr_t>(recv);
  if (send_bytes && recv_bytes && s < r + recv_bytes && r < s + send_bytes) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "rank %d: %s on mesh axis %d: the send and receive buffers overlap", rank_, what, axis);
  }
  if (members == 1) {
    // A group of one: every collective is a copy.
    return recv_bytes ? copy(recv, send, recv_bytes, stream) : nullptr;
  }
  return collective(op, axis, dtype, send, recv, count, stream);
}

flowc_status broadcast_from_first(Communicator& comm, void* data, size_t bytes) {
  // After axis a, every rank whose coordinates past a are all 0 holds rank 0's bytes.
  std::vector<uint8_t> gathered;
  for (int32_t a = 0; a < comm.mesh().num_axes(); ++a) {
    gathered.resize(bytes * size_t(comm.mesh().shape()[size_t(a)]));
    if (flowc_status status = comm.all_gather(a, data, gathered.data(), bytes)) return status;
    std::memcpy(data, gathered.data(), bytes);
  }
  return nullptr;
}

}  // namespace flowc

// -- the C functions that generated steps call -------------------------------------------------

namespace {

// ctx->error must outlive the step; the engine reads it on this thread as soon as the step returns.
thread_local std::string step_error;

int step_result(flowc_step_ctx* ctx, flowc_status status) {
  if (!status) return 0;
  int code = int(flowc_status_get_code(status));
  step_error = flowc_status_get_message(status);
  flowc_status_free(status);
  ctx->error = step_error.c_str();
  return code;
}

// The step's communicator, or a failure in ctx->error when its engine has none.
flowc::Communicator* communicator(flowc_step_ctx* ctx, const char* what) {
  if (!ctx->comm) {
    step_result(ctx, flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                       "%s: this engine has no communicator; collectives run only in a model "
                                       "compiled for a device mesh",
                                       what));
  }
  return ctx->comm;
}

}  // namespace

extern "C" int flowc_comm_coord(flowc_step_ctx* ctx, int32_t mesh_axis, int32_t* out_coord, int32_t* out_size) {
  if (!ctx) return FLOWC_STATUS_INVALID_ARGUMENT;
  flowc::Communicator* comm = communicator(ctx, "flowc_comm_coord");
  if (!comm) return FLOWC_STATUS_FAILED_PRECONDITION;
  const flowc::Mesh& mesh = comm->mesh();
  if (mesh_axis < 0 || mesh_axis >= mesh.num_axes()) {
    return step_result(ctx, flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                                              "flowc_comm_coord: mesh axis %d is out of range: the mesh %s has axes 0..%d",
                                              mesh_axis, mesh.describe().c_str(), mesh.num_axes() - 1));
  }
  if (out_coord) *out_coord = comm->coords()[mesh_axis];
  if (out_size) *out_size = mesh.shape()[size_t(mesh_axis)];
  return 0;
}

extern "C" int flowc_comm_all_reduce(flowc_step_ctx* ctx, int32_t mesh_axis, flowc_comm_dtype dtype, const void* send,
                                     void* recv, uint64_t count) {
  if (!ctx) return FLOWC_STATUS_INVALID_ARGUMENT;
  flowc::Communicator* comm = communicator(ctx, "all_reduce");
  if (!comm) return FLOWC_STATUS_FAILED_PRECONDITION;
  return step_result(ctx, comm->all_reduce(mesh_axis, dtype, send, recv, count, ctx->stream));
}

extern "C" int flowc_comm_all_gather(flowc_step_ctx* ctx, int32_t mesh_axis, const void* send, void* recv,
                                     uint64_t block_bytes) {
  if (!ctx) return FLOWC_STATUS_INVALID_ARGUMENT;
  flowc::Communicator* comm = communicator(ctx, "all_gather");
  if (!comm) return FLOWC_STATUS_FAILED_PRECONDITION;
  return step_result(ctx, comm->all_gather(mesh_axis, send, recv, block_bytes, ctx->stream));
}

extern "C" int flowc_comm_reduce_scatter(flowc_step_ctx* ctx, int32_t mesh_axis, flowc_comm_dtype dtype,
                                         const void* send, void* recv, uint64_t count) {
  if (!ctx) return FLOWC_STATUS_INVALID_ARGUMENT;
  flowc::Communicator* comm = communicator(ctx, "reduce_scatter");
  if (!comm) return FLOWC_STATUS_FAILED_PRECONDITION;
  return step_result(ctx, comm->reduce_scatter(mesh_axis, dtype, send, recv, count, ctx->stream));
}

extern "C" int flowc_comm_all_to_all(flowc_step_ctx* ctx, int32_t mesh_axis, const void* send, void* recv,
                                     uint64_t block_bytes) {
  if (!ctx) return FLOWC_STATUS_INVALID_ARGUMENT;
  flowc::Communicator* comm = communicator(ctx, "all_to_all");
  if (!comm) return FLOWC_STATUS_FAILED_PRECONDITION;
  return step_result(ctx, comm->all_to_all(mesh_axis, send, recv, block_bytes, ctx->stream));
}
