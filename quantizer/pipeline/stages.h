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
#include "pipeline/calib_input.h"
#include "pipeline/progress.h"
#include "pipeline/regenerate.h"
#include "pipeline/renormalize.h"
#include "pipeline/scoring.h"

namespace famq {

// Where candidates come from: the in-process engine or an OpenAI-compatible
// server. Both must give the same candidates for the same request.
class GroupBackend {
 public:
  virtual ~GroupBackend() = default;
  virtual Result<std::vector<GeneratedCandidate>> Generate(std::span<const int32_t> prompt, const GroupParams& p) = 0;
  virtual std::string Describe() const = 0;
};

// The in-process backend over an engine (not owned).
class EngineGroupBackend : public GroupBackend {
 public:
  explicit EngineGroupBackend(Engine* engine) : engine_(engine) {}
  Result<std::vector<GeneratedCandidate>> Generate(std::span<const int32_t> prompt, const GroupParams& p) override {
    return GenerateGroup(*engine_, prompt, p);
  }
  std::string Describe() const override { return "engine"; }

 private:
  Engine* engine_;
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
  std::string backend = "engine";    // or "openai:URL"
  int max_inflight = 4;
  double timeout_s = 120.0;
  int retries = 3;
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
