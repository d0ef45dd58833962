#include "flowc/model.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/api/guarded.h"
#include "runtime/base/arena.h"
#include "runtime/comm/comm.h"
#include "runtime/comm/launch.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/comm/mpi/mpi_communicator.h"
#include "runtime/core/engine.h"
#include "runtime/device/cpu/cpu_device.h"
#ifdef FLOWC_WITH_CUDA
#include "runtime/comm/nccl/nccl_communicator.h"
#include "runtime/device/cuda/cuda_device.h"
#include "runtime/device/cuda/staged_communicator.h"
#endif

namespace {

// One rank of the mesh that runs in this process; the only one on one device or under MPI.
struct Rank {
  int32_t rank = 0;
  void* weights = nullptr;                    // in host memory, or in gpu's
  std::unique_ptr<flowc::Communicator> comm;  // null on one device
  std::unique_ptr<flowc::Device> gpu;         // a cuda model's device, kept for the model's life; else null
  std::unique_ptr<flowc::CpuDevice> cpu;      // a cpu model's, replaced with the engine by set_threads
  std::unique_ptr<flowc::Engine> engine;

  ~Rank() {
    engine.reset();  // its workers use the device, the communicator and the weights
    cpu.reset();
    comm.reset();
    if (gpu) {
      gpu->free(weights);
    } else {
      flowc_arena_free(weights);
    }
  }
};

// Where the ranks other than 0 write the outputs nobody reads (local communicator): one set per
// run in flight, kept for the next run.
struct Scratch {
  void* block = nullptr;
  std::vector<void*> outputs;  // [rank - 1][output]
  ~Scratch() { flowc_arena_free(block); }
};

}  // namespace

// Runs share the engines; set_threads replaces them, so it waits for them (and they for it).
struct flowc_model {
  const flowc_model_desc* desc = nullptr;
  flowc::Mesh mesh;            // of one rank on one device
  int32_t process_rank = -1;   // under MPI, this process's rank; -1: every rank runs here
  std::vector<std::unique_ptr<Rank>> ranks;
  mutable std::shared_mutex mu;
  std::mutex admission_mu;     // requests enter every rank's engine in one order
  std::mutex scratch_mu;
  std::vector<std::unique_ptr<Scratch>> scratch;  // sets not in use

  ~flowc_model() {
    { std::unique_lock<std::shared_mutex> wait_for_runs(mu); }
    ranks.clear();
  }
};

namespace {

flowc_status invalid(const char* what) {
  return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s", what);
}

flowc_status read_weights(const std::string& path, uint64_t bytes, uint64_t checksum, void** out_weights) {
  *out_weights = nullptr;
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return flowc_status_make(FLOWC_STATUS_NOT_FOUND, "cannot open %s", path.c_str());
  uint64_t size = uint64_t(file.tellg());
  if (size != bytes) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "%s has %llu bytes, the model expects %llu: it belongs to another compile",
                             path.c_str(), (unsigned long long)size, (unsigned long long)bytes);
  }
  void* data = nullptr;
  FLOWC_RETURN_IF_ERROR(flowc_arena_allocate(size_t(size), &data));
  file.seekg(0);
  if (size && !file.read(static_cast<char*>(data), std::streamsize(size))) {
    flowc_arena_free(data);
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "cannot read %s", path.c_str());
  }
  if (flowc_weights_checksum(data, size) != checksum) {
    flowc_arena_free(data);
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "%s does not match the model (checksum differs): it belongs to another compile",
                             path.c_str());
  }
  *out_weights = data;
  return nullptr;
}

// The weights of `rank` (weights.bin on one device, weights.r<rank>.bin on a mesh) in host memory.
flowc_status read_rank_weights(const std::string& dir, const flowc_model_desc& desc, int32_t rank, void** out) {
  if (!desc.mesh_rank) return read_weights(dir + "/weights.bin", desc.weights_bytes, desc.weights_checksum, out);
  return read_weights(dir + "/weights.r" + std::to_string(rank) + ".bin", desc.weights_bytes,
                      desc.rank_weights_checksums[rank], out);
}

