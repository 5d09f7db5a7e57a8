#include "tools/famq-rt/commands.h"

namespace famq::cli {

void RegisterCommands(CLI::App& app, ExitCode* exit_code) {
  RegisterInfo(app, exit_code);
  RegisterTokenize(app, exit_code);
  RegisterGenerate(app, exit_code);
  RegisterChat(app, exit_code);
  RegisterPpl(app, exit_code);
  RegisterLogits(app, exit_code);
  RegisterBench(app, exit_code);
  RegisterFinalize(app, exit_code);
  RegisterActStats(app, exit_code);
  RegisterExport(app, exit_code);
}

}  // namespace famq::cli
