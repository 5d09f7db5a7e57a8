// The JSON view of a verified bundle (famq inspect --json): family identity,
// recipe, provenance, counts, verification, and a top-level "samples" array
// whose items carry tokens, weight, group, score, kind, token_mask, scores
// and text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bundle/bundle.h"

namespace famq {

// `with_tokens` false leaves out the token ids and masks (summary views).
nlohmann::ordered_json BundleToJson(const Bundle& bundle, bool with_tokens = true);

// Text from a bundle made safe for a terminal (famq inspect's table): tabs and
// newlines become spaces; other control characters (C0, DEL, C1) and invalid
// UTF-8 bytes become visible \xNN / \u00NN escapes, so that sample text cannot
// send escape sequences; at most `max_chars` code points are kept ("..." then).
std::string TerminalSafe(std::string_view text, size_t max_chars);

}  // namespace famq