// Intra-op threads for each rank in this process, from the caller's count (0: the default).
int32_t threads_per_rank(const flowc_model& model, int32_t num_threads) {
  int32_t here = int32_t(model.ranks.size());
  if (!num_threads) num_threads = model.desc->default_threads;
  if (num_threads) return std::max(1, num_threads / here);
  // The cores, shared among the ranks on this host (MPI processes too).
  const flowc::Communicator* comm = model.ranks[0]->comm.get();
  int32_t on_host = comm ? std::max(here, comm->ranks_on_host()) : here;
  return std::max(1, int32_t(std::max(1u, std::thread::hardware_concurrency())) / on_host);
}

// A cpu model's engine gets a new CpuDevice with `threads` (out_cpu); a cuda model's, the rank's gpu.
flowc_status start_engine(const flowc_model& model, const Rank& rank, int32_t threads,
                          std::unique_ptr<flowc::CpuDevice>* out_cpu, std::unique_ptr<flowc::Engine>* out_engine) {
  std::unique_ptr<flowc::CpuDevice> cpu;
  flowc_plan plan = model.desc->plan;
  plan.weights = rank.weights;
  flowc::EngineOptions options;
  if (rank.gpu) {
    options.device = rank.gpu.get();
  } else {
    cpu = std::make_unique<flowc::CpuDevice>(threads);
    options.device = cpu.get();
    options.pool = &cpu->pool();
  }
  options.rank = rank.rank;
  options.coords = rank.comm ? rank.comm->coords() : nullptr;
  options.comm = rank.comm.get();
  FLOWC_RETURN_IF_ERROR(flowc::Engine::create(plan, options, out_engine));
  *out_cpu = std::move(cpu);
  return nullptr;
}

// Starts every rank's engine anew; on failure the model keeps the ones it had.
flowc_status start_engines(flowc_model* model, int32_t num_threads) {
  int32_t threads = threads_per_rank(*model, num_threads);
  std::vector<std::unique_ptr<flowc::CpuDevice>> cpus(model->ranks.size());
  std::vector<std::unique_ptr<flowc::Engine>> engines(model->ranks.size());
  for (size_t r = 0; r < model->ranks.size(); ++r) {
    FLOWC_RETURN_IF_ERROR(start_engine(*model, *model->ranks[r], threads, &cpus[r], &engines[r]));
  }
  for (size_t r = 0; r < model->ranks.size(); ++r) {
    Rank& rank = *model->ranks[r];
    rank.engine.reset();
    rank.cpu = std::move(cpus[r]);
    rank.engine = std::move(engines[r]);
  }
  return nullptr;
}

// Whether the model's steps run on the CUDA device (desc.device "cuda") or the CPU ("cpu" or NULL).
flowc_status resolve_device(const flowc_model_desc& desc, bool* out_cuda) {
  const char* device = desc.device ? desc.device : "cpu";
  *out_cuda = std::strcmp(device, "cuda") == 0;
  if (*out_cuda || std::strcmp(device, "cpu") == 0) return nullptr;
  return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                           "the model was compiled for device '%s'; this runtime runs cpu and cuda models: compile "
                           "it again with this flowc",
                           device);
}

#ifdef FLOWC_WITH_CUDA
// Bytes of pinned staging for `count` tensors at the batch bound, each at an aligned offset (the
// offsets the generated upload and download steps use).
size_t staged_bytes(const flowc_tensor_info* tensors, int32_t count) {
  constexpr size_t kAlign = flowc::CudaDevice::kStagingAlignment;
  size_t total = 0;
  for (int32_t i = 0; i < count; ++i) total += (size_t(tensors[i].nbytes) + kAlign - 1) / kAlign * kAlign;
  return total;
}

