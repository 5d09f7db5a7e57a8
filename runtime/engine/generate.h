// The generation loop: prefill a prompt, then decode one token at a time
// with a Sampler until a stop token or max_new_tokens. The loop itself does
// not allocate: logits and sampler scratch live in the Generator.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"

namespace famq {

struct GenerateParams {
  SamplingParams sampling;
  int max_new_tokens = 128;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
};

struct GenerateStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;
  bool stopped_by_token = false;
};

// Receives each new token; return false to stop early.
using TokenCallback = std::function<bool(int32_t token)>;

class Generator {
 public:
  Generator(Engine* engine, const GenerateParams& params);
  // Generates after `prompt`; `out` receives the new tokens (reserve to avoid growth).
  Status Run(std::span<const int32_t> prompt, std::vector<int32_t>* out, const TokenCallback& on_token,
             GenerateStats* stats);

 private:
  Engine* engine_;
  GenerateParams params_;
  Sampler sampler_;
  std::vector<float> logits_;
};

}  // namespace famq
