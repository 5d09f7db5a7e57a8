// TEMPORARY (lead): replaced by the tokenizer engineer's implementation.
#include "tools/famq-rt/commands.h"
namespace famq::cli {
void RegisterTokenize(CLI::App&, ExitCode*) {}
}  // namespace famq::cli