// GPU `ordinal` with the rank's weights on it, read through host memory.
flowc_status load_on_gpu(const std::string& dir, const flowc_model_desc& desc, int32_t ordinal, Rank* rank) {
  flowc::CudaDevice::Options options;
  options.ordinal = ordinal;
  options.num_streams = desc.plan.num_streams;
  options.slots = desc.plan.arena_slots;
  options.input_bytes = staged_bytes(desc.inputs, desc.num_inputs);
  options.output_bytes = staged_bytes(desc.outputs, desc.num_outputs);
  options.comm_stream = desc.plan.comm_stream;
  const char* graphs = std::getenv("FLOWC_CUDA_GRAPHS");
  options.graphs = !(graphs && std::strcmp(graphs, "0") == 0);
  std::unique_ptr<flowc::CudaDevice> gpu;
  FLOWC_RETURN_IF_ERROR(flowc::CudaDevice::create(options, &gpu));
  void* host = nullptr;
  FLOWC_RETURN_IF_ERROR(read_rank_weights(dir, desc, rank->rank, &host));
  flowc_status status = gpu->allocate(size_t(desc.weights_bytes), &rank->weights);
  if (!status) status = gpu->copy_to_device(rank->weights, host, size_t(desc.weights_bytes));
  flowc_arena_free(host);
  rank->gpu = std::move(gpu);  // frees the weights with the rank, even after a failed copy
  return status;
}

// The GPU of mesh rank `rank`, the `index`-th rank on this host: options->device, then the next
// ones, round the GPUs there are (several ranks share a GPU where there are fewer: the local and
// MPI communicators allow that, NCCL does not).
flowc_status gpu_for(const flowc_options* options, int32_t rank, int32_t index, int32_t* out_ordinal) {
  int32_t count = 0;
  FLOWC_RETURN_IF_ERROR(flowc::CudaDevice::count(&count));
  int32_t base = options ? options->device : 0;
  if (base < 0 || base >= count) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE,
                             "rank %d: target cuda: there is no GPU %d; this machine has %d (0..%d): set "
                             "flowc_options.device to one of them",
                             rank, base, count, count - 1);
  }
  *out_ordinal = int32_t((int64_t(base) + index) % count);
  return nullptr;
}

// A host communicator's rank moved onto its GPU: collectives staged through host memory.
void stage_on_gpu(Rank* rank) {
  rank->comm = flowc::stage_through_host(std::move(rank->comm), static_cast<const flowc::CudaDevice&>(*rank->gpu));
}

#else
flowc_status load_on_gpu(const std::string&, const flowc_model_desc&, int32_t, Rank*) {
  return flowc_status_make(FLOWC_STATUS_UNIMPLEMENTED,
                           "the model was compiled for --target cuda, but this runtime was built without CUDA: build "
                           "the model's project with the CUDA toolkit (FLOWC_CUDA=ON), or compile it with --target "
                           "cpu");
}
#endif

// Whether the runtime can run collectives through NCCL.
constexpr bool kWithNccl =
#ifdef FLOWC_WITH_NCCL
    true;
#else
    false;
#endif

// What the launcher's environment says (launcher "" where no launcher's variables are set);
// INVALID_ARGUMENT, naming the variable, where they cannot be read.
flowc_status launch_env(flowc::LaunchEnv* out_env) {
  *out_env = flowc::LaunchEnv{};  // read_launch_env writes it only on success
  flowc_status status = flowc::read_launch_env([](const char* name) { return std::getenv(name); }, out_env);
  if (!status || flowc_status_get_code(status) != FLOWC_STATUS_FAILED_PRECONDITION) return status;
  flowc_status_free(status);  // no launcher: *out_env stays empty
  return nullptr;
}

// This process's place on its host (0 where the launcher does not say).
int32_t local_rank() {
  flowc::LaunchEnv env;
  flowc_status_free(launch_env(&env));
  return std::max(env.local_rank, 0);
}

