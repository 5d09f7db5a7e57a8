// The host stage's three steps over inspectable JSONL files, each resumable
// (a record per group, fsynced; rerunning the same command continues after
// the last complete group), and the bundle they end in.
//
//   regenerate: calibration file + regenerator  -> regenerate.jsonl
//   select:     regenerate.jsonl + expert       -> select.jsonl
//   pack:       select.jsonl (or the originals) -> signed bundle
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "pipeline/batch_decoder.h"
#include "pipeline/calib_input.h"
#include "pipeline/progress.h"
#include "pipeline/regenerate.h"
#include "pipeline/renormalize.h"
#include "pipeline/scoring.h"

namespace famq {

// What a group is regenerated from.
struct GroupRequest {
  std::vector<int32_t> prompt;  // the prompt's token ids (the engine, completions servers)
  std::string original;         // the original as the prompt holds it (cut to P tokens, decoded): the
                                // user turn when a chat-completions server renders its own template
  bool no_cot = false;          // chat completions: enable_thinking = false
};

// Where candidates come from: the in-process engine or an OpenAI-compatible
// server. The engine and a completions server give the same candidates for
// the same request; a chat-completions server gives others (its own template,
// one request per candidate).
class GroupBackend {
 public:
  virtual ~GroupBackend() = default;
  virtual Result<std::vector<GeneratedCandidate>> Generate(const GroupRequest& request, const GroupParams& p) = 0;
  // "engine", "openai:URL" or "openai-chat:URL" (recorded in the regenerate header).
  virtual std::string Describe() const = 0;
};

// The in-process backend over an engine (not owned).
// The in-process backend: groups in flight decode together on one engine
// (BatchDecoder, not owned); the candidates are GenerateGroup's.
class EngineGroupBackend : public GroupBackend {
 public:
  explicit EngineGroupBackend(BatchDecoder* decoder) : decoder_(decoder) {}
  Result<std::vector<GeneratedCandidate>> Generate(const GroupRequest& request, const GroupParams& p) override {
    return decoder_->Generate(request.prompt, p);
  }
  std::string Describe() const override { return "engine"; }

 private:
  BatchDecoder* decoder_;
};

struct RegenerateConfig {
  std::string target, regenerator;   // model directories
  bool allow_foreign_family = false;
  CalibInput calib;
  PromptOptions prompt;
  GroupParams group;                 // n, temperature, top_p, max_new_tokens (seed: run seed below)
  uint64_t seed = 0;
  bool self_calibration = false;     // --self: recorded (the regenerator is the target)
  int original_cap = 1024;           // original tokens kept per record (pack cuts to L)
  EngineOptions engine;
  // "engine", "openai:URL" (chat completions when the server has no
  // /v1/completions) or "openai-chat:URL" (chat completions, no probe).
  std::string backend = "engine";
  int max_inflight = 4;
  double timeout_s = 120.0;
  int retries = 3;
  // Sent as "Authorization: Bearer KEY" to an HTTP backend ("": none); never
  // written to the stage file, logs or errors.
  std::string api_key;
  // In-process engine: candidates decoded at a time in one batch, over as
  // many groups in flight as it takes (KV-cache slots, capped by
  // DecodeSlots' 1 GiB budget). Does not change the results.
  int parallel_candidates = 16;
  ProgressMode progress = ProgressMode::kHuman;
};

// Writes (or continues) `out`. A record per original: prompt, template mask,
// the original's tokens, and the G candidates.
Status RunRegenerate(const RegenerateConfig& config, const std::string& out);

struct SelectConfig {
  std::string expert;                // model directory; "" = the regenerator named in the input
  bool allow_foreign_family = false;
  ScoreWeights weights;
  PenaltyOptions penalties;
  int keep = 1;                      // k per group
  bool no_compete = false;           // random pick of k (seeded), scores still computed
  EngineOptions engine;
  // "engine" (the in-process expert) or "openai:URL": fidelity and pooled
  // states from the server, which must serve the expert, through the paths
  // it offers (docs/DESIGN.md §1.2): fidelity from echo logprobs, vLLM's
  // prompt_logprobs, or the regenerator's sampled-token logprobs (when the
  // expert is the regenerator on this server, sampled at temperature 1,
  // top_p 1, no top_k); pooled states from /v1/embeddings with pool_from,
  // else the server's own pooling of the original's and the candidate's
  // texts. A term with no path falls back to the in-process expert (a line
  // on stderr). The header's scoring_paths and scoring_backend record each
  // term's path ("engine (fallback: why)" when both fell back).
  std::string scoring_backend = "engine";
  // "" or openai:URL (a bare URL too): the pooled states from this server
  // instead (pool_from where offered, else its own pooling of the texts).
  std::string embed_backend;
  double timeout_s = 120.0;          // per scoring request
  int retries = 3;
  int max_inflight = 4;              // groups scored at a time through a server (the engine: 1)
  std::string api_key;               // as RegenerateConfig::api_key
  ProgressMode progress = ProgressMode::kHuman;
};

Status RunSelect(const SelectConfig& config, const std::string& regenerate_jsonl, const std::string& out);

struct PackConfig {
  RenormOptions renorm;
  std::string sign_key;              // PEM private key; "" with allow_unsigned writes an unsigned bundle
  bool allow_unsigned = false;
  // --originals-only: no stage files; the originals of `calib` for `target`.
  // With stage files, a non-empty `target` relabels the bundle for another
  // member with the same tokenizer (the regenerated data does not depend on
  // the target; self-calibration data cannot be relabelled).
  std::string target;
  CalibInput calib;
  int original_cap = 1024;
  uint64_t seed = 0;
};

// Packs `select_jsonl` (or, with renorm.originals_only and an empty path,
// the calibration originals) into a bundle at `out` (temp, fsync, rename).
Status RunPack(const PackConfig& config, const std::string& select_jsonl, const std::string& out);

}  // namespace famq
