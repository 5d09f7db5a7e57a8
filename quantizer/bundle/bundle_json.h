// The JSON view of a verified bundle (famq inspect --json): family identity,
// recipe, provenance, counts, verification, and a top-level "samples" array
// whose items carry tokens, weight, group, score, kind, token_mask, scores
// and text.
#pragma once

#include <nlohmann/json.hpp>

#include "bundle/bundle.h"

namespace famq {

// `with_tokens` false leaves out the token ids and masks (summary views).
nlohmann::ordered_json BundleToJson(const Bundle& bundle, bool with_tokens = true);

}  // namespace famq