// options->comm, or for FLOWC_COMM_AUTO the environment's choice (see flowc_comm_kind).
flowc_status resolve_comm(int32_t requested, bool cuda, flowc_comm_kind* out_kind) {
  if (requested < FLOWC_COMM_AUTO || requested > FLOWC_COMM_NCCL) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "options.comm is %d; use FLOWC_COMM_AUTO (0), FLOWC_COMM_LOCAL (1), FLOWC_COMM_MPI (2) or "
                             "FLOWC_COMM_NCCL (3)",
                             requested);
  }
  *out_kind = flowc_comm_kind(requested);
  const char* env = std::getenv("FLOWC_COMM");
  if (requested == FLOWC_COMM_AUTO) {
    bool launched = flowc::launched_by_mpi();
    if (!env || !*env || std::strcmp(env, "auto") == 0) {
      flowc::LaunchEnv env;
      if (!launched) FLOWC_RETURN_IF_ERROR(launch_env(&env));
      bool torchrun = std::strcmp(env.launcher, "torchrun") == 0;
      if (cuda && kWithNccl && (launched || torchrun)) {
        *out_kind = FLOWC_COMM_NCCL;
      } else if (launched) {
        *out_kind = FLOWC_COMM_MPI;
      } else if (torchrun && env.world_size > 1) {
        // Each of the launcher's processes would run every rank: say so instead.
        return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                                 "RANK and WORLD_SIZE=%d say a launcher started this process as one of several, but "
                                 "%s: launch it with mpirun, or set FLOWC_COMM=local to run every rank in each "
                                 "process",
                                 env.world_size,
                                 cuda ? "this runtime has no NCCL (pip install \"flowc[cuda]\" and rebuild)"
                                      : "a model compiled for cpu runs one process per rank under MPI only");
      } else {
        *out_kind = FLOWC_COMM_LOCAL;
      }
    } else if (std::strcmp(env, "local") == 0) {
      *out_kind = FLOWC_COMM_LOCAL;
    } else if (std::strcmp(env, "mpi") == 0) {
      *out_kind = FLOWC_COMM_MPI;
    } else if (std::strcmp(env, "nccl") == 0) {
      *out_kind = FLOWC_COMM_NCCL;
    } else {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                               "FLOWC_COMM is '%s'; use local, mpi or nccl (or leave it unset)", env);
    }
  }
  if (*out_kind == FLOWC_COMM_NCCL && !cuda) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "the NCCL communicator runs models compiled for --target cuda; this one was compiled for "
                             "cpu: use FLOWC_COMM=local or mpi");
  }
  return nullptr;
}

#ifdef FLOWC_WITH_CUDA
// This process's rank over NCCL, in the order that keeps no rank waiting on another's weights:
// the communicator (which meets every rank at once: none has loaded), then the rank's weights
// and engine, then the agreement that every rank did, so that none keeps a model another could
// not load.
flowc_status load_nccl_rank(flowc_model* model, const std::string& dir, const flowc_options* options,
                            int32_t num_threads) {
  auto owned = std::make_unique<Rank>();
  Rank* rank = owned.get();
  int32_t ordinal = -1;
  FLOWC_RETURN_IF_ERROR(flowc::create_nccl_communicator(
      model->mesh,
      [&](int32_t r, int32_t local_rank, int32_t* out_ordinal) {
        rank->rank = r;
        FLOWC_RETURN_IF_ERROR(gpu_for(options, r, local_rank, out_ordinal));
        ordinal = *out_ordinal;
        return flowc_status(nullptr);
      },
      &rank->comm));
  model->process_rank = rank->rank;
  model->ranks.push_back(std::move(owned));
  // Whatever happens here (an exception too), this rank goes on to say so to the others.
  flowc_status loaded = flowc::guarded("loading the rank", [&]() -> flowc_status {
    FLOWC_RETURN_IF_ERROR(load_on_gpu(dir, *model->desc, ordinal, rank));
    return start_engines(model, num_threads);
  });
  return flowc::agree_on_load(*rank->comm, loaded);
}
#endif

