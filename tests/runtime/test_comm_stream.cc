// The engine's ordered comm stream: its steps fire in plan order, request after request, while
// the compute stream runs free; with it, four engines (the ranks of a 2x2 mesh in one process)
// run collectives through the local communicator under concurrent callers without mismatching
// or deadlocking, at one and three arena slots.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "check.h"
#include "runtime/comm/comm.h"
#include "runtime/comm/local/local_communicator.h"
#include "runtime/core/engine.h"
#include "runtime/device/cpu/cpu_device.h"

using flowc::Engine;

namespace {

constexpr int64_t kLength = 17;
constexpr size_t kBuffer = 192;  // kLength doubles rounded up to 64 bytes
constexpr int kRanks = 4;

double* buffer(flowc_step_ctx* ctx, int i) { return reinterpret_cast<double*>(ctx->arena + i * kBuffer); }
const double* input(flowc_step_ctx* ctx) { return static_cast<const double*>(ctx->inputs[0]); }

// What each rank's comm stream fired, in order: (request, step). Only that rank's comm worker
// appends, and the test reads it after the engines drained.
std::vector<std::pair<int64_t, int>> fired[kRanks];
bool with_collectives = true;
std::atomic<int> gate_timeouts{0};
std::chrono::milliseconds gate_wait{0};

std::mutex fired_mu;  // a compute step polls what a comm step writes

void log_fired(flowc_step_ctx* ctx, int step) {
  std::lock_guard<std::mutex> lock(fired_mu);
  fired[ctx->rank].push_back({ctx->request, step});
}

bool has_fired(int rank, int64_t request, int step) {
  std::lock_guard<std::mutex> lock(fired_mu);
  for (const auto& f : fired[rank]) {
    if (f.first == request && f.second == step) return true;
  }
  return false;
}

// a = x * (rank + 1)
int scale(flowc_step_ctx* ctx) {
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 0)[i] = input(ctx)[i] * (ctx->rank + 1);
  return 0;
}
// b = the sum of a over mesh axis 0
int reduce_rows(flowc_step_ctx* ctx) {
  if (with_collectives) {
    int code = flowc_comm_all_reduce(ctx, 0, FLOWC_COMM_F64, buffer(ctx, 0), buffer(ctx, 1), kLength);
    if (code) return code;
  }
  log_fired(ctx, 1);
  return 0;
}
// d = b + 1, on a stream of its own; slow on request 0, so that request 1's first comm step is
// ready before request 0's second.
int slow(flowc_step_ctx* ctx) {
  if (ctx->request == 0 && gate_wait.count()) {
    auto deadline = std::chrono::steady_clock::now() + gate_wait;
    while (!has_fired(ctx->rank, 1, 1)) {
      if (std::chrono::steady_clock::now() > deadline) {
        gate_timeouts++;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 2)[i] = buffer(ctx, 1)[i] + 1;
  return 0;
}
// e = the sum of d over mesh axis 1
int reduce_columns(flowc_step_ctx* ctx) {
  if (with_collectives) {
    int code = flowc_comm_all_reduce(ctx, 1, FLOWC_COMM_F64, buffer(ctx, 2), buffer(ctx, 3), kLength);
    if (code) return code;
  }
  log_fired(ctx, 3);
  return 0;
}
// f = 2x, beside the collectives
int side(flowc_step_ctx* ctx) {
  for (int64_t i = 0; i < kLength; ++i) buffer(ctx, 4)[i] = 2 * input(ctx)[i];
  return 0;
}
// out = e + f; on a 2x2 mesh 10x + 2 + 2x on every rank
int out(flowc_step_ctx* ctx) {
  auto* y = static_cast<double*>(ctx->outputs[0]);
  for (int64_t i = 0; i < kLength; ++i) y[i] = buffer(ctx, 3)[i] + buffer(ctx, 4)[i];
  return 0;
}
double expected(double x) { return 12 * x + 2; }

const int32_t r0[] = {0}, r1[] = {1}, r2[] = {2}, r3[] = {3}, r4[] = {4}, r34[] = {3, 4};
// In plan order (topological); stream 1 is the comm stream.
const flowc_plan_step kSteps[] = {
    {"scale", scale, 0, nullptr, 0, r0, 1},          {"reduce_rows", reduce_rows, 1, r0, 1, r1, 1},
    {"slow", slow, 2, r1, 1, r2, 1},                 {"reduce_columns", reduce_columns, 1, r2, 1, r3, 1},
    {"side", side, 0, r0, 1, r4, 1},                 {"out", out, 0, r34, 2, nullptr, 0},
};

flowc_plan make_plan(const std::vector<int32_t>& slots, int32_t arena_slots, int32_t comm_stream) {
  return {kSteps, 6, slots.data(), 5, 3, 5 * kBuffer, arena_slots, nullptr, comm_stream};
}

// The ranks' requests in one order: request k on every rank is the same (caller, k).
struct Ranks {
  std::vector<std::unique_ptr<flowc::CpuDevice>> devices;
  std::vector<std::unique_ptr<flowc::Communicator>> comms;
  std::vector<std::unique_ptr<Engine>> engines;
  std::mutex admission;
};

void start(Ranks& ranks, int n, const flowc_plan& plan) {
  if (n > 1) {
    std::vector<int32_t> shape = {2, n / 2};
    flowc::Mesh mesh;
    CHECK(!flowc::Mesh::create(shape.data(), 2, &mesh));
    CHECK(!flowc::create_local_communicators(mesh, &ranks.comms));
  }
  for (int r = 0; r < n; ++r) {
    ranks.devices.push_back(std::make_unique<flowc::CpuDevice>(1));
    flowc::EngineOptions options;
    options.device = ranks.devices.back().get();
    options.pool = &ranks.devices.back()->pool();
    options.rank = r;
    if (n > 1) {
      options.comm = ranks.comms[size_t(r)].get();
      options.coords = options.comm->coords();
    }
    std::unique_ptr<Engine> engine;
    flowc_status status = Engine::create(plan, options, &engine);
    CHECK(!status, "%s", flowc_status_get_message(status));
    ranks.engines.push_back(std::move(engine));
  }
}

// `callers` threads send `requests` each to every rank; every rank's outputs are checked.
void run_requests(Ranks& ranks, int callers, int requests) {
  int n = int(ranks.engines.size());
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> x(kLength);
      std::vector<std::vector<double>> y(static_cast<size_t>(n), std::vector<double>(kLength));
      for (int k = 0; k < requests; ++k) {
        for (int64_t i = 0; i < kLength; ++i) x[size_t(i)] = c * 1000 + k * 10 + i;
        const void* inputs[] = {x.data()};
        std::vector<void*> outputs(static_cast<size_t>(n));
        std::vector<std::unique_ptr<Engine::Call>> calls;
        for (int r = 0; r < n; ++r) {
          outputs[size_t(r)] = y[size_t(r)].data();
          calls.push_back(std::make_unique<Engine::Call>(inputs, &outputs[size_t(r)], 1));
        }
        {
          std::lock_guard<std::mutex> lock(ranks.admission);
          for (int r = 0; r < n; ++r) ranks.engines[size_t(r)]->submit(calls[size_t(r)].get());
        }
        for (int r = 0; r < n; ++r) {
          flowc_status status = Engine::wait(calls[size_t(r)].get());
          CHECK(!status, "rank %d: %s", r, flowc_status_get_message(status));
          if (!with_collectives) continue;
          for (int64_t i = 0; i < kLength; ++i) {
            CHECK(y[size_t(r)][size_t(i)] == expected(x[size_t(i)]), "caller %d request %d rank %d: %g", c, k, r,
                  y[size_t(r)][size_t(i)]);
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
}

// Whether every rank's comm stream fired (0, 1), (0, 3), (1, 1), (1, 3), ... for `total` requests.
bool in_plan_order(int n, int64_t total) {
  for (int r = 0; r < n; ++r) {
    if (int64_t(fired[r].size()) != 2 * total) return false;
    for (int64_t k = 0; k < 2 * total; ++k) {
      if (fired[r][size_t(k)] != std::make_pair(k / 2, k % 2 ? 3 : 1)) return false;
    }
  }
  return true;
}

void reset_log() {
  for (auto& f : fired) f.clear();
  gate_timeouts = 0;
}

// One engine, no collectives: request 0's slow step waits for request 1's first comm step.
// Free-running, that comes; ordered, it cannot (request 0's second comm step is owed first).
void check_order_shows() {
  with_collectives = false;
  std::vector<int32_t> slots = {2, 2, 2, 2, 2};
  for (int32_t comm_stream : {0, 1}) {
    reset_log();
    gate_wait = std::chrono::milliseconds(comm_stream ? 100 : 5000);
    {
      Ranks ranks;
      start(ranks, 1, make_plan(slots, 3, comm_stream));
      run_requests(ranks, 2, 2);
    }
    if (comm_stream) {
      CHECK(in_plan_order(1, 4) && gate_timeouts == 1, "ordered stream fired out of plan order");
    } else {
      CHECK(!in_plan_order(1, 4) && gate_timeouts == 0, "the free-running stream never overtook: the test shows nothing");
    }
  }
  gate_wait = std::chrono::milliseconds(0);
  with_collectives = true;
  std::printf("order: free-running, request 1's comm step overtook request 0's; ordered, it waited its turn\n");
}

// Four ranks with real collectives: plan order on every rank, right answers, no deadlock.
void check_mesh(int32_t register_slots, int32_t arena_slots) {
  reset_log();
  std::vector<int32_t> slots(5, register_slots);
  constexpr int kCallers = 4, kRequests = 60;
  {
    Ranks ranks;
    start(ranks, kRanks, make_plan(slots, arena_slots, 1));
    run_requests(ranks, kCallers, kRequests);
  }
  CHECK(in_plan_order(kRanks, kCallers * kRequests), "register slots %d, arena slots %d: out of plan order",
        register_slots, arena_slots);
  std::printf("mesh 2x2, register slots %d, arena slots %d: %d requests, collectives in plan order on every rank\n",
              register_slots, arena_slots, kCallers * kRequests);
}

// A request that fails on one rank still runs its comm steps, so the other ranks do not hang.
int fail_on_rank_1(flowc_step_ctx* ctx) {
  if (ctx->rank == 1 && ctx->request % 3 == 1) {
    ctx->error = "rank 1 refuses";
    return FLOWC_STATUS_OUT_OF_RANGE;
  }
  return scale(ctx);
}

void check_failure_keeps_ranks_in_step() {
  reset_log();
  flowc_plan_step steps[6];
  std::memcpy(steps, kSteps, sizeof steps);
  steps[0].fn = fail_on_rank_1;
  std::vector<int32_t> slots(5, 2);
  flowc_plan plan = make_plan(slots, 3, 1);
  plan.steps = steps;
  Ranks ranks;
  start(ranks, kRanks, plan);
  int failed = 0;
  for (int k = 0; k < 9; ++k) {
    std::vector<double> x(kLength, 1.0), y[kRanks];
    const void* inputs[] = {x.data()};
    void* outputs[kRanks];
    std::vector<std::unique_ptr<Engine::Call>> calls;
    for (int r = 0; r < kRanks; ++r) {
      y[r].resize(kLength);
      outputs[r] = y[r].data();
      calls.push_back(std::make_unique<Engine::Call>(inputs, &outputs[r], 1));
      ranks.engines[size_t(r)]->submit(calls.back().get());
    }
    for (int r = 0; r < kRanks; ++r) {
      flowc_status status = Engine::wait(calls[size_t(r)].get());
      if (r == 1 && k % 3 == 1) {
        CHECK(status && std::strstr(flowc_status_get_message(status), "rank 1 refuses"));
        failed++;
      } else if (r != 1 && k % 3 != 1) {
        CHECK(!status, "%s", flowc_status_get_message(status));
        CHECK(y[r][0] == expected(1.0));
      }
      flowc_status_free(status);
    }
  }
  CHECK(failed == 3 && in_plan_order(kRanks, 9));
  std::printf("failure: a request failing on one rank ran its collectives anyway; the others went on\n");
}

void check_rejected(flowc_plan plan, const char* expected) {
  flowc::CpuDevice device(1);
  std::unique_ptr<Engine> engine;
  flowc_status status = Engine::create(plan, {&device, nullptr}, &engine);
  CHECK(flowc_status_get_code(status) == FLOWC_STATUS_INVALID_ARGUMENT && !engine);
  CHECK(std::strcmp(flowc_status_get_message(status), expected) == 0, "got: %s", flowc_status_get_message(status));
  flowc_status_free(status);
}

void check_validation() {
  std::vector<int32_t> slots(5, 1);
  check_rejected(make_plan(slots, 1, 3), "plan's comm stream is 3, but it has 3 streams (0: no comm stream)");
  flowc_plan_step steps[6];
  std::memcpy(steps, kSteps, sizeof steps);
  std::swap(steps[1], steps[2]);  // slow (#1) now reads reduce_rows' (#2) register
  flowc_plan plan = make_plan(slots, 1, 1);
  plan.steps = steps;
  check_rejected(plan,
                 "step 'slow' (#1) reads register 1, which step 'reduce_rows' (#2) writes after it; a plan with a "
                 "comm stream lists each step after the steps it reads from");
  plan.comm_stream = 0;  // without one, any order goes
  flowc::CpuDevice device(1);
  std::unique_ptr<Engine> engine;
  CHECK(!Engine::create(plan, {&device, nullptr}, &engine));
  std::printf("validation: a comm stream needs plan order to be topological\n");
}

}  // namespace

int main() {
  // A deadlock would otherwise show as ctest's timeout with no word of where.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(90));
    std::fprintf(stderr, "test_comm_stream: still running after 90 s: deadlock\n");
    std::abort();
  }).detach();
  check_validation();
  check_order_shows();
  for (int32_t register_slots : {1, 2}) {
    for (int32_t arena_slots : {1, 3}) check_mesh(register_slots, arena_slots);
  }
  check_failure_keeps_ranks_in_step();
  std::printf("comm stream: ok\n");
  return 0;
}
