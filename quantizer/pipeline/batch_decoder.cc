#include "pipeline/batch_decoder.h"

#include <algorithm>

namespace famq {

struct BatchDecoder::Job {
  // The request: a group, or an exclusive task.
  std::span<const int32_t> prompt;
  GroupParams params;
  SamplingParams sampling;
  const std::function<Status(Engine&)>* work = nullptr;
  std::function<Status()> check;  // may be empty
  std::function<void(int, int32_t)> on_token;  // may be empty
  // Worker state.
  std::vector<GeneratedCandidate> out;
  uint64_t id = 0;                   // unique per decoder (slot 0's owner)
  std::vector<float> prompt_logits;  // [vocab]
  int started = 0;     // candidates given a slot (or finished at their first token)
  int unfinished = 0;  // candidates not done yet
  // The result (guarded by mu_).
  Status status;
  bool done = false;
};

BatchDecoder::BatchDecoder(Engine* engine) : engine_(engine) {}

Result<std::unique_ptr<BatchDecoder>> BatchDecoder::Create(Engine* engine) {
  if (engine->max_sequences() < 2) {
    return InvalidArgument("batch decoder: the engine needs at least 2 sequence slots, has " +
                           std::to_string(engine->max_sequences()));
  }
  std::unique_ptr<BatchDecoder> d(new BatchDecoder(engine));
  const int slots = engine->max_sequences();
  d->vocab_ = static_cast<size_t>(engine->vocab_size());
  d->slot_.resize(static_cast<size_t>(slots));
  for (int s = slots - 1; s >= 1; --s) {
    d->slot_[static_cast<size_t>(s)].sampler = std::make_unique<Sampler>(engine->vocab_size(), SamplingParams{});
    d->free_slots_.push_back(s);  // popped from the back: slot 1 first
  }
  d->active_.reserve(static_cast<size_t>(slots));
  const size_t rows = static_cast<size_t>(engine->max_batch());
  d->row_tok_.resize(rows);
  d->row_pos_.resize(rows);
  d->row_seq_.resize(rows);
  d->logits_.resize(rows * d->vocab_);
  d->worker_ = std::thread([p = d.get()] { p->WorkerLoop(); });
  return d;
}

BatchDecoder::~BatchDecoder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

Status BatchDecoder::Submit(Job* job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return Internal("batch decoder: stopped");
    job->id = ++next_id_;
    queue_.push_back(job);
  }
  work_cv_.notify_one();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [job] { return job->done; });
  return job->status;
}

Result<std::vector<GeneratedCandidate>> BatchDecoder::Generate(std::span<const int32_t> prompt,
                                                               const GroupParams& params,
                                                               std::function<Status()> check,
                                                               std::function<void(int, int32_t)> on_token) {
  Job job;
  job.check = std::move(check);
  job.on_token = std::move(on_token);
  FAMQ_ASSIGN_OR_RETURN(job.sampling, CheckGroupRequest(*engine_, prompt, params));
  job.prompt = prompt;
  job.params = params;
  job.out.resize(static_cast<size_t>(params.n));
  for (auto& c : job.out) c.ids.reserve(static_cast<size_t>(params.max_new_tokens));
  job.prompt_logits.resize(vocab_);
  job.unfinished = params.n;
  FAMQ_RETURN_IF_ERROR(Submit(&job));
  return std::move(job.out);
}

Status BatchDecoder::RunExclusive(const std::function<Status(Engine&)>& work) {
  Job job;
  job.work = &work;
  return Submit(&job);
}

void BatchDecoder::Finish(Job* job, Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->status = std::move(status);
    job->done = true;
  }
  done_cv_.notify_all();
}

bool BatchDecoder::Take(Job* job, int candidate, int32_t token) {
  const bool done = AppendToken(job->params, token, &job->out[static_cast<size_t>(candidate)]);
  if (job->on_token) job->on_token(candidate, token);
  if (done) --job->unfinished;
  return done;
}

bool BatchDecoder::Admit(Job* job) {
  const int n = job->params.n;
  const int start = static_cast<int>(job->prompt.size());
  while (job->started < n && !free_slots_.empty()) {
    if (slot0_owner_ != job->id) {  // slot 0 holds another prompt (or scratch): prefill this one there
      slot0_owner_ = 0;
      Status s = engine_->Forward(job->prompt, 0, job->prompt_logits.data(), false);
      if (!s.ok()) {
        if (job->started == 0) {
          Finish(job, std::move(s));
        } else {
          FailActive(s);  // its first candidates are decoding: fail everything in flight with it
        }
        return true;
      }
      slot0_owner_ = job->id;
    }
    const int slot = free_slots_.back();
    free_slots_.pop_back();
    if (Status s = engine_->CopySequence(0, slot, start); !s.ok()) {
      free_slots_.push_back(slot);
      FailActive(s);
      return true;
    }
    const int candidate = job->started++;
    Slot& sl = slot_[static_cast<size_t>(slot)];
    sl.sampler->Reset(job->sampling, CandidateSeed(job->params.seed, static_cast<uint64_t>(candidate)));
    if (Take(job, candidate, sl.sampler->Sample(job->prompt_logits.data()))) {
      free_slots_.push_back(slot);
    } else {
      sl.job = job;
      sl.candidate = candidate;
      active_.push_back(slot);
    }
  }
  if (job->unfinished == 0) {  // every candidate ended at its first token; the job is gone after Finish
    Finish(job, Status::Ok());
    return true;
  }
  return job->started == n;
}