// Rank `rank`'s weights in host memory, or on its GPU for a cuda model (the `index`-th on this host).
flowc_status prepare_rank(const std::string& dir, const flowc_model_desc& desc, const flowc_options* options,
                          bool cuda, int32_t index, Rank* rank) {
  if (!cuda) return read_rank_weights(dir, desc, rank->rank, &rank->weights);
  int32_t ordinal = options ? options->device : 0;
#ifdef FLOWC_WITH_CUDA
  if (desc.mesh_rank) FLOWC_RETURN_IF_ERROR(gpu_for(options, rank->rank, index, &ordinal));
#else
  (void)index;
#endif
  return load_on_gpu(dir, desc, ordinal, rank);
}

// The ranks this process runs, with their weights, communicators, (cuda) devices and engines of
// `num_threads`. options->device is read for a cuda model only.
flowc_status load_ranks(flowc_model* model, const std::string& dir, const flowc_options* options,
                        int32_t num_threads) {
  const flowc_model_desc& desc = *model->desc;
  bool cuda = false;
  FLOWC_RETURN_IF_ERROR(resolve_device(desc, &cuda));
#ifndef FLOWC_WITH_CUDA
  if (cuda) return load_on_gpu(dir, desc, 0, nullptr);  // the error that says how to build with CUDA
#endif
  if (!desc.mesh_rank) {
    auto rank = std::make_unique<Rank>();
    FLOWC_RETURN_IF_ERROR(prepare_rank(dir, desc, options, cuda, 0, rank.get()));
    model->ranks.push_back(std::move(rank));
    return start_engines(model, num_threads);
  }
  if (desc.mesh_rank < 0 || !desc.rank_weights_checksums) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "the model describes a mesh of %d axes %s: compile it again", desc.mesh_rank,
                             desc.mesh_rank < 0 ? "" : "with no weights checksums");
  }
  FLOWC_RETURN_IF_ERROR(flowc::Mesh::create(desc.mesh_shape, desc.mesh_rank, &model->mesh));
  flowc_comm_kind kind;
  FLOWC_RETURN_IF_ERROR(resolve_comm(options ? options->comm : FLOWC_COMM_AUTO, cuda, &kind));
#ifdef FLOWC_WITH_CUDA
  if (kind == FLOWC_COMM_NCCL) return load_nccl_rank(model, dir, options, num_threads);
#endif
  if (kind == FLOWC_COMM_MPI) {
    // create_mpi_communicator runs each rank's load, and agrees on it.
    auto rank = std::make_unique<Rank>();
    FLOWC_RETURN_IF_ERROR(flowc::create_mpi_communicator(
        model->mesh,
        [&](int32_t r) {
          rank->rank = r;
          return prepare_rank(dir, desc, options, cuda, local_rank(), rank.get());
        },
        &rank->comm));
#ifdef FLOWC_WITH_CUDA
    if (cuda) stage_on_gpu(rank.get());
#endif
    model->process_rank = rank->rank;
    model->ranks.push_back(std::move(rank));
    return start_engines(model, num_threads);
  }
  std::vector<std::unique_ptr<flowc::Communicator>> comms;
  FLOWC_RETURN_IF_ERROR(flowc::create_local_communicators(model->mesh, &comms));
  for (int32_t r = 0; r < model->mesh.size(); ++r) {
    auto rank = std::make_unique<Rank>();
    rank->rank = r;
    rank->comm = std::move(comms[size_t(r)]);
    FLOWC_RETURN_IF_ERROR(prepare_rank(dir, desc, options, cuda, r, rank.get()));
#ifdef FLOWC_WITH_CUDA
    if (cuda) stage_on_gpu(rank.get());
#endif
    model->ranks.push_back(std::move(rank));
  }
  return start_engines(model, num_threads);
}

flowc_status query_tensor(const flowc_model* model, int32_t index, bool input, flowc_tensor_info* out_info) {
  if (!model || !out_info) return invalid("model or out_info is NULL");
  int32_t count = input ? model->desc->num_inputs : model->desc->num_outputs;
  if (index < 0 || index >= count) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "%s index %d is out of range: the model has %d",
                             input ? "input" : "output", index, count);
  }
  *out_info = (input ? model->desc->inputs : model->desc->outputs)[index];
  return nullptr;
}

