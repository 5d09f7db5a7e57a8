// Token sampling: greedy, or temperature -> top-k -> top-p (the order HF's
// generate() applies its warpers), with a seeded, platform-independent RNG.
// All scratch space is allocated in the constructor.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"

namespace famq {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy (argmax, lowest id on ties)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  uint64_t seed = 0;
};

Status ValidateSamplingParams(const SamplingParams& p);

// SplitMix64: tiny, fast and identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();  // [0, 1) with 53 random bits
 private:
  uint64_t state_;
};

class Sampler {
 public:
  Sampler(int vocab_size, const SamplingParams& params);
  // Picks a token from logits[vocab_size]; does not allocate.
  int32_t Sample(const float* logits);
  void Reseed(uint64_t seed) { rng_ = Rng(seed); }
  // Other parameters (validated by the caller) and a new seed; no allocation.
  void Reset(const SamplingParams& params, uint64_t seed) {
    p_ = params;
    rng_ = Rng(seed);
  }

 private:
  int vocab_;
  SamplingParams p_;
  Rng rng_;
  std::vector<int32_t> idx_;
  std::vector<float> prob_;
};

int32_t Argmax(const float* x, int n);

}  // namespace famq
