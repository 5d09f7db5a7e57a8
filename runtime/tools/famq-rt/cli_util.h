// Shared pieces of the famq-rt subcommands: error reporting and argument
// parsing; model directories are opened by model/model_dir.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model_dir.h"
#include "qmodel/qmodel_engine.h"

namespace famq::cli {

// Prints "famq-rt: <message>" on stderr and returns exit code 1.
int Fail(const Status& status);

// The model directory helpers live in the runtime library.
using famq::ModelDir;
using famq::OpenModelDir;
using famq::OpenTokenizer;
using famq::OpenRunnableModel;
using famq::RunnableModel;

// Parses --prompt-ids: a JSON array of token ids, each in [0, vocab_size).
Result<std::vector<int32_t>> ParsePromptIds(const std::string& json_text, int vocab_size);

// Reads a whole text file argument.
Result<std::string> ReadTextArg(const std::string& path);

}  // namespace famq::cli
