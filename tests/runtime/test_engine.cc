#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "runtime/base/arena.h"
#include "runtime/core/engine.h"
#include "runtime/device/cpu/cpu_device.h"

using flowc::Engine;

constexpr int64_t kLength = 257;                 // odd, so ranges split unevenly
constexpr size_t kBuffer = 2112;                 // kLength int64s rounded up to 64 bytes
constexpr const char* kWeights = "weights";

static int64_t* buffer(flowc_step_ctx* ctx, int i) {
  return reinterpret_cast<int64_t*>(ctx->arena + i * kBuffer);
}
static const int64_t* input(flowc_step_ctx* ctx) { return static_cast<const int64_t*>(ctx->inputs[0]); }

// Varies interleavings without sleeping.
static void jitter(flowc_step_ctx* ctx) {
  if (ctx->request % 5 == 0) std::this_thread::yield();
}

// chain: a = 3x + 1; b = a * a; c = b - 7; out = c + x
static int chain_a(flowc_step_ctx* ctx) {
  jitter(ctx);
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 0)[i] = 3 * input(ctx)[i] + 1;
  return 0;
}
static int chain_b(flowc_step_ctx* ctx) {
  if (input(ctx)[0] < 0) {
    ctx->error = "negative input";
    return FLOWC_STATUS_OUT_OF_RANGE;
  }
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 1)[i] = buffer(ctx, 0)[i] * buffer(ctx, 0)[i];
  return 0;
}
static int chain_c(flowc_step_ctx* ctx) {
  jitter(ctx);
  ctx->pool->parallel_for(kLength, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) buffer(ctx, 2)[i] = buffer(ctx, 1)[i] - 7;
  });
  return 0;
}
static int chain_out(flowc_step_ctx* ctx) {
  if (ctx->weights != kWeights) return FLOWC_STATUS_INTERNAL;
  auto* out = static_cast<int64_t*>(ctx->outputs[0]);
  for (int64_t i = 0; i < kLength; ++i) out[i] = buffer(ctx, 2)[i] + input(ctx)[i] + ctx->batch;
  return 0;
}
static int64_t chain_expected(int64_t x, int64_t batch) { return (3 * x + 1) * (3 * x + 1) - 7 + x + batch; }

// diamond: a = x + 1; b = 2a (stream 0) and c = a * a (stream 1); out = b + c
static int diamond_a(flowc_step_ctx* ctx) {
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 0)[i] = input(ctx)[i] + 1;
  return 0;
}
static int diamond_b(flowc_step_ctx* ctx) {
  jitter(ctx);
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 1)[i] = 2 * buffer(ctx, 0)[i];
  return 0;
}
static int diamond_c(flowc_step_ctx* ctx) {
  if (input(ctx)[0] < 0) {
    ctx->error = "negative input";
    return FLOWC_STATUS_OUT_OF_RANGE;
  }
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 2)[i] = buffer(ctx, 0)[i] * buffer(ctx, 0)[i];
  return 0;
}
static int diamond_out(flowc_step_ctx* ctx) {
  auto* out = static_cast<int64_t*>(ctx->outputs[0]);
  for (int64_t i = 0; i < kLength; ++i) out[i] = buffer(ctx, 1)[i] + buffer(ctx, 2)[i] + ctx->batch;
  return 0;
}
static int64_t diamond_expected(int64_t x, int64_t batch) { return 2 * (x + 1) + (x + 1) * (x + 1) + batch; }

struct Graph {
  const char* name;
  const char* failing_step;
  std::vector<flowc_plan_step> steps;
  int64_t (*expected)(int64_t, int64_t);
};

static const int32_t r0[] = {0}, r1[] = {1}, r2[] = {2}, r12[] = {1, 2};

static Graph chain() {
  return {"chain", "step 'b' (#1)",
          {{"a", chain_a, 0, nullptr, 0, r0, 1},
           {"b", chain_b, 1, r0, 1, r1, 1},
           {"c", chain_c, 0, r1, 1, r2, 1},
           {"out", chain_out, 1, r2, 1, nullptr, 0}},
          chain_expected};
}

