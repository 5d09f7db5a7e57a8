// famq: the host CLI (regenerate, select, bundle, sign, serve, evaluate).
// Each subcommand lives in its own cmd_*.cc file over library calls.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/famq/commands.h"

namespace famq::host_cli {

int Fail(const Status& status) {
  std::fprintf(stderr, "famq: %s\n", status.ToString().c_str());
  return 1;
}

}  // namespace famq::host_cli

int main(int argc, char** argv) {
  CLI::App app{"famq: Family-Aware Quantization, host stage"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("famq ") + FAMQ_VERSION_STRING);
  famq::host_cli::ExitCode exit_code;
  famq::host_cli::RegisterEval(app, &exit_code);
  famq::host_cli::RegisterPipeline(app, &exit_code);
  famq::host_cli::RegisterBundleTools(app, &exit_code);
  famq::host_cli::RegisterServe(app, &exit_code);
  famq::host_cli::RegisterCompare(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code.value;
}