// Dims and bytes of `info` at `batch` rows, checked against the model's bound.
flowc_status tensor_at(const flowc_model_desc& desc, const flowc_tensor_info& info, int64_t batch,
                       int64_t* out_shape, uint64_t* out_nbytes) {
  if (desc.max_batch && (batch < 1 || batch > desc.max_batch)) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "batch %lld is outside 1..%lld, the bound it was compiled for",
                             (long long)batch, (long long)desc.max_batch);
  }
  if (!desc.max_batch || !info.per_batch) {
    if (out_shape) std::memcpy(out_shape, info.shape, sizeof(int64_t) * size_t(info.rank));
    if (out_nbytes) *out_nbytes = info.nbytes;
    return nullptr;
  }
  uint64_t count = 1;
  for (int32_t d = 0; d < info.rank; ++d) {
    int64_t dim = info.shape[d] - info.per_batch[d] * (desc.max_batch - batch);
    if (out_shape) out_shape[d] = dim;
    count *= uint64_t(dim);
  }
  uint64_t elements = 1;
  for (int32_t d = 0; d < info.rank; ++d) elements *= uint64_t(info.shape[d]);
  if (out_nbytes) *out_nbytes = elements ? info.nbytes / elements * count : 0;
  return nullptr;
}

flowc_status query_shape(const flowc_model* model, int32_t index, bool input, int64_t batch,
                         int64_t* out_shape, uint64_t* out_nbytes) {
  flowc_tensor_info info;
  FLOWC_RETURN_IF_ERROR(query_tensor(model, index, input, &info));
  if (info.rank && !out_shape) return invalid("out_shape is NULL");
  return tensor_at(*model->desc, info, batch, out_shape, out_nbytes);
}

// Every buffer a request at `batch` rows reads or writes is there.
flowc_status check_buffers(const flowc_model_desc& desc, int64_t batch, const void* const* inputs,
                           void* const* outputs) {
  if ((desc.num_inputs && !inputs) || (desc.num_outputs && !outputs)) {
    return invalid("inputs or outputs is NULL");
  }
  for (int32_t i = 0; i < desc.num_inputs + desc.num_outputs; ++i) {
    bool input = i < desc.num_inputs;
    int32_t j = input ? i : i - desc.num_inputs;
    const flowc_tensor_info& info = input ? desc.inputs[j] : desc.outputs[j];
    uint64_t nbytes = 0;
    FLOWC_RETURN_IF_ERROR(tensor_at(desc, info, batch, nullptr, &nbytes));
    if (nbytes && !(input ? inputs[j] : outputs[j])) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s %d (\"%s\") is NULL", input ? "input" : "output",
                               j, info.name);
    }
  }
  return nullptr;
}

// A set of output buffers for ranks 1.. at the batch bound, reused from an earlier run if one is free.
flowc_status take_scratch(flowc_model* model, std::unique_ptr<Scratch>* out_scratch) {
  {
    std::lock_guard<std::mutex> lock(model->scratch_mu);
    if (!model->scratch.empty()) {
      *out_scratch = std::move(model->scratch.back());
      model->scratch.pop_back();
      return nullptr;
    }
  }
  const flowc_model_desc& desc = *model->desc;
  std::vector<size_t> offsets;
  size_t total = 0;
  for (size_t r = 1; r < model->ranks.size(); ++r) {
    for (int32_t i = 0; i < desc.num_outputs; ++i) {
      offsets.push_back(total);
      size_t bytes = 0;
      if (!flowc_arena_align(size_t(desc.outputs[i].nbytes), &bytes) || total + bytes < total) {
        return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "the outputs are too large to hold once per rank");
      }
      total += bytes;
    }
  }
  auto scratch = std::make_unique<Scratch>();
  FLOWC_RETURN_IF_ERROR(flowc_arena_allocate(total, &scratch->block));
  for (size_t offset : offsets) scratch->outputs.push_back(static_cast<uint8_t*>(scratch->block) + offset);
  *out_scratch = std::move(scratch);
  return nullptr;
}

