#include "runtime/core/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "runtime/base/arena.h"
#include "runtime/base/log.h"
#include "runtime/device/device.h"

namespace flowc {

struct Engine::Message {
  enum Kind : int32_t { kAdmit, kReady, kDone, kStop };
  Kind kind;
  int32_t actor;
  int32_t port;      // kReady: input index; kDone: output index
  int32_t consumer;  // kDone: which consumer of that output's register
};

// Static fields come from the plan; the counters are touched only by the actor's worker.
struct Engine::Actor {
  struct Input {
    int32_t reg;
    int32_t consumer;  // this actor's index among the register's consumers
    int64_t ready = 0;
  };
  struct Output {
    int32_t reg;
    std::vector<int64_t> done;  // per consumer: requests it has finished reading
  };
  std::string name;
  flowc_step_fn fn;
  int32_t index;
  int32_t stream;
  std::vector<Input> inputs;
  std::vector<Output> outputs;
  int64_t next = 0;      // the request it fires for next; actors take requests in order
  int64_t admitted = 0;  // sources only
  int64_t busy_ns = 0;   // time in `fn`, when profiling
};

struct Engine::Register {
  int32_t slots;
  int32_t producer = -1;
  int32_t producer_output = -1;
  std::vector<std::pair<int32_t, int32_t>> consumers;  // (actor, input index)
};

struct Engine::Worker {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> queue;
  std::thread thread;
};

struct Engine::Request {
  Call* call = nullptr;
  std::atomic<flowc_status> status{nullptr};  // the first failure wins
  std::atomic<int> final_left{0};
};

static flowc_status invalid(const char* format, const char* name, int32_t index, int64_t value,
                            int64_t limit) {
  return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, format, name, index, (long long)value,
                           (long long)limit);
}

static const char* step_name(const flowc_plan_step& step) { return step.name ? step.name : "?"; }

static flowc_status check_plan(const flowc_plan& plan) {
  if (plan.num_steps <= 0 || !plan.steps) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "plan has no steps");
  }
  if (plan.num_registers < 0 || (plan.num_registers > 0 && !plan.register_slots)) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "plan has %d registers but no slot counts",
                             plan.num_registers);
  }
  if (plan.num_streams <= 0 || plan.arena_slots <= 0) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "plan needs at least one stream and one arena slot (has %d and %d)",
                             plan.num_streams, plan.arena_slots);
  }
  if (plan.comm_stream < 0 || plan.comm_stream >= plan.num_streams) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                             "plan's comm stream is %d, but it has %d streams (0: no comm stream)",
                             plan.comm_stream, plan.num_streams);
  }
  for (int32_t r = 0; r < plan.num_registers; ++r) {
    if (plan.register_slots[r] <= 0) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "register %d has %d slots; needs at least 1",
                               r, plan.register_slots[r]);
    }
  }
  for (int32_t s = 0; s < plan.num_steps; ++s) {
    const flowc_plan_step& step = plan.steps[s];
    if (!step.fn) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "step '%s' (#%d) has no function",
                               step_name(step), s);
    }
    if (step.stream < 0 || step.stream >= plan.num_streams) {
      return invalid("step '%s' (#%d) runs on stream %lld, but the plan has %lld streams",
                     step_name(step), s, step.stream, plan.num_streams);
    }
    if (step.num_reads < 0 || step.num_writes < 0 || (step.num_reads && !step.reads) ||
        (step.num_writes && !step.writes)) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "step '%s' (#%d) has a bad register list",
                               step_name(step), s);
    }
    for (int32_t i = 0; i < step.num_reads + step.num_writes; ++i) {
      int32_t reg = i < step.num_reads ? step.reads[i] : step.writes[i - step.num_reads];
      if (reg < 0 || reg >= plan.num_registers) {
        return invalid("step '%s' (#%d) uses register %lld, but the plan has %lld registers",
                       step_name(step), s, reg, plan.num_registers);
      }
    }
  }
  return nullptr;
}

// FLOWC_PROFILE=1 (read per engine): time each step, print the table when the engine stops.
static bool profiling_wanted() {
  const char* value = std::getenv("FLOWC_PROFILE");
  return value && *value && std::strcmp(value, "0") != 0;
}

Engine::Engine(const EngineOptions& options)
    : device_(options.device),
      pool_(options.pool),
      rank_(options.rank),
      coords_(options.coords),
      comm_(options.comm),
      profiling_(profiling_wanted()) {}

