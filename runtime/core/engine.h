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
  Device* device = nullptr;    // arena memory; must outlive the engine
  ThreadPool* pool = nullptr;  // handed to steps; may be null
};

// Runs a plan as actors (one per step) that talk only to their neighbours. Each stream has
// one worker thread and a message queue; an actor fires for request r when each input
// register holds r and each output register has a free slot, then sends "ready" to its
// consumers and "done" to its producers. Requests take an arena slot on entry and give it
// back when their final steps are done, so successive requests pipeline.
class Engine {
 public:
  static flowc_status create(const flowc_plan& plan, const EngineOptions& options,
                             std::unique_ptr<Engine>* out_engine);
  // Waits for every request in flight, then stops the workers.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Thread-safe; blocks until this request is done and returns its status.
  flowc_status run(const void* const* inputs, void* const* outputs, int64_t batch = 1);

 private:
  struct Actor;
  struct Register;
  struct Worker;
  struct Call;
  struct Request;
  struct Message;

  explicit Engine(const EngineOptions& options);
  void work(Worker& worker);
  void deliver(const Message& message);
  bool can_fire(const Actor& actor) const;
  void fire(Actor& actor);
  void post(const Message& message);
  void admit_locked();
  void complete(int64_t request);
  void print_profile() const;

  Device* device_;
  ThreadPool* pool_;
  bool profiling_;
  const void* weights_ = nullptr;
  uint8_t* arena_ = nullptr;
  size_t slot_bytes_ = 0;
  int64_t num_slots_ = 0;
  int num_final_ = 0;
  std::vector<Actor> actors_;
  std::vector<Register> registers_;
  std::vector<int> sources_;  // actors that read no register: fired by admission
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
