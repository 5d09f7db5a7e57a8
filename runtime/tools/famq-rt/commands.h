// Registration of famq-rt subcommands. Each Register* adds one CLI11
// subcommand whose callback stores its process exit code in *exit_code.
#pragma once

#include <CLI/CLI.hpp>

namespace famq::cli {

struct ExitCode {
  int value = 0;
};

void RegisterCommands(CLI::App& app, ExitCode* exit_code);

void RegisterInfo(CLI::App& app, ExitCode* exit_code);
void RegisterTokenize(CLI::App& app, ExitCode* exit_code);
void RegisterGenerate(CLI::App& app, ExitCode* exit_code);
void RegisterPpl(CLI::App& app, ExitCode* exit_code);
void RegisterLogits(CLI::App& app, ExitCode* exit_code);
void RegisterBench(CLI::App& app, ExitCode* exit_code);
void RegisterFinalize(CLI::App& app, ExitCode* exit_code);
void RegisterActStats(CLI::App& app, ExitCode* exit_code);
void RegisterExport(CLI::App& app, ExitCode* exit_code);
void RegisterChat(CLI::App& app, ExitCode* exit_code);

}  // namespace famq::cli
