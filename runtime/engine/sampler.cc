#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace famq {

Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature > 100.0f) {
    return InvalidArgument("temperature " + std::to_string(p.temperature) + " is out of range [0, 100]");
  }
  if (p.top_k < 0) return InvalidArgument("top-k " + std::to_string(p.top_k) + " is negative");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return InvalidArgument("top-p " + std::to_string(p.top_p) + " is out of range (0, 1]");
  }
  return Status::Ok();
}

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int32_t Argmax(const float* x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

Sampler::Sampler(int vocab_size, const SamplingParams& params)
    : vocab_(vocab_size), p_(params), rng_(params.seed), idx_(static_cast<size_t>(vocab_size)),
      prob_(static_cast<size_t>(vocab_size)) {}

int32_t Sampler::Sample(const float* logits) {
  if (p_.temperature <= 0.0f) return Argmax(logits, vocab_);
  std::iota(idx_.begin(), idx_.end(), 0);
  // Candidates sorted by logit, descending; ties by id so every platform agrees.
  auto by_logit = [logits](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  size_t n = idx_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    n = static_cast<size_t>(p_.top_k);
    std::partial_sort(idx_.begin(), idx_.begin() + static_cast<std::ptrdiff_t>(n), idx_.end(), by_logit);
  } else {
    std::sort(idx_.begin(), idx_.end(), by_logit);
  }
  const double inv_t = 1.0 / p_.temperature;
  const double max_logit = logits[idx_[0]];
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    prob_[i] = static_cast<float>(std::exp((logits[idx_[i]] - max_logit) * inv_t));
    sum += prob_[i];
  }
  if (p_.top_p < 1.0f) {
    // Keep the smallest prefix whose mass reaches top_p (at least one token).
    double cum = 0.0;
    size_t keep = 0;
    while (keep < n) {
      cum += prob_[keep] / sum;
      ++keep;
      if (cum >= p_.top_p) break;
    }
    n = keep;
    sum = 0.0;
    for (size_t i = 0; i < n; ++i) sum += prob_[i];
  }
  double r = rng_.Uniform() * sum;
  for (size_t i = 0; i < n; ++i) {
    r -= prob_[i];
    if (r < 0.0) return idx_[i];
  }
  return idx_[n - 1];
}

}  // namespace famq
