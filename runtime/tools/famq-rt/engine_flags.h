// Engine flags shared by the commands that run a model (--threads, --ctx, --batch).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "engine/engine.h"

namespace famq::cli {

// --model DIR | --qmodel FILE (exactly one; checked by OpenRunnableModel).
inline void AddModelFlags(CLI::App* cmd, std::string* model, std::string* qmodel) {
  cmd->add_option("--model", *model, "Model directory (Hugging Face layout, fp)");
  cmd->add_option("--qmodel", *qmodel, "Quantized model file from famq-rt finalize");
}

inline void AddEngineFlags(CLI::App* cmd, EngineOptions* o) {
  cmd->add_option("--threads", o->num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--ctx", o->max_seq_len, "KV-cache capacity in tokens (0: min(max positions, 2048))")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--batch", o->max_batch, "Prefill chunk size in tokens")->check(CLI::Range(1, 8192));
}

}  // namespace famq::cli