static Graph diamond() {
  return {"diamond", "step 'c' (#2)",
          {{"a", diamond_a, 0, nullptr, 0, r0, 1},
           {"b", diamond_b, 0, r0, 1, r1, 1},
           {"c", diamond_c, 1, r0, 1, r2, 1},
           {"out", diamond_out, 1, r12, 2, nullptr, 0}},
          diamond_expected};
}

static std::unique_ptr<Engine> make_engine(const std::vector<flowc_plan_step>& steps,
                                           const std::vector<int32_t>& slots, int32_t arena_slots,
                                           flowc::CpuDevice& device) {
  flowc_plan plan{steps.data(), int32_t(steps.size()), slots.data(), int32_t(slots.size()), 2,
                  3 * kBuffer, arena_slots, kWeights};
  std::unique_ptr<Engine> engine;
  flowc_status status = Engine::create(plan, {&device, &device.pool()}, &engine);
  CHECK(!status, "%s", flowc_status_get_message(status));
  return engine;
}

// 8 callers x 200 requests, every answer checked; some requests fail on purpose, and only
// their callers see it.
static void check_concurrent(const Graph& graph, int32_t register_slots, int32_t arena_slots) {
  flowc::CpuDevice device(3);
  auto engine = make_engine(graph.steps, {register_slots, register_slots, register_slots}, arena_slots, device);
  constexpr int kCallers = 8, kRequests = 200;
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      std::vector<int64_t> x(kLength), out(kLength);
      for (int k = 0; k < kRequests; ++k) {
        bool fail = (c * kRequests + k) % 37 == 5;
        for (int64_t i = 0; i < kLength; ++i) x[i] = c * 1000 + 3 * k + i;
        if (fail) x[0] = -1;
        std::fill(out.begin(), out.end(), -12345);
        const void* inputs[] = {x.data()};
        void* outputs[] = {out.data()};
        int64_t batch = k % 4 + 1;
        flowc_status status = engine->run(inputs, outputs, batch);
        if (fail) {
          CHECK(flowc_status_get_code(status) == FLOWC_STATUS_OUT_OF_RANGE, "%s", flowc_status_get_message(status));
          std::string message = flowc_status_get_message(status);
          CHECK(message.find(graph.failing_step) != std::string::npos &&
                    message.find("negative input") != std::string::npos,
                "%s", message.c_str());
          failures++;
        } else {
          CHECK(!status, "%s %d/%d caller %d request %d: %s", graph.name, register_slots, arena_slots, c, k,
                flowc_status_get_message(status));
          for (int64_t i = 0; i < kLength; ++i) {
            CHECK(out[i] == graph.expected(x[i], batch), "%s caller %d request %d element %lld: %lld",
                  graph.name, c, k, (long long)i, (long long)out[i]);
          }
        }
        flowc_status_free(status);
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(failures == (kCallers * kRequests + 31) / 37);
  std::printf("%-8s register slots %d, arena slots %d: %d requests ok, %d failed as planned\n", graph.name,
              register_slots, arena_slots, kCallers * kRequests - failures.load(), failures.load());
}

// Two steps on two streams meet while working on neighbouring requests; if requests did not
// pipeline, each would time out waiting for the other.
struct Rendezvous {
  std::mutex mu;
  std::condition_variable cv;
  int64_t running[2] = {-1, -1};  // the request each step is in right now, or -1
  int64_t met_up_to = 0;          // pairs (first on k, second on k - 1) seen together
  int64_t total = 0;
  std::chrono::milliseconds timeout{0};
  std::atomic<int> met{0};

  int meet(flowc_step_ctx* ctx, int self) {
    int64_t pair = self == 0 ? ctx->request : ctx->request + 1;
    int64_t other = self == 0 ? ctx->request - 1 : ctx->request + 1;
    std::unique_lock<std::mutex> lock(mu);
    running[self] = ctx->request;
    cv.notify_all();
    bool ok = other < 0 || other >= total || cv.wait_for(lock, timeout, [&] {
      if (running[1 - self] == other && met_up_to < pair) {
        met_up_to = pair;
        met++;
      }
      return met_up_to >= pair;
    });
    running[self] = -1;
    if (!ok) ctx->error = "no overlap";
    return ok ? 0 : FLOWC_STATUS_UNAVAILABLE;
  }
};
static Rendezvous rendezvous;
static int meet_first(flowc_step_ctx* ctx) { return rendezvous.meet(ctx, 0); }
static int meet_second(flowc_step_ctx* ctx) { return rendezvous.meet(ctx, 1); }

static int count_pipelined(int32_t arena_slots, int per_caller, std::chrono::milliseconds timeout) {
  rendezvous.running[0] = rendezvous.running[1] = -1;
  rendezvous.met_up_to = 0;
  rendezvous.total = 2 * per_caller;
  rendezvous.timeout = timeout;
  rendezvous.met = 0;
  flowc::CpuDevice device(1);
  std::vector<flowc_plan_step> steps = {{"first", meet_first, 0, nullptr, 0, r0, 1},
                                        {"second", meet_second, 1, r0, 1, nullptr, 0}};
  auto engine = make_engine(steps, {2}, arena_slots, device);
  std::atomic<int> failed{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 2; ++c) {
    callers.emplace_back([&] {
      for (int k = 0; k < per_caller; ++k) {
        flowc_status status = engine->run(nullptr, nullptr);
        if (status) failed++;
        flowc_status_free(status);
      }
    });
  }
  for (auto& t : callers) t.join();
  return failed;
}

static void check_pipelining() {
  int failed = count_pipelined(2, 10, std::chrono::seconds(10));
  CHECK(failed == 0 && rendezvous.met == 19, "%d failed, %d met", failed, rendezvous.met.load());
  // One arena slot admits one request at a time: the same steps never meet.
  failed = count_pipelined(1, 2, std::chrono::milliseconds(30));
  CHECK(rendezvous.met == 0 && failed > 0, "%d failed, %d met", failed, rendezvous.met.load());
  std::printf("pipelining: steps on two streams overlapped on all 19 neighbouring request pairs\n");
}

// A device with a native stream per plan stream (host memory underneath), like cuda's: each step
// must get its stream's handle, and each failed request's slot must be drained before reuse.
class StreamDevice final : public flowc::Device {
 public:
  const char* name() const override { return "streams"; }
  flowc_status allocate(size_t bytes, void** out_ptr) override { return flowc_arena_allocate(bytes, out_ptr); }
  void free(void* ptr) override { flowc_arena_free(ptr); }
  void* stream(int32_t index) override { return &streams_[index]; }
  void drain_slot(int32_t slot) override {
    std::lock_guard<std::mutex> lock(mu);
    drained.push_back(slot);
  }

  std::mutex mu;
  std::vector<int32_t> drained;

 private:
  int streams_[2] = {};
};

struct Fired {
  int64_t request;
  int32_t slot, stream_index;
  void* stream;
  uint8_t* arena;
};
static std::mutex fired_mu;
static std::vector<Fired> fired;

static int record(flowc_step_ctx* ctx) {
  std::lock_guard<std::mutex> lock(fired_mu);
  fired.push_back({ctx->request, ctx->slot, ctx->stream_index, ctx->stream, ctx->arena});
  if (ctx->request % 5 == 2 && ctx->stream_index == 0) {
    ctx->error = "every fifth request fails";
    return FLOWC_STATUS_OUT_OF_RANGE;
  }
  return 0;
}

static void check_step_context() {
  constexpr int32_t kArenaSlots = 3;
  constexpr int kRequests = 20;
  StreamDevice device;
  std::vector<flowc_plan_step> steps = {{"first", record, 0, nullptr, 0, r0, 1},
                                        {"second", record, 1, r0, 1, nullptr, 0}};
  const int32_t register_slots[] = {2};
  flowc_plan plan{steps.data(), 2, register_slots, 1, 2, 128, kArenaSlots, nullptr};
  std::unique_ptr<Engine> engine;
  flowc_status status = Engine::create(plan, {&device, nullptr}, &engine);
  CHECK(!status, "%s", flowc_status_get_message(status));
  for (int k = 0; k < kRequests; ++k) flowc_status_free(engine->run(nullptr, nullptr));
  engine.reset();

  uint8_t* base = nullptr;
  for (const Fired& f : fired) {
    CHECK(f.slot == f.request % kArenaSlots, "request %lld ran in slot %d", (long long)f.request, f.slot);
    CHECK(f.stream == device.stream(f.stream_index), "request %lld on stream %d got another stream's handle",
          (long long)f.request, f.stream_index);
    if (f.slot == 0) base = f.arena;
  }
  for (const Fired& f : fired) CHECK(f.arena == base + f.slot * 128, "slot %d's arena is off", f.slot);
  // Requests 2, 7, 12, 17 failed at their first step (their second is skipped) and were drained.
  CHECK(fired.size() == 2 * kRequests - 4, "%zu steps fired", fired.size());
  CHECK((device.drained == std::vector<int32_t>{2 % 3, 7 % 3, 12 % 3, 17 % 3}), "%zu slots drained",
        device.drained.size());
  std::printf("step context: each step got its slot, its arena and its stream's handle; failed requests' slots drained\n");
}

static void check_rejected(std::vector<flowc_plan_step> steps, std::vector<int32_t> slots, const char* expected) {
  flowc::CpuDevice device(1);
  flowc_plan plan{steps.data(), int32_t(steps.size()), slots.data(), int32_t(slots.size()), 2, 64, 1, nullptr};
  std::unique_ptr<Engine> engine;
  flowc_status status = Engine::create(plan, {&device, nullptr}, &engine);
  CHECK(flowc_status_get_code(status) == FLOWC_STATUS_INVALID_ARGUMENT && !engine);
  CHECK(std::strcmp(flowc_status_get_message(status), expected) == 0, "got: %s", flowc_status_get_message(status));
  flowc_status_free(status);
}

static void check_validation() {
  auto f = diamond_a;
  check_rejected({{"a", f, 0, r1, 1, r0, 1}, {"b", f, 1, r0, 1, r1, 1}}, {1, 1},
                 "plan has a cycle through step 'a' (#0)");
  check_rejected({{"a", f, 0, nullptr, 0, r0, 1}, {"b", f, 1, nullptr, 0, r0, 1}}, {1},
                 "register 0 is written by both 'a' (#0) and 'b' (#1)");
  check_rejected({{"a", f, 0, nullptr, 0, r0, 1}}, {1},
                 "register 0 has no consumer; each needs one producer and at least one consumer");
  check_rejected({{"a", f, 0, nullptr, 0, r0, 1}, {"b", f, 1, r0, 1, nullptr, 0}}, {0},
                 "register 0 has 0 slots; needs at least 1");
  check_rejected({{"a", f, 0, nullptr, 0, r2, 1}}, {1},
                 "step 'a' (#0) uses register 2, but the plan has 1 registers");
  check_rejected({{"a", nullptr, 0, nullptr, 0, nullptr, 0}}, {}, "step 'a' (#0) has no function");
  std::printf("validation: bad plans rejected with their step or register named\n");
}

int main() {
  check_validation();
  for (const Graph& graph : {chain(), diamond()}) {
    for (int32_t register_slots : {1, 2}) {
      for (int32_t arena_slots : {1, 3}) check_concurrent(graph, register_slots, arena_slots);
    }
  }
  check_pipelining();
  check_step_context();
  {
    // Created and destroyed with no request: shuts down cleanly.
    flowc::CpuDevice device(2);
    make_engine(diamond().steps, {1, 1, 1}, 2, device);
  }
  std::printf("engine: ok\n");
  return 0;
}
