// Re-normalize (docs/DESIGN.md §1.1): kept candidates (or originals) become bundle
// samples of a fixed length with group-mass sample weights and token masks.
#pragma once

#include <cstdint>
#include <vector>

#include "bundle/bundle_contents.h"
#include "core/status.h"
#include "pipeline/records.h"

namespace famq {

struct RenormOptions {
  int seq_len = 256;          // L: samples are cut to L tokens, shorter ones packed up to L
  float tau = 1.0f;           // softmax temperature of the weights within a group
  float original_mix = 0.0f;  // lambda: total mass of the originals
  bool no_renorm = false;     // ablation: no packing, uniform weights, no token masks (cut at L only)
  bool originals_only = false;// baseline: the originals alone, packed the same way
  bool uniform_in_group = false; // --no-compete: weights ignore the (random-pick) scores
  int32_t separator = -1;     // token between packed pieces (the model's end-of-text); -1: none
};

// Builds the samples from selected group records: for each group its kept
// candidates (prompt + generation, template tokens masked), packed with the
// group's other candidates (best first) when shorter than L; a group whose
// candidates were all filtered contributes its original instead. Originals
// pack with the following originals. Position 0 of every sample is masked.
// Weights sum to 1: each group has mass (1 - lambda) / n, split by
// softmax(score / tau) over its kept samples; each original lambda / n.
Result<std::vector<BundleSample>> Renormalize(const std::vector<GroupRecord>& groups, const RenormOptions& options,
                                              int* fallback_groups);

}  // namespace famq
