// Parsing untrusted JSON with a nesting limit.
//
// nlohmann::json parses deep nesting without trouble, but copying, comparing
// and dump()ing a value recurse once per level: a 300,000-level array in a
// request or a model file overflows the stack later, far from the parse. Every
// JSON text that famq did not write itself (model directories, tokenizer and
// chat-template files, HTTP requests and replies) goes through ParseJson,
// which rejects nesting deeper than `max_depth` *before* nlohmann builds the
// value (a linear scan that tracks strings and escapes), so any value that
// exists afterwards is safe to copy and dump.
#pragma once

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace famq {

// Deep enough for every real config.json, tokenizer.json, OpenAI request or
// reply (they nest fewer than 10 levels); shallow enough that a recursive copy
// or dump uses a few KiB of stack.
inline constexpr int kMaxJsonDepth = 64;

// Deepest nesting of arrays/objects in `text` (0 for a scalar), scanning
// strings and escapes as JSON does; stops counting (and returns a value
// > max_depth) as soon as `max_depth` is exceeded. Malformed text gives some
// depth; ParseJson then reports the syntax error.
int JsonNestingDepth(std::string_view text, int max_depth);

// Parses `text` into `*out` (nlohmann::json or nlohmann::ordered_json).
// `what` names the source in errors ("config.json", "request body").
// kInvalidFormat: nesting deeper than `max_depth`, or not valid JSON.
Status ParseJson(std::string_view text, std::string_view what, nlohmann::json* out,
                 int max_depth = kMaxJsonDepth);
Status ParseJson(std::string_view text, std::string_view what, nlohmann::ordered_json* out,
                 int max_depth = kMaxJsonDepth);

}  // namespace famq
