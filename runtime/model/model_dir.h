// A Hugging Face model directory opened for running: checkpoint (config.json
// + safetensors), tokenizer.json, and the optional tokenizer_config.json and
// generation_config.json, with the stop tokens all three files name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/checkpoint.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace famq {

// What a runnable model knows about its text: the tokenizer and its special tokens.
struct ModelText {
  Tokenizer tokenizer;
  std::optional<TokenizerConfig> tokenizer_config;  // absent when the file is
  std::vector<int32_t> stop_tokens;                 // eos ids from config, generation_config, tokenizer_config
  std::optional<int32_t> bos_token;
  bool add_bos = false;                             // tokenizer_config's add_bos_token
};

struct ModelDir : ModelText {
  Checkpoint checkpoint;
};

// The special-token facts of a model, from config.json's values and the
// optional tokenizer_config.json / generation_config.json texts ("" when a
// file is absent); `origin` names the model in errors. Fills every field of
// `out` but the tokenizer (which must be loaded).
Status ResolveSpecialTokens(const ModelConfig& config, const std::string& tokenizer_config_json,
                            const std::string& generation_config_json, const std::string& origin, ModelText* out);

// Opens DIR. Errors name the file (and tensor) at fault; a tokenizer with ids
// beyond config.json's vocab_size is refused.
Result<ModelDir> OpenModelDir(const std::string& dir);

// Loads DIR/tokenizer.json alone (for commands that need no weights).
Result<Tokenizer> OpenTokenizer(const std::string& dir);

}  // namespace famq