flowc_status Engine::create(const flowc_plan& plan, const EngineOptions& options,
                            std::unique_ptr<Engine>* out_engine) {
  out_engine->reset();
  if (!options.device) {
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "engine needs a device");
  }
  FLOWC_RETURN_IF_ERROR(check_plan(plan));
  std::unique_ptr<Engine> engine(new Engine(options));
  engine->weights_ = plan.weights;

  for (int32_t r = 0; r < plan.num_registers; ++r) engine->registers_.push_back({plan.register_slots[r]});
  for (int32_t s = 0; s < plan.num_steps; ++s) {
    const flowc_plan_step& step = plan.steps[s];
    Actor actor{step_name(step), step.fn, s, step.stream};
    for (int32_t i = 0; i < step.num_reads; ++i) {
      Register& reg = engine->registers_[step.reads[i]];
      actor.inputs.push_back({step.reads[i], int32_t(reg.consumers.size())});
      reg.consumers.push_back({s, i});
    }
    for (int32_t o = 0; o < step.num_writes; ++o) {
      Register& reg = engine->registers_[step.writes[o]];
      if (reg.producer >= 0) {
        return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                                 "register %d is written by both '%s' (#%d) and '%s' (#%d)",
                                 step.writes[o], step_name(plan.steps[reg.producer]), reg.producer,
                                 actor.name.c_str(), s);
      }
      reg.producer = s;
      reg.producer_output = o;
      actor.outputs.push_back({step.writes[o], {}});
    }
    if (actor.inputs.empty()) engine->sources_.push_back(s);
    if (actor.outputs.empty()) engine->num_final_++;
    engine->actors_.push_back(std::move(actor));
  }
  for (int32_t r = 0; r < plan.num_registers; ++r) {
    const Register& reg = engine->registers_[r];
    if (reg.producer < 0 || reg.consumers.empty()) {
      return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                               "register %d has %s; each needs one producer and at least one consumer",
                               r, reg.producer < 0 ? "no producer" : "no consumer");
    }
  }
  for (Actor& actor : engine->actors_) {
    for (Actor::Output& out : actor.outputs) {
      out.done.assign(engine->registers_[out.reg].consumers.size(), 0);
    }
  }
  if (plan.comm_stream > 0) {
    // The ordered stream fires in step order; that is deadlock-free only if step order is
    // topological (a step's inputs then never wait on an ordered step behind it).
    for (const Actor& actor : engine->actors_) {
      for (const Actor::Input& in : actor.inputs) {
        int32_t producer = engine->registers_[in.reg].producer;
        if (producer < actor.index) continue;
        return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT,
                                 "step '%s' (#%d) reads register %d, which step '%s' (#%d) writes after it; a plan "
                                 "with a comm stream lists each step after the steps it reads from",
                                 actor.name.c_str(), actor.index, in.reg, engine->actors_[producer].name.c_str(),
                                 producer);
      }
      if (actor.stream == plan.comm_stream) engine->ordered_.push_back(actor.index);
    }
    engine->comm_stream_ = plan.comm_stream;
  }

  // A cycle would never fire; Kahn's algorithm finds one.
  std::vector<int32_t> pending(plan.num_steps), order;
  for (int32_t s = 0; s < plan.num_steps; ++s) {
    pending[s] = int32_t(engine->actors_[s].inputs.size());
    if (!pending[s]) order.push_back(s);
  }
  for (size_t i = 0; i < order.size(); ++i) {
    for (const Actor::Output& out : engine->actors_[order[i]].outputs) {
      for (auto [consumer, input] : engine->registers_[out.reg].consumers) {
        if (--pending[consumer] == 0) order.push_back(consumer);
      }
    }
  }
  if (order.size() != size_t(plan.num_steps)) {
    auto stuck = std::find_if(pending.begin(), pending.end(), [](int32_t n) { return n > 0; });
    int32_t s = int32_t(stuck - pending.begin());
    return flowc_status_make(FLOWC_STATUS_INVALID_ARGUMENT, "plan has a cycle through step '%s' (#%d)",
                             engine->actors_[s].name.c_str(), s);
  }

  size_t slot_bytes = 0;
  if (!flowc_arena_align(size_t(plan.arena_bytes), &slot_bytes) ||
      (slot_bytes && size_t(plan.arena_slots) > SIZE_MAX / slot_bytes)) {
    return flowc_status_make(FLOWC_STATUS_OUT_OF_RANGE, "arena of %d x %llu bytes is too large",
                             plan.arena_slots, (unsigned long long)plan.arena_bytes);
  }
  void* arena = nullptr;
  FLOWC_RETURN_IF_ERROR(options.device->allocate(slot_bytes * plan.arena_slots, &arena));
  engine->arena_ = static_cast<uint8_t*>(arena);
  engine->slot_bytes_ = slot_bytes;
  engine->num_slots_ = plan.arena_slots;
  engine->requests_.reset(new Request[plan.arena_slots]);

  for (int32_t s = 0; s < plan.num_streams; ++s) engine->workers_.push_back(std::make_unique<Worker>());
  for (auto& worker : engine->workers_) {
    Worker* w = worker.get();
    Engine* e = engine.get();
    w->thread = std::thread([e, w] { e->work(*w); });
  }
  FLOWC_LOG(FLOWC_LOG_INFO, "engine: %d steps, %d registers, %d streams, %d x %zu arena bytes on %s",
            plan.num_steps, plan.num_registers, plan.num_streams, plan.arena_slots, slot_bytes,
            options.device->name());
  *out_engine = std::move(engine);
  return nullptr;
}

