// famq-rt: the device CLI. Each subcommand lives in its own cmd_*.cc file and
// is a thin layer over runtime library calls.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "tools/famq-rt/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"famq-rt: famq device runtime (finalize a quantized model from a verified bundle, run it, measure it)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("famq-rt ") + FAMQ_VERSION_STRING);
  famq::cli::ExitCode exit_code;
  famq::cli::RegisterCommands(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code.value;
}
