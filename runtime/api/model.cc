#include "flowc/model.h"

#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>

#include "runtime/base/arena.h"
#include "runtime/api/guarded.h"

// Runs share the engine; set_threads swaps it, so it waits for them (and they for it).
struct flowc_model {
  const flowc_model_desc* desc = nullptr;
  void* weights = nullptr;
  flowc_engine* engine = nullptr;
  mutable std::shared_mutex mu;

  ~flowc_model() {
    if (engine) flowc_engine_free(engine);
    flowc_arena_free(weights);
  }
};

namespace {

flowc_status invalid(const char* what) {
  return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "%s", what);
}

flowc_status read_weights(const std::string& path, const flowc_model_desc& desc, void** out_weights) {
  *out_weights = nullptr;
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) return flowc_status_make(FLOWC_STATUS_NOT_FOUND, "cannot open %s", path.c_str());
  uint64_t size = uint64_t(file.tellg());
  if (size != desc.weights_bytes) {
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "%s has %llu bytes, the model expects %llu: it belongs to another compile",
                             path.c_str(), (unsigned long long)size,
                             (unsigned long long)desc.weights_bytes);
  }
  void* data = nullptr;
  FLOWC_RETURN_IF_ERROR(flowc_arena_allocate(size_t(size), &data));
  file.seekg(0);
  if (size && !file.read(static_cast<char*>(data), std::streamsize(size))) {
    flowc_arena_free(data);
    return flowc_status_make(FLOWC_STATUS_UNAVAILABLE, "cannot read %s", path.c_str());
  }
  if (flowc_weights_checksum(data, size) != desc.weights_checksum) {
    flowc_arena_free(data);
    return flowc_status_make(FLOWC_STATUS_FAILED_PRECONDITION,
                             "%s does not match the model (checksum differs): it belongs to another compile",
                             path.c_str());
  }
  *out_weights = data;
  return nullptr;
}

flowc_status start_engine(flowc_model* model, int32_t num_threads, flowc_engine** out_engine) {
  flowc_plan plan = model->desc->plan;
  plan.weights = model->weights;
  flowc_options options{};
  options.num_threads = num_threads;
  return flowc_engine_create(&plan, &options, out_engine);
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

flowc_status run(flowc_model* model, int64_t batch, const void* const* inputs, void* const* outputs) {
  if (!model) return invalid("model is NULL");
  FLOWC_RETURN_IF_ERROR(check_buffers(*model->desc, batch, inputs, outputs));
  std::shared_lock<std::shared_mutex> lock(model->mu);
  return flowc_engine_run(model->engine, inputs, outputs, batch);
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
    auto* model = new flowc_model;
    model->desc = flowc_model_describe();
    flowc_status status = read_weights(std::string(dir) + "/weights.bin", *model->desc, &model->weights);
    if (!num_threads) num_threads = model->desc->default_threads;
    if (!status) status = start_engine(model, num_threads, &model->engine);
    if (status) {
      delete model;
      return status;
    }
    *out_model = model;
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
    flowc_engine* engine = nullptr;
    FLOWC_RETURN_IF_ERROR(start_engine(model, num_threads, &engine));
    flowc_engine_free(model->engine);
    model->engine = engine;
    return nullptr;
  });
}

extern "C" flowc_status flowc_model_query_threads(const flowc_model* model, int32_t* out_count) {
  if (!model || !out_count) return invalid("model or out_count is NULL");
  std::shared_lock<std::shared_mutex> lock(model->mu);
  return flowc_engine_query_thread_count(model->engine, out_count);
}