Engine::~Engine() {
  {
    std::unique_lock<std::mutex> lock(admission_mu_);
    drained_cv_.wait(lock, [&] { return completed_ == next_request_ && waiting_.empty(); });
  }
  for (size_t s = 0; s < workers_.size(); ++s) {
    if (workers_[s]->thread.joinable()) post({Message::kStop, -1, int32_t(s), 0});
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
  if (profiling_) print_profile();
  if (arena_) device_->free(arena_);
}

// Steps by time spent, to stderr: what FLOWC_PROFILE=1 asks for.
void Engine::print_profile() const {
  std::vector<const Actor*> order;
  int64_t total = 0;
  for (const Actor& actor : actors_) {
    order.push_back(&actor);
    total += actor.busy_ns;
  }
  std::sort(order.begin(), order.end(), [](const Actor* a, const Actor* b) { return a->busy_ns > b->busy_ns; });
  int64_t requests = completed_;
  std::fprintf(stderr, "flowc profile: %lld requests, %.3f ms of steps per request\n", (long long)requests,
               requests ? double(total) / 1e6 / double(requests) : 0.0);
  std::fprintf(stderr, "  %5s %10s %6s  %s\n", "step", "us/req", "%", "name");
  for (const Actor* actor : order) {
    if (!actor->busy_ns) continue;
    std::fprintf(stderr, "  %5d %10.1f %6.2f  %s\n", actor->index,
                 requests ? double(actor->busy_ns) / 1e3 / double(requests) : 0.0,
                 total ? 100.0 * double(actor->busy_ns) / double(total) : 0.0, actor->name.c_str());
  }
}

flowc_status Engine::run(const void* const* inputs, void* const* outputs, int64_t batch) {
  Call call(inputs, outputs, batch);
  submit(&call);
  return wait(&call);
}

void Engine::submit(Call* call) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  waiting_.push_back(call);
  admit_locked();
}

flowc_status Engine::wait(Call* call) {
  std::unique_lock<std::mutex> lock(call->mu_);
  call->cv_.wait(lock, [&] { return call->done_; });
  return call->status_;
}

// The input actor: it holds the arena slots and lets a caller in when one is free.
void Engine::admit_locked() {
  while (!waiting_.empty() && next_request_ - completed_ < num_slots_) {
    int64_t r = next_request_++;
    Request& request = requests_[r % num_slots_];
    request.call = waiting_.front();
    request.final_left.store(num_final_, std::memory_order_relaxed);
    waiting_.pop_front();
    for (int32_t source : sources_) post({Message::kAdmit, source, 0, 0});
  }
}

void Engine::post(const Message& message) {
  int32_t stream = message.kind == Message::kStop ? message.port : actors_[message.actor].stream;
  Worker& worker = *workers_[stream];
  {
    std::lock_guard<std::mutex> lock(worker.mu);
    worker.queue.push_back(message);
  }
  worker.cv.notify_one();
}

void Engine::work(Worker& worker) {
  std::deque<Message> batch;
  std::unique_lock<std::mutex> lock(worker.mu);
  for (;;) {
    worker.cv.wait(lock, [&] { return !worker.queue.empty(); });
    batch.swap(worker.queue);
    lock.unlock();
    for (const Message& message : batch) {
      if (message.kind == Message::kStop) return;
      deliver(message);
    }
    batch.clear();
    lock.lock();
  }
}

