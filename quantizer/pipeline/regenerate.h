// Regenerate (docs/DESIGN.md §1.1): prompts built from original calibration
// samples, and groups of G candidates sampled from the regenerator. The same
// GenerateGroup serves the in-process backend and `famq serve`, so both give
// the same candidates for the same prompt, parameters and seed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model_dir.h"

namespace famq {

enum class PromptStyle {
  kBase,  // the original's first tokens, then the reasoning cue
  kChat,  // the family's chat template with thinking on, the original as the user turn
};

struct PromptOptions {
  PromptStyle style = PromptStyle::kChat;
  // Appended after the original (base) or after the assistant header (chat).
  // Default: "<think>\n" for chat (opens the reasoning), and
  // "\n\nLet's think step by step.\n" for base. Ignored with no_cot.
  std::string reasoning_cue;
  bool no_cot = false;          // no cue; chat renders with enable_thinking=false
  int max_original_tokens = 192; // P: the original is cut to its first P tokens
};

std::string DefaultReasoningCue(PromptStyle style);
// The cue the prompt ends with: "" with no_cot, else reasoning_cue or the default.
std::string EffectiveReasoningCue(const PromptOptions& options);

struct RegenPrompt {
  std::vector<int32_t> ids;
  std::vector<uint8_t> template_mask;  // per id: 1 = template or cue token, 0 = the original's text
  std::vector<int32_t> original_ids;   // the original's tokens (cut to P) as they appear in ids
};

// Builds the prompt for one original. Chat: the template is rendered around a
// placeholder and the pieces are tokenized separately (template text,
// original, template text, cue), so template tokens are known exactly.
Result<RegenPrompt> BuildRegenerationPrompt(const ModelDir& model, const std::string& original,
                                            const PromptOptions& options);

struct GroupParams {
  int n = 4;                 // candidates
  float temperature = 0.8f;
  float top_p = 0.95f;
  int top_k = 0;
  int max_new_tokens = 192;
  uint64_t seed = 0;         // the group's seed; candidate j samples with CandidateSeed(seed, j)
  std::vector<int32_t> stop_tokens;
};

struct GeneratedCandidate {
  std::vector<int32_t> ids;  // generated tokens (a final stop token included)
  bool finished = false;     // ended with a stop token
  // Where the ids came from ("" = the in-process engine): an HTTP backend's
  // source, e.g. "token_ids" or "retokenized" (openai_backend.h).
  std::string ids_from;
  // The log-probabilities an HTTP server reported for the sampled tokens, one
  // per id it sent (a stop token famq adds back has none); empty: none.
  std::vector<double> logprobs;
};

// KV-cache sequence slots for an engine that decodes `wanted` candidates at
// a time: `wanted`, or fewer when their caches (2 * layers * context *
// kv_dim floats each) would pass `cache_budget_bytes`; at least 1.
int DecodeSlots(const ModelConfig& config, const EngineOptions& options, int wanted,
                size_t cache_budget_bytes = size_t{1} << 30);

// Appends `token` to `candidate` (finished when it is one of the stop
// tokens); true when the candidate is done: finished or max_new_tokens long.
bool AppendToken(const GroupParams& params, int32_t token, GeneratedCandidate* candidate);

uint64_t GroupSeed(uint64_t run_seed, uint64_t group);
uint64_t CandidateSeed(uint64_t group_seed, uint64_t candidate);

// Checks a group request against an engine (group size, max new tokens,
// prompt ids, context, sampling parameters) and returns its sampling
// parameters (seed 0). Errors: InvalidArgument.
Result<SamplingParams> CheckGroupRequest(const Engine& engine, std::span<const int32_t> prompt,
                                         const GroupParams& params);

// Samples params.n continuations of `prompt`: the prompt is prefilled once
// (slot 0) and copied into min(n, engine.max_sequences()) sequence slots;
// the candidates then decode that many at a time, one batched forward pass
// per step (Engine::ForwardRows). A candidate's tokens depend only on the
// prompt, the parameters and its seed, not on how many slots the engine has.
// Errors: InvalidArgument (bad parameters, prompt + max_new_tokens beyond
// the engine's context), or the engine's.
Result<std::vector<GeneratedCandidate>> GenerateGroup(Engine& engine, std::span<const int32_t> prompt,
                                                      const GroupParams& params);

}  // namespace famq
