#include "flowc/runtime.h"

#include <exception>
#include <memory>
#include <new>

#include "runtime/core/engine.h"
#include "runtime/device/cpu/cpu_device.h"
#include "runtime/api/guarded.h"

struct flowc_engine {
  // Declared first so that it is destroyed last: the engine's workers use it.
  flowc::CpuDevice device;
  std::unique_ptr<flowc::Engine> engine;

  explicit flowc_engine(int num_threads) : device(num_threads) {}
};

extern "C" flowc_status flowc_engine_create(const flowc_plan* plan, const flowc_options* options,
                                            flowc_engine** out_engine) {
  if (!out_engine) return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "out_engine is NULL");
  *out_engine = nullptr;
  if (!plan) return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "plan is NULL");
  int num_threads = options ? options->num_threads : 0;
  if (num_threads < 0) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "num_threads is %d; use 0 for the core count",
                             num_threads);
  }
  return flowc::guarded("flowc_engine_create", [&]() -> flowc_status {
    auto handle = std::make_unique<flowc_engine>(num_threads);
    flowc::EngineOptions engine_options{&handle->device, &handle->device.pool()};
    FLOWC_RETURN_IF_ERROR(flowc::Engine::create(*plan, engine_options, &handle->engine));
    *out_engine = handle.release();
    return nullptr;
  });
}

extern "C" flowc_status flowc_engine_run(flowc_engine* engine, const void* const* inputs,
                                         void* const* outputs, int64_t batch) {
  if (!engine) return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "engine is NULL");
  return flowc::guarded("flowc_engine_run", [&] { return engine->engine->run(inputs, outputs, batch); });
}

extern "C" flowc_status flowc_engine_query_thread_count(const flowc_engine* engine,
                                                        int32_t* out_count) {
  if (!engine || !out_count) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "engine or out_count is NULL");
  }
  *out_count = const_cast<flowc_engine*>(engine)->device.pool().num_threads();
  return nullptr;
}

extern "C" void flowc_engine_free(flowc_engine* engine) { delete engine; }
