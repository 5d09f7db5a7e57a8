// Continuous batching over one engine. Several callers (the HTTP requests of
// `famq serve`, the groups `famq regenerate` keeps in flight) submit groups
// of candidates; one worker thread decodes every unfinished candidate of
// every group in one batched forward pass per step (Engine::ForwardRows) and
// starts waiting candidates as sequence slots free up.
//
// Slot 0 is the worker's scratch: a group's prompt is prefilled there and
// copied into each of its candidates' slots, and RunExclusive's work (echo
// logprobs, embeddings) runs there between steps. A candidate's tokens
// depend only on its prompt, its group's parameters and its seed (a row's
// logits do not depend on the other rows of the batch), so every group gets
// exactly what GenerateGroup gives it alone, whatever else is in flight.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "pipeline/regenerate.h"

namespace famq {

class BatchDecoder {
 public:
  // `engine` (not owned, must outlive the decoder) needs at least 2
  // sequence slots (EngineOptions::max_sequences): slot 0 plus one per
  // candidate decoded at a time. From now on only the decoder may use it.
  // Errors: InvalidArgument (fewer than 2 slots).
  static Result<std::unique_ptr<BatchDecoder>> Create(Engine* engine);
  // Stops the worker; a call still waiting gets an Internal error.
  ~BatchDecoder();
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // GenerateGroup's contract (and result), from any thread: blocks until the
  // group's candidates are done. Errors: those of CheckGroupRequest, or the
  // engine's.
  // `check` (optional) runs on the worker before the group starts and between
  // steps; a non-Ok status ends the group at once (its slots freed) with that
  // status (famq serve: a request's deadline, or its client gone).
  // `on_token` (optional) runs on the worker for every token a candidate
  // takes, in order (famq serve's streaming): it must only hand the token on.
  Result<std::vector<GeneratedCandidate>> Generate(std::span<const int32_t> prompt, const GroupParams& params,
                                                   std::function<Status()> check = nullptr,
                                                   std::function<void(int candidate, int32_t token)> on_token = nullptr);

  // Runs `work` on the worker between two steps with the engine to itself:
  // it may use Forward/ForwardHidden (slot 0) but no other slot. Blocks;
  // returns work's status.
  Status RunExclusive(const std::function<Status(Engine&)>& work);

  // Candidates decoded at a time (the engine's slots but slot 0).
  int slots() const { return engine_->max_sequences() - 1; }

 private:
  struct Job;
  struct Slot {
    Job* job = nullptr;
    int candidate = -1;
    std::unique_ptr<Sampler> sampler;
  };

  explicit BatchDecoder(Engine* engine);
  Status Submit(Job* job);
  void WorkerLoop();
  // Starts as many of `job`'s waiting candidates as there are free slots;
  // true when all of them have started (or the job failed).
  bool Admit(Job* job);
  // One batched step over every active candidate.
  void Step();
  // Appends a token to a candidate; true when it is done (and its slot free).
  bool Take(Job* job, int candidate, int32_t token);
  void Finish(Job* job, Status status);
  void FailActive(const Status& status);
  // Ends the groups whose check fails.
  void DropStopped();

  Engine* engine_;
  size_t vocab_ = 0;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job*> queue_;  // submitted, not yet seen by the worker (guarded by mu_)
  bool stop_ = false;       // guarded by mu_
  uint64_t next_id_ = 0;    // guarded by mu_

  // Worker-only state.
  std::deque<Job*> waiting_;     // candidates not all started, in arrival order
  std::vector<Slot> slot_;       // [max_sequences]; slot 0 unused
  std::vector<int> free_slots_, active_;
  uint64_t slot0_owner_ = 0;     // the job whose prompt slot 0 holds (0: none)
  std::vector<int32_t> row_tok_, row_pos_, row_seq_;
  std::vector<float> logits_;    // [max_batch][vocab]
};

}  // namespace famq