void BatchDecoder::FailActive(const Status& status) {
  // Every job with a candidate in flight fails (an engine error mid-step).
  std::vector<Job*> failed;
  for (int slot : active_) {
    Slot& sl = slot_[static_cast<size_t>(slot)];
    if (std::find(failed.begin(), failed.end(), sl.job) == failed.end()) failed.push_back(sl.job);
    sl.job = nullptr;
    free_slots_.push_back(slot);
  }
  active_.clear();
  for (Job* w : waiting_) {
    if (w->started > 0 && std::find(failed.begin(), failed.end(), w) == failed.end()) failed.push_back(w);
  }
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(),
                                [&](Job* w) { return std::find(failed.begin(), failed.end(), w) != failed.end(); }),
                 waiting_.end());
  slot0_owner_ = 0;
  for (Job* j : failed) Finish(j, status);
}

void BatchDecoder::DropStopped() {
  std::vector<std::pair<Job*, Status>> stopped;
  std::vector<const Job*> checked;  // once per job and step, however many candidates it has in flight
  const auto check = [&](Job* job) {
    if (!job->check || std::find(checked.begin(), checked.end(), job) != checked.end()) return;
    checked.push_back(job);
    if (Status s = job->check(); !s.ok()) stopped.emplace_back(job, std::move(s));
  };
  for (Job* job : waiting_) check(job);
  for (int slot : active_) check(slot_[static_cast<size_t>(slot)].job);
  if (stopped.empty()) return;
  const auto is_stopped = [&](const Job* job) {
    return std::any_of(stopped.begin(), stopped.end(), [job](const auto& p) { return p.first == job; });
  };
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [&](int slot) {
                                 Slot& sl = slot_[static_cast<size_t>(slot)];
                                 if (!is_stopped(sl.job)) return false;
                                 sl.job = nullptr;
                                 free_slots_.push_back(slot);
                                 return true;
                               }),
                active_.end());
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), is_stopped), waiting_.end());
  for (auto& [job, s] : stopped) {
    if (slot0_owner_ == job->id) slot0_owner_ = 0;
    Finish(job, std::move(s));  // the job is gone after this
  }
}

void BatchDecoder::Step() {
  const size_t max_rows = row_tok_.size();
  size_t i = 0;
  while (i < active_.size()) {
    const size_t rows = std::min(max_rows, active_.size() - i);
    for (size_t r = 0; r < rows; ++r) {
      const int slot = active_[i + r];
      const Slot& sl = slot_[static_cast<size_t>(slot)];
      const GeneratedCandidate& c = sl.job->out[static_cast<size_t>(sl.candidate)];
      row_tok_[r] = c.ids.back();
      row_pos_[r] = static_cast<int32_t>(sl.job->prompt.size() + c.ids.size() - 1);
      row_seq_[r] = slot;
    }
    Status s = engine_->ForwardRows(std::span(row_tok_).first(rows), std::span(row_pos_).first(rows),
                                    std::span(row_seq_).first(rows), logits_.data());
    if (!s.ok()) return FailActive(s);
    // Sample every row, then drop the finished ones from active_ (order kept).
    size_t kept = i;
    for (size_t r = 0; r < rows; ++r) {
      const int slot = active_[i + r];
      Slot& sl = slot_[static_cast<size_t>(slot)];
      if (Take(sl.job, sl.candidate, sl.sampler->Sample(&logits_[r * vocab_]))) {
        // The job's last candidate: no other slot refers to it, Finish hands it back.
        if (sl.job->unfinished == 0) Finish(sl.job, Status::Ok());
        sl.job = nullptr;
        free_slots_.push_back(slot);
      } else {
        active_[kept++] = slot;
      }
    }
    active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(kept),
                  active_.begin() + static_cast<std::ptrdiff_t>(i + rows));
    i = kept;
  }
}

void BatchDecoder::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty() || !active_.empty() || !waiting_.empty(); });
    if (stop_) break;
    std::deque<Job*> arrived;
    arrived.swap(queue_);
    lock.unlock();
    for (Job* job : arrived) {
      if (job->work != nullptr) {  // exclusive work runs at once: it needs no slot
        slot0_owner_ = 0;
        Finish(job, (*job->work)(*engine_));
      } else {
        waiting_.push_back(job);
      }
    }
    DropStopped();
    // Start waiting candidates in arrival order while slots are free.
    while (!waiting_.empty() && !free_slots_.empty()) {
      Job* job = waiting_.front();
      if (!Admit(job)) break;
      // Started (or finished, or failed: then FailActive may have removed it already).
      if (!waiting_.empty() && waiting_.front() == job) waiting_.pop_front();
    }
    Step();
    lock.lock();
  }
  // Stopped: whoever still waits gets an error.
  std::vector<Job*> left(queue_.begin(), queue_.end());
  queue_.clear();
  lock.unlock();
  for (Job* j : waiting_) left.push_back(j);
  for (int slot : active_) {
    Job* j = slot_[static_cast<size_t>(slot)].job;
    if (std::find(left.begin(), left.end(), j) == left.end()) left.push_back(j);
  }
  for (Job* j : left) Finish(j, Internal("batch decoder: stopped with the request unfinished"));
}

}  // namespace famq
