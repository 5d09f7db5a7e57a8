// What the host stage packs into a calibration bundle, as plain C++ values,
// and its deterministic serialization into the signed payload
// (schema/bundle_payload.fbs). Same contents: same bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace famq {

// The competition terms of one candidate (docs/DESIGN.md §1.1, "Compete").
struct ScoreTerms {
  float fidelity = 0.0f;
  float consistency = 0.0f;
  float diversity = 0.0f;
  float penalty = 0.0f;
  float total = 0.0f;
  float distinct2 = 0.0f;
  uint32_t generated_tokens = 0;
  bool finished = false;
};

struct BundleSample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> token_mask;  // one per token, 1 = counted
  float weight = 0.0f;
  uint32_t group = 0;               // index of the original
  bool regenerated = false;
  std::optional<ScoreTerms> scores; // regenerated samples only
  uint32_t candidate = 0;
  std::string text;
};

struct ModelIdentity {
  std::string name;
  std::string config_sha256;  // hex, "" when unknown (e.g. a remote server)
  uint64_t parameters = 0;
};

struct BundleFamily {
  std::string tokenizer_sha256;
  ModelIdentity target, regenerator, expert;
  bool foreign_allowed = false;
};

struct BundleRecipe {
  uint32_t seq_len = 256;
  uint32_t group_size = 4;
  uint32_t keep = 1;
  float temperature = 0.8f;
  float top_p = 0.95f;
  uint32_t max_new_tokens = 256;
  bool chat_template = false;
  std::string reasoning_cue;
  float weight_fidelity = 1.0f, weight_consistency = 1.0f, weight_diversity = 0.5f;
  float tau = 1.0f;
  float original_mix = 0.0f;
  bool self_calibration = false, no_cot = false, no_compete = false, no_renorm = false, originals_only = false;
  uint32_t min_new_tokens = 16;
  float min_distinct2 = 0.3f;
};

struct BundleProvenance {
  std::string tool;
  uint64_t seed = 0;
  std::string backend;
  std::string scoring_backend;
  std::string calib_sha256;
  std::string calib_source;
};

struct BundleContents {
  BundleFamily family;
  BundleRecipe recipe;
  std::vector<BundleSample> samples;
  BundleProvenance provenance;
  uint32_t num_originals = 0;
  uint32_t num_candidates = 0;
};

// The payload bytes (identifier "FQBP", format kBundleFormatVersion). Fails on
// contents a reader would refuse (mask length, weights, empty samples).
Result<std::vector<uint8_t>> SerializeBundlePayload(const BundleContents& contents);

}  // namespace famq
