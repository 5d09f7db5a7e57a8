// Compete (docs/DESIGN.md §1.1): the expert's view of a candidate (fidelity, the
// mean-pooled last hidden state), the degeneracy measures, and the choice of
// the top k per group.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
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

// Scratch rows of RunExpertPass (grown to the engine's max_batch on first use).
struct ExpertBuffers {
  std::vector<float> logits, hidden;
};

// The expert's pass over `ids` on `engine` (its KV cache slot 0 is
// overwritten): chunks of engine.max_batch() tokens from position 0 through
// Engine::ForwardHidden, sums in double, in position order. Expert::Run and
// `famq serve`'s /v1/embeddings both call it, so in-process and served
// scores are bit-identical.
//   mean_logprob: mean natural log-probability of ids[t] given ids[..t) over
//     t in [score_from, n), score_from clamped to [1, n] (0 when empty;
//     nullptr: not computed).
//   pooled: mean of the final-normalized last hidden state over positions
//     [pool_from, n), pool_from clamped to [0, n - 1] (resized to
//     hidden_size; nullptr: not computed).
// Errors: InvalidArgument (no tokens, more than the engine's context), or the
// engine's.
Status RunExpertPass(Engine& engine, std::span<const int32_t> ids, int score_from, int pool_from,
                     double* mean_logprob, std::vector<float>* pooled, ExpertBuffers* buffers);

// Where the compete step's numbers come from: the in-process expert, or an
// inference server (pipeline/openai_backend.h). Both give the same numbers
// for the same model.
class ScoringBackend {
 public:
  virtual ~ScoringBackend() = default;
  // The expert over `ids` from position 0; the terms as in RunExpertPass.
  virtual Status Run(std::span<const int32_t> ids, int score_from, int pool_from, double* mean_logprob,
                     std::vector<float>* pooled) = 0;
  // Longest sequence Run accepts (select cuts longer ones to it).
  virtual int max_seq_len() const = 0;
  // "engine" or "openai:URL" (recorded in the select header).
  virtual std::string Describe() const = 0;
  // Whether Run may be called from several threads at once.
  virtual bool concurrent() const { return false; }
};

class Expert : public ScoringBackend {
 public:
  static Result<std::unique_ptr<Expert>> Create(const ModelDir& model, const EngineOptions& options);

  // RunExpertPass on the expert's engine.
  Status Run(std::span<const int32_t> ids, int score_from, int pool_from, double* mean_logprob,
             std::vector<float>* pooled) override;
  int max_seq_len() const override { return engine_->max_seq_len(); }
  std::string Describe() const override { return "engine"; }

  int hidden_size() const { return engine_->config().hidden_size; }
  const Engine& engine() const { return *engine_; }

 private:
  std::unique_ptr<Engine> engine_;
  ExpertBuffers buffers_;
};

// Combines the terms into ScoreTerms (total = a*fidelity + b*consistency +
// d*diversity - penalty) with the hard filters and the soft penalty applied.
ScoreTerms CombineScore(double fidelity, float consistency, float diversity, std::span<const int32_t> generated,
                        bool finished, const ScoreWeights& w, const PenaltyOptions& p);

// Indices of the k best candidates by total score (ties: lower index first),
// leaving out hard-filtered ones; fewer than k if fewer pass.
std::vector<uint32_t> TopK(std::span<const ScoreTerms> scores, int k);

}  // namespace famq