void Engine::deliver(const Message& message) {
  Actor& actor = actors_[message.actor];
  switch (message.kind) {
    case Message::kAdmit: actor.admitted++; break;
    case Message::kReady: actor.inputs[message.port].ready++; break;
    case Message::kDone: actor.outputs[message.port].done[message.consumer]++; break;
    case Message::kStop: break;
  }
  if (actor.stream == comm_stream_ && comm_stream_ > 0) {
    fire_ordered();
  } else {
    while (can_fire(actor)) fire(actor);
  }
}

// The ordered stream's actors take turns: the one at the cursor fires for its next request (the
// ones before it in plan order have fired for it, the ones after it have not), then the next.
void Engine::fire_ordered() {
  while (can_fire(actors_[size_t(ordered_[cursor_])])) {
    fire(actors_[size_t(ordered_[cursor_])]);
    cursor_ = (cursor_ + 1) % ordered_.size();
  }
}

bool Engine::can_fire(const Actor& actor) const {
  if (actor.inputs.empty() && actor.admitted <= actor.next) return false;
  for (const Actor::Input& in : actor.inputs) {
    if (in.ready <= actor.next) return false;
  }
  for (const Actor::Output& out : actor.outputs) {
    // A slot is free again once every consumer is done with the request in it.
    int64_t freed = *std::min_element(out.done.begin(), out.done.end());
    if (actor.next - freed >= registers_[out.reg].slots) return false;
  }
  return true;
}

void Engine::fire(Actor& actor) {
  int64_t r = actor.next++;
  Request& request = requests_[r % num_slots_];
  // A failed request still flows through every actor, skipping the work, so that slots
  // and counters stay in step for the requests behind it. Comm steps still run: the other
  // ranks' collectives wait for this rank's.
  if (!request.status.load(std::memory_order_acquire) || (actor.stream == comm_stream_ && comm_stream_ > 0)) {
    const Call& call = *request.call;
    int32_t slot = int32_t(r % num_slots_);
    flowc_step_ctx ctx{arena_ + size_t(slot) * slot_bytes_, call.inputs_, call.outputs_, weights_, call.batch_, r,
                       device_, pool_, rank_, coords_, comm_, nullptr, device_->stream(actor.stream), actor.stream,
                       slot};
    int code = 0;
    if (profiling_) {
      auto start = std::chrono::steady_clock::now();
      code = actor.fn(&ctx);
      actor.busy_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
    } else {
      code = actor.fn(&ctx);
    }
    if (code != 0) {
      flowc_status_code status_code = code > 0 && code <= FLOWC_STATUS_UNAVAILABLE
                                          ? flowc_status_code(code)
                                          : FLOWC_STATUS_INTERNAL;
      flowc_status failure = flowc_status_make(
          status_code, "step '%s' (#%d) failed with code %d: %s", actor.name.c_str(), actor.index,
          code, ctx.error ? ctx.error : "no message");
      FLOWC_LOG(FLOWC_LOG_DEBUG, "request %lld: %s", (long long)r, flowc_status_get_message(failure));
      flowc_status expected = nullptr;
      if (!request.status.compare_exchange_strong(expected, failure)) flowc_status_free(failure);
    }
  }
  // Nothing below may touch `request`: once the final actors finish, it is reused.
  if (actor.outputs.empty() && request.final_left.fetch_sub(1) == 1) complete(r);
  for (size_t o = 0; o < actor.outputs.size(); ++o) {
    for (auto [consumer, input] : registers_[actor.outputs[o].reg].consumers) {
      post({Message::kReady, consumer, input, 0});
    }
  }
  for (const Actor::Input& in : actor.inputs) {
    const Register& reg = registers_[in.reg];
    post({Message::kDone, reg.producer, reg.producer_output, in.consumer});
  }
}

void Engine::complete(int64_t r) {
  Request& request = requests_[r % num_slots_];
  Call* call = request.call;
  flowc_status status = request.status.exchange(nullptr);
  if (status) device_->drain_slot(int32_t(r % num_slots_));
  {
    std::lock_guard<std::mutex> lock(admission_mu_);
    completed_++;
    admit_locked();
    if (completed_ == next_request_ && waiting_.empty()) drained_cv_.notify_all();
  }
  // Notify under the caller's lock: it may return and free `call` as soon as we let go.
  std::lock_guard<std::mutex> lock(call->mu_);
  call->status_ = status;
  call->done_ = true;
  call->cv_.notify_one();
}

}  // namespace flowc