// Every rank in this process runs the request; the caller gets rank 0's outputs, or the first
// failure (rank 0's if it failed).
flowc_status run_ranks(flowc_model* model, int64_t batch, const void* const* inputs, void* const* outputs) {
  std::unique_ptr<Scratch> scratch;
  FLOWC_RETURN_IF_ERROR(take_scratch(model, &scratch));
  size_t n = model->ranks.size();
  size_t num_outputs = size_t(model->desc->num_outputs);
  std::vector<std::unique_ptr<flowc::Engine::Call>> calls;
  calls.push_back(std::make_unique<flowc::Engine::Call>(inputs, outputs, batch));
  for (size_t r = 1; r < n; ++r) {
    void* const* rank_outputs = num_outputs ? scratch->outputs.data() + (r - 1) * num_outputs : nullptr;
    calls.push_back(std::make_unique<flowc::Engine::Call>(inputs, rank_outputs, batch));
  }
  {
    // Each rank's comm stream issues its collectives in request order: the same order everywhere.
    std::lock_guard<std::mutex> lock(model->admission_mu);
    for (size_t r = 0; r < n; ++r) model->ranks[r]->engine->submit(calls[r].get());
  }
  flowc_status result = nullptr;
  for (size_t r = 0; r < n; ++r) {
    flowc_status status = flowc::Engine::wait(calls[r].get());
    if (!status) continue;
    if (result) {
      flowc_status_free(status);
    } else if (r == 0) {
      result = status;
    } else {
      result = flowc_status_make(flowc_status_get_code(status), "rank %zu of %zu: %s", r, n,
                                 flowc_status_get_message(status));
      flowc_status_free(status);
    }
  }
  std::lock_guard<std::mutex> lock(model->scratch_mu);
  model->scratch.push_back(std::move(scratch));
  return result;
}

flowc_status run(flowc_model* model, int64_t batch, const void* const* inputs, void* const* outputs) {
  if (!model) return invalid("model is NULL");
  FLOWC_RETURN_IF_ERROR(check_buffers(*model->desc, batch, inputs, outputs));
  return flowc::guarded("flowc_model_run", [&]() -> flowc_status {
    std::shared_lock<std::shared_mutex> lock(model->mu);
    if (model->ranks.size() == 1) return model->ranks[0]->engine->run(inputs, outputs, batch);
    return run_ranks(model, batch, inputs, outputs);
  });
}

}  // namespace

extern "C" uint64_t flowc_weights_checksum(const void* data, uint64_t nbytes) {
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  uint64_t sum = 0;
  uint64_t words = nbytes / 8;
  for (uint64_t i = 0; i < words; ++i) {
    uint64_t w;
    std::memcpy(&w, bytes + 8 * i, 8);
    sum += w * (2 * i + 1);
  }
  if (nbytes % 8) {
    uint64_t w = 0;
    std::memcpy(&w, bytes + 8 * words, size_t(nbytes % 8));
    sum += w * (2 * words + 1);
  }
  return sum;
}

extern "C" flowc_status flowc_model_load(const char* dir, const flowc_options* options,
                                         flowc_model** out_model) {
  if (!out_model) return invalid("out_model is NULL");
  *out_model = nullptr;
  if (!dir) return invalid("dir is NULL");
  int32_t num_threads = options ? options->num_threads : 0;
  if (num_threads < 0) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "num_threads is %d; use 0 for the default",
                             num_threads);
  }
  return flowc::guarded("flowc_model_load", [&]() -> flowc_status {
    auto model = std::make_unique<flowc_model>();
    model->desc = flowc_model_describe();
    FLOWC_RETURN_IF_ERROR(load_ranks(model.get(), dir, options, num_threads));
    *out_model = model.release();
    return nullptr;
  });
}

