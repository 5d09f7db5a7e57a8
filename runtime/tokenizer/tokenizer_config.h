// tokenizer_config.json: the chat template and special tokens of a Hugging
// Face model directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace famq {

// tokenizer_config.json files larger than this are refused.
inline constexpr size_t kMaxTokenizerConfigBytes = size_t{64} << 20;
// model_max_length above this is treated as "no limit" (transformers writes
// int(1e30) when a tokenizer has none).
inline constexpr int64_t kMaxModelMaxLength = int64_t{1} << 40;

struct TokenizerConfig {
  // "" if absent or null; when the file holds a list of named templates
  // [{"name": ..., "template": ...}], the one named "default" ("" if none).
  std::string chat_template;
  // "" if absent or null; the value may be a string or an AddedToken object
  // {"content": "...", ...}.
  std::string bos_token, eos_token, pad_token;
  bool add_bos_token = false;    // absent or null -> false
  int64_t model_max_length = 0;  // 0 if absent, null, not positive or above kMaxModelMaxLength
};

// Reads and parses `path` (at most kMaxTokenizerConfigBytes).
// Errors: NotFound / IoError from reading; InvalidFormat as ParseTokenizerConfig.
Result<TokenizerConfig> LoadTokenizerConfig(const std::string& path);

// Parses the JSON text of a tokenizer_config.json; `origin` names it in errors.
// Errors: InvalidFormat - malformed JSON, not an object, nesting deeper than
// kMaxJsonDepth (64) levels, or a known field of the wrong type (e.g. a numeric eos_token).
// Unknown fields are ignored.
Result<TokenizerConfig> ParseTokenizerConfig(std::string_view json, const std::string& origin);

}  // namespace famq
