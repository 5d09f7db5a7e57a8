#include "engine/generate.h"

#include <algorithm>
#include <chrono>

namespace famq {

Generator::Generator(Engine* engine, const GenerateParams& params)
    : engine_(engine), params_(params), sampler_(engine->vocab_size(), params.sampling),
      logits_(static_cast<size_t>(engine->vocab_size())) {}

Status Generator::Run(std::span<const int32_t> prompt, std::vector<int32_t>* out, const TokenCallback& on_token,
                      GenerateStats* stats) {
  using Clock = std::chrono::steady_clock;
  FAMQ_RETURN_IF_ERROR(ValidateSamplingParams(params_.sampling));
  if (prompt.empty()) return InvalidArgument("generate: the prompt has no tokens");
  if (params_.max_new_tokens < 0) return InvalidArgument("generate: max_new_tokens is negative");
  const int budget = std::min(params_.max_new_tokens, engine_->max_seq_len() - static_cast<int>(prompt.size()));
  if (budget < 0) {
    return InvalidArgument("generate: prompt of " + std::to_string(prompt.size()) + " tokens exceeds the context of " +
                           std::to_string(engine_->max_seq_len()));
  }
  GenerateStats local;
  GenerateStats& s = stats ? *stats : local;
  s = GenerateStats{};
  s.prompt_tokens = static_cast<int>(prompt.size());

  auto t0 = Clock::now();
  FAMQ_RETURN_IF_ERROR(engine_->Forward(prompt, 0, logits_.data(), false));
  auto t1 = Clock::now();
  s.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  int pos = static_cast<int>(prompt.size());
  for (int i = 0; i < budget; ++i) {
    const int32_t tok = sampler_.Sample(logits_.data());
    out->push_back(tok);
    ++s.generated_tokens;
    const bool stop = std::find(params_.stop_tokens.begin(), params_.stop_tokens.end(), tok) != params_.stop_tokens.end();
    if (on_token && !on_token(tok)) break;
    if (stop) {
      s.stopped_by_token = true;
      break;
    }
    if (i + 1 == budget) break;  // no logits needed after the last token
    FAMQ_RETURN_IF_ERROR(engine_->Forward(std::span<const int32_t>(&tok, 1), pos, logits_.data(), false));
    ++pos;
  }
  s.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return Status::Ok();
}

}  // namespace famq
