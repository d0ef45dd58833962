#ifndef FLOWC_CORE_ENGINE_H_
#define FLOWC_CORE_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "flowc/runtime.h"
#include "runtime/core/step.h"

namespace flowc {

struct EngineOptions {
  Device* device = nullptr;    // arena memory and native streams; must outlive the engine
  ThreadPool* pool = nullptr;  // handed to steps; may be null
  // The rank this engine runs in a device mesh, handed to steps; comm must outlive the engine.
  int32_t rank = 0;
  const int32_t* coords = nullptr;
  Communicator* comm = nullptr;
};

// Runs a plan as actors (one per step) that talk only to their neighbours. Each stream has
// one worker thread and a message queue; an actor fires for request r when each input
// register holds r and each output register has a free slot, then sends "ready" to its
// consumers and "done" to its producers. Requests take an arena slot on entry and give it
// back when their final steps are done, so successive requests pipeline. The plan's comm
// stream, if any, fires its actors one after another in plan order (flowc_plan.comm_stream).
class Engine {
 public:
  // One caller's request, on the caller's side until `wait` returns.
  class Call {
   public:
    Call(const void* const* inputs, void* const* outputs, int64_t batch)
        : inputs_(inputs), outputs_(outputs), batch_(batch) {}
    Call(const Call&) = delete;
    Call& operator=(const Call&) = delete;

   private:
    friend class Engine;
    const void* const* inputs_;
    void* const* outputs_;
    int64_t batch_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    flowc_status status_ = nullptr;
  };

  static flowc_status create(const flowc_plan& plan, const EngineOptions& options,
                             std::unique_ptr<Engine>* out_engine);
  // Waits for every request in flight, then stops the workers.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Thread-safe; blocks until this request is done and returns its status.
  flowc_status run(const void* const* inputs, void* const* outputs, int64_t batch = 1);
  // run in two halves, for a caller that feeds several engines requests in one order (the
  // ranks of a mesh in one process): `submit` queues the call behind those submitted before
  // it and returns; `wait` blocks until it is done and returns its status.
  void submit(Call* call);
  static flowc_status wait(Call* call);

 private:
  struct Actor;
  struct Register;
  struct Worker;
  struct Request;
  struct Message;

  explicit Engine(const EngineOptions& options);
  void work(Worker& worker);
  void deliver(const Message& message);
  void fire_ordered();
  bool can_fire(const Actor& actor) const;
  void fire(Actor& actor);
  void post(const Message& message);
  void admit_locked();
  void complete(int64_t request);
  void print_profile() const;

  Device* device_;
  ThreadPool* pool_;
  int32_t rank_;
  const int32_t* coords_;
  Communicator* comm_;
  bool profiling_;
  const void* weights_ = nullptr;
  uint8_t* arena_ = nullptr;
  size_t slot_bytes_ = 0;
  int64_t num_slots_ = 0;
  int num_final_ = 0;
  std::vector<Actor> actors_;
  std::vector<Register> registers_;
  std::vector<int> sources_;  // actors that read no register: fired by admission
  int32_t comm_stream_ = 0;
  std::vector<int32_t> ordered_;  // the comm stream's actors in plan order
  size_t cursor_ = 0;             // the one that fires next (its `next` request); its worker's own
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Request[]> requests_;  // request r lives in requests_[r % num_slots_]

  std::mutex admission_mu_;
  std::condition_variable drained_cv_;
  std::deque<Call*> waiting_;  // callers with no arena slot yet, first come first served
  int64_t next_request_ = 0;
  int64_t completed_ = 0;
};

}  // namespace flowc

#endif  // FLOWC_CORE_ENGINE_H_
