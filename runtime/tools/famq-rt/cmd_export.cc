// famq-rt export --qmodel Q.famq --out M.gguf: a finalized weight-only model
// as a GGUF file for llama.cpp (runtime/export/gguf_export.h, docs/GGUF.md).
#include <cstdio>

#include "export/gguf_export.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {

void RegisterExport(CLI::App& app, ExitCode* exit_code) {
  struct Args {
    std::string qmodel, out;
    bool gguf = true;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("export", "Write a finalized weight-only model as GGUF for llama.cpp");
  cmd->add_option("--qmodel", args->qmodel, "Quantized model file from famq-rt finalize")->required();
  cmd->add_option("--out", args->out, "Output .gguf file (written atomically)")->required();
  cmd->add_flag("--gguf", args->gguf, "Output format (GGUF, the only one)");
  cmd->callback([args, exit_code] {
    auto rep = ExportGguf(args->qmodel, args->out);
    if (!rep.ok()) {
      exit_code->value = Fail(rep.status());
      return;
    }
    std::printf("%s: %s, %s weights, pre-tokenizer %s, %llu tensors, %llu bytes%s\n", args->out.c_str(),
                rep->architecture.c_str(), rep->weight_type.c_str(), rep->pre_tokenizer.c_str(),
                static_cast<unsigned long long>(rep->tensors), static_cast<unsigned long long>(rep->bytes),
                rep->folded_multipliers ? ", AWQ input multipliers folded" : "");
    exit_code->value = 0;
  });
}

}  // namespace famq::cli
