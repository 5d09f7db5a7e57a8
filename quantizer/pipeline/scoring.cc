#include "pipeline/scoring.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/ops.h"

namespace famq {

float Distinct2(std::span<const int32_t> ids) {
  if (ids.size() < 2) return 1.0f;
  std::set<std::pair<int32_t, int32_t>> seen;
  for (size_t i = 1; i < ids.size(); ++i) seen.insert({ids[i - 1], ids[i]});
  return static_cast<float>(seen.size()) / static_cast<float>(ids.size() - 1);
}

float Cosine(std::span<const float> a, std::span<const float> b) {
  double dot = 0, na = 0, nb = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return 0.0f;
  return static_cast<float>(dot / std::sqrt(na * nb));
}

Status RunExpertPass(Engine& engine, std::span<const int32_t> ids, int score_from, int pool_from,
                     double* mean_logprob, std::vector<float>* pooled, ExpertBuffers* buffers) {
  const int n = static_cast<int>(ids.size());
  if (n == 0) return InvalidArgument("expert: no tokens");
  if (n > engine.max_seq_len()) {
    return InvalidArgument("expert: " + std::to_string(n) + " tokens exceed the context of " +
                           std::to_string(engine.max_seq_len()));
  }
  const size_t V = static_cast<size_t>(engine.vocab_size());
  const size_t H = static_cast<size_t>(engine.config().hidden_size);
  const int B = engine.max_batch();
  if (buffers->logits.size() < static_cast<size_t>(B) * V) buffers->logits.resize(static_cast<size_t>(B) * V);
  if (buffers->hidden.size() < static_cast<size_t>(B) * H) buffers->hidden.resize(static_cast<size_t>(B) * H);
  score_from = std::clamp(score_from, 1, n);
  pool_from = std::clamp(pool_from, 0, n - 1);
  if (pooled) pooled->assign(H, 0.0f);
  std::vector<double> acc(H, 0.0);
  double logprob_sum = 0.0;
  int logprob_n = 0;
  for (int start = 0; start < n; start += B) {
    const int len = std::min(B, n - start);
    // Logits only when some position in this chunk predicts a scored token.
    const bool need_logits = mean_logprob != nullptr && start + len >= score_from;
    FAMQ_RETURN_IF_ERROR(engine.ForwardHidden(ids.subspan(static_cast<size_t>(start), static_cast<size_t>(len)),
                                              start, need_logits ? buffers->logits.data() : nullptr,
                                              buffers->hidden.data()));
    for (int t = 0; t < len; ++t) {
      const int p = start + t;
      if (pooled && p >= pool_from) {
        const float* h = &buffers->hidden[static_cast<size_t>(t) * H];
        for (size_t d = 0; d < H; ++d) acc[d] += h[d];
      }
      // Row p predicts token p + 1.
      if (need_logits && p + 1 >= score_from && p + 1 < n) {
        const float* row = &buffers->logits[static_cast<size_t>(t) * V];
        logprob_sum += double(row[ids[static_cast<size_t>(p + 1)]]) - ops::LogSumExp(row, V);
        ++logprob_n;
      }
    }
  }
  if (pooled) {
    const double cnt = n - pool_from;
    for (size_t d = 0; d < H; ++d) (*pooled)[d] = static_cast<float>(acc[d] / cnt);
  }
  if (mean_logprob) *mean_logprob = logprob_n > 0 ? logprob_sum / logprob_n : 0.0;
  return Status::Ok();
}

Result<std::unique_ptr<Expert>> Expert::Create(const ModelDir& model, const EngineOptions& options) {
  auto e = std::make_unique<Expert>();
  FAMQ_ASSIGN_OR_RETURN(e->engine_, Engine::Create(model.checkpoint, options));
  const size_t B = static_cast<size_t>(e->engine_->max_batch());
  e->buffers_.logits.resize(B * static_cast<size_t>(e->engine_->vocab_size()));
  e->buffers_.hidden.resize(B * static_cast<size_t>(e->engine_->config().hidden_size));
  return e;
}

Status Expert::Run(std::span<const int32_t> ids, int score_from, int pool_from, double* mean_logprob,
                   std::vector<float>* pooled) {
  return RunExpertPass(*engine_, ids, score_from, pool_from, mean_logprob, pooled, &buffers_);
}

ScoreTerms CombineScore(double fidelity, float consistency, float diversity, std::span<const int32_t> generated,
                        bool finished, const ScoreWeights& w, const PenaltyOptions& p) {
  ScoreTerms t;
  t.fidelity = static_cast<float>(fidelity);
  t.consistency = consistency;
  t.diversity = diversity;
  t.distinct2 = Distinct2(generated);
  t.generated_tokens = static_cast<uint32_t>(generated.size());
  t.finished = finished;
  float penalty = 0.0f;
  if (static_cast<int>(generated.size()) < p.min_new_tokens) penalty += kHardFilterPenalty;
  if (t.distinct2 < p.min_distinct2) penalty += kHardFilterPenalty;
  if (!finished) penalty += p.unfinished;
  t.penalty = penalty;
  t.total = w.fidelity * t.fidelity + w.consistency * consistency + w.diversity * diversity - penalty;
  return t;
}

std::vector<uint32_t> TopK(std::span<const ScoreTerms> scores, int k) {
  std::vector<uint32_t> idx;
  for (uint32_t i = 0; i < scores.size(); ++i) {
    if (scores[i].penalty < kHardFilterPenalty) idx.push_back(i);
  }
  std::stable_sort(idx.begin(), idx.end(), [&](uint32_t a, uint32_t b) { return scores[a].total > scores[b].total; });
  if (static_cast<int>(idx.size()) > k) idx.resize(static_cast<size_t>(std::max(k, 0)));
  return idx;
}

}  // namespace famq
