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

void RegisterEval(CLI::App& app, ExitCode* exit_code);
void RegisterBundleTools(CLI::App& app, ExitCode* exit_code);  // keygen, verify, inspect
void RegisterPipeline(CLI::App& app, ExitCode* exit_code);     // regenerate, select, pack, bundle
void RegisterServe(CLI::App& app, ExitCode* exit_code);
void RegisterCompare(CLI::App& app, ExitCode* exit_code);   // loss vs fp32 and FAQ gain

}  // namespace famq::host_cli
