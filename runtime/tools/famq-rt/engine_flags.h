// Engine flags shared by the commands that run a model (--threads, --ctx,
// --batch, --kv-type).
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

// --kv-type {f16,f32,int8}: the KV cache's element type. The device
// runtime's default is f16 (set here, so every command that takes the flag
// starts from it); f32 is the reference arithmetic.
inline void AddKvTypeFlag(CLI::App* cmd, EngineOptions* o) {
  o->kv_type = KvType::kF16;
  cmd->add_option_function<std::string>(
         "--kv-type",
         [o](const std::string& name) {
           auto t = ParseKvType(name);
           if (!t.ok()) throw CLI::ValidationError("--kv-type", t.status().message());
           o->kv_type = *t;
         },
         "KV-cache element type: f16 (default), f32 (reference), int8 (per position and head scales)")
      ->check(CLI::IsMember({"f16", "f32", "int8"}));
}

inline void AddEngineFlags(CLI::App* cmd, EngineOptions* o) {
  cmd->add_option("--threads", o->num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--ctx", o->max_seq_len, "KV-cache capacity in tokens (0: min(max positions, 2048))")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--batch", o->max_batch, "Prefill chunk size in tokens")->check(CLI::Range(1, 8192));
  AddKvTypeFlag(cmd, o);
}

}  // namespace famq::cli