extern "C" void flowc_model_free(flowc_model* model) { delete model; }

extern "C" flowc_status flowc_model_query_name(const flowc_model* model, const char** out_name) {
  if (!model || !out_name) return invalid("model or out_name is NULL");
  *out_name = model->desc->name;
  return nullptr;
}

extern "C" flowc_status flowc_model_query_input_count(const flowc_model* model, int32_t* out_count) {
  if (!model || !out_count) return invalid("model or out_count is NULL");
  *out_count = model->desc->num_inputs;
  return nullptr;
}

extern "C" flowc_status flowc_model_query_output_count(const flowc_model* model, int32_t* out_count) {
  if (!model || !out_count) return invalid("model or out_count is NULL");
  *out_count = model->desc->num_outputs;
  return nullptr;
}

extern "C" flowc_status flowc_model_query_input(const flowc_model* model, int32_t index,
                                                flowc_tensor_info* out_info) {
  return query_tensor(model, index, true, out_info);
}

extern "C" flowc_status flowc_model_query_output(const flowc_model* model, int32_t index,
                                                 flowc_tensor_info* out_info) {
  return query_tensor(model, index, false, out_info);
}

extern "C" flowc_status flowc_model_query_max_batch(const flowc_model* model, int64_t* out_max_batch) {
  if (!model || !out_max_batch) return invalid("model or out_max_batch is NULL");
  *out_max_batch = model->desc->max_batch;
  return nullptr;
}

extern "C" flowc_status flowc_model_query_input_shape(const flowc_model* model, int32_t index, int64_t batch,
                                                      int64_t* out_shape, uint64_t* out_nbytes) {
  return query_shape(model, index, true, batch, out_shape, out_nbytes);
}

extern "C" flowc_status flowc_model_query_output_shape(const flowc_model* model, int32_t index, int64_t batch,
                                                       int64_t* out_shape, uint64_t* out_nbytes) {
  return query_shape(model, index, false, batch, out_shape, out_nbytes);
}

extern "C" flowc_status flowc_model_run(flowc_model* model, const void* const* inputs,
                                        void* const* outputs) {
  return run(model, model && model->desc->max_batch ? model->desc->max_batch : 1, inputs, outputs);
}

extern "C" flowc_status flowc_model_run_batch(flowc_model* model, int64_t batch, const void* const* inputs,
                                              void* const* outputs) {
  if (model && !model->desc->max_batch) {
    return invalid("this model was compiled with fixed shapes; run it with flowc_model_run "
                   "(compile with max_batch for a dynamic batch)");
  }
  return run(model, batch, inputs, outputs);
}

extern "C" flowc_status flowc_model_set_threads(flowc_model* model, int32_t num_threads) {
  if (!model) return invalid("model is NULL");
  if (num_threads < 0) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "num_threads is %d; use 0 for the core count",
                             num_threads);
  }
  return flowc::guarded("flowc_model_set_threads", [&]() -> flowc_status {
    std::unique_lock<std::shared_mutex> lock(model->mu);
    if (model->ranks[0]->gpu) return nullptr;  // a GPU runs the steps: no intra-op threads to set
    return start_engines(model, num_threads);
  });
}

extern "C" flowc_status flowc_model_query_threads(const flowc_model* model, int32_t* out_count) {
  if (!model || !out_count) return invalid("model or out_count is NULL");
  std::shared_lock<std::shared_mutex> lock(model->mu);
  int32_t count = 0;
  for (const auto& rank : model->ranks) count += rank->cpu ? rank->cpu->pool().num_threads() : 1;
  *out_count = count;
  return nullptr;
}

extern "C" flowc_status flowc_model_query_ranks(const flowc_model* model, int32_t* out_ranks, int32_t* out_rank) {
  if (!model) return invalid("model is NULL");
  if (out_ranks) *out_ranks = model->mesh.size();
  if (out_rank) *out_rank = model->process_rank;
  return nullptr;
}
