// Shared pieces of the famq-rt subcommands: error reporting and opening a
// model directory (checkpoint, tokenizer, tokenizer_config, stop tokens).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/checkpoint.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace famq::cli {

// Prints "famq-rt: <message>" on stderr and returns exit code 1.
int Fail(const Status& status);

struct ModelDir {
  Checkpoint checkpoint;
  Tokenizer tokenizer;
  std::optional<TokenizerConfig> tokenizer_config;  // absent when the file is
  std::vector<int32_t> stop_tokens;                 // eos ids from config, generation_config, tokenizer_config
  std::optional<int32_t> bos_token;
  bool add_bos = false;                             // tokenizer_config's add_bos_token
};

// Opens DIR: config.json + weights, tokenizer.json, and the optional
// tokenizer_config.json / generation_config.json.
Result<ModelDir> OpenModelDir(const std::string& dir);

// Loads DIR/tokenizer.json alone (for commands that need no weights).
Result<Tokenizer> OpenTokenizer(const std::string& dir);

// Parses --prompt-ids: a JSON array of token ids, each in [0, vocab_size).
Result<std::vector<int32_t>> ParsePromptIds(const std::string& json_text, int vocab_size);

// Reads a whole text file argument.
Result<std::string> ReadTextArg(const std::string& path);

}  // namespace famq::cli
