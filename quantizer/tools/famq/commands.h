// Registration of famq (host CLI) subcommands; each callback stores its
// process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"

namespace famq::host_cli {

struct ExitCode {
  int value = 0;
};

// Prints "famq: <message>" on stderr and returns exit code 1.
int Fail(const Status& status);

// --weights fp32|bf16 of every command that runs the in-process engine over a
// checkpoint (regenerate, select, bundle, serve, eval): EngineOptions::weights.
inline void AddWeightsFlag(CLI::App* cmd, std::string* weights) {
  cmd->add_option("--weights", *weights,
                  "In-process engine's linear layers: fp32 (a packed fp32 copy, ~4 bytes per parameter on top of "
                  "the mapped checkpoint; the reference) or bf16 (a BF16 checkpoint's weights read in place, ~2 "
                  "bytes per parameter; F32/F16 checkpoints are refused)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
}

void RegisterEval(CLI::App& app, ExitCode* exit_code);
void RegisterBundleTools(CLI::App& app, ExitCode* exit_code);  // keygen, verify, inspect
void RegisterPipeline(CLI::App& app, ExitCode* exit_code);     // regenerate, select, pack, bundle
void RegisterServe(CLI::App& app, ExitCode* exit_code);
void RegisterCompare(CLI::App& app, ExitCode* exit_code);   // loss vs fp32 and FAQ gain

}  // namespace famq::host_cli
