// Compete (DESIGN.md §1.1): the expert's view of a candidate (fidelity, the
// mean-pooled last hidden state), the degeneracy measures, and the choice of
// the top k per group.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "bundle/bundle_contents.h"
#include "core/status.h"
#include "engine/engine.h"
#include "model/model_dir.h"

namespace famq {

struct ScoreWeights {
  float fidelity = 1.0f;     // a
  float consistency = 1.0f;  // b
  float diversity = 0.5f;    // d
};

struct PenaltyOptions {
  int min_new_tokens = 16;       // hard filter: fewer generated tokens
  float min_distinct2 = 0.3f;    // hard filter: repetition loops (distinct bigrams / bigrams)
  float unfinished = 0.0f;       // soft penalty for a candidate cut at max_new_tokens
};

// Penalty added for a hard filter: such a candidate ranks below every other.
inline constexpr float kHardFilterPenalty = 1000.0f;

// Distinct bigrams / bigrams of `ids` (1 for fewer than 2 tokens).
float Distinct2(std::span<const int32_t> ids);
// Cosine similarity (0 when either vector is zero).
float Cosine(std::span<const float> a, std::span<const float> b);

class Expert {
 public:
  static Result<std::unique_ptr<Expert>> Create(const ModelDir& model, const EngineOptions& options);

  // Runs the expert over `ids` from position 0. mean_logprob: mean natural
  // log-probability of ids[t] given ids[..t) over t in [score_from, n)
  // (nullptr: not computed). pooled: mean of the last hidden state over
  // positions [pool_from, n) (resized to hidden_size).
  Status Run(std::span<const int32_t> ids, int score_from, int pool_from, double* mean_logprob,
             std::vector<float>* pooled);

  int hidden_size() const { return engine_->config().hidden_size; }
  const Engine& engine() const { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::vector<float> logits_, hidden_;
};

// Combines the terms into ScoreTerms (total = a*fidelity + b*consistency +
// d*diversity - penalty) with the hard filters and the soft penalty applied.
ScoreTerms CombineScore(double fidelity, float consistency, float diversity, std::span<const int32_t> generated,
                        bool finished, const ScoreWeights& w, const PenaltyOptions& p);

// Indices of the k best candidates by total score (ties: lower index first),
// leaving out hard-filtered ones; fewer than k if fewer pass.
std::vector<uint32_t> TopK(std::span<const ScoreTerms> scores, int k);

}  // namespace famq
