// The weighted calibration samples a finalize runs over (docs/DESIGN.md §1.1,
// "Re-normalize"): every token carries its own weight, already combining the
// sample weight w_c, the token mask and the 1/|c| per-sample normalization,
// so statistics are plain weighted sums: H = sum_t weight_t * x_t x_t^T.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bundle/bundle.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace famq {

struct CalibSample {
  std::vector<int32_t> tokens;
  std::vector<float> token_weights;  // one per token; 0 = excluded from statistics
};

struct CalibrationSet {
  std::vector<CalibSample> samples;
  std::string kind;            // "bundle" or "text"
  std::string source;          // file name
  std::string bundle_payload_sha256, bundle_key_id;
  float private_mix = 0.0f;    // mass of mixed-in private text
  int seq_len = 0;             // the longest sample

  double TotalWeight() const;
  uint64_t CountedTokens() const;  // tokens with weight > 0
};

// A verified bundle's samples: weight_t = w_c * mask_t / sum(mask of c).
// Refuses a bundle whose family (tokenizer hash) is not `tokenizer_sha256`
// unless allow_foreign_family.
Result<CalibrationSet> CalibrationFromBundle(const Bundle& bundle, const std::string& origin,
                                             const std::string& tokenizer_sha256, bool allow_foreign_family);

// Plain text, the "original data" path: the text's tokens cut into
// consecutive windows of seq_len (a shorter tail window is kept if it has at
// least 2 tokens), position 0 of each masked (the attention sink, as the
// host masks it), uniform sample weights summing to 1.
Result<CalibrationSet> CalibrationFromText(const Tokenizer& tokenizer, const std::string& text, int seq_len,
                                           const std::string& origin);

// Mixes private on-device text into `set` with total mass `mass` in (0, 1):
// the set's weights are scaled by (1 - mass), the private samples' by mass.
Status MixPrivate(CalibrationSet* set, CalibrationSet private_set, float mass);

}  // namespace famq
