// famq-rt logits (--model DIR | --qmodel Q) --prompt TEXT --out FILE.npy
// Writes float32 [tokens, vocab] logits of every prompt position (the prompt
// is tokenized without special tokens). The reference for golden tests.
#include <cstdio>

#include "core/npy.h"
#include "engine/engine.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"
#include "tools/famq-rt/engine_flags.h"

namespace famq::cli {
namespace {

struct LogitsArgs {
  std::string model, qmodel, prompt, prompt_file, prompt_ids, out;
  EngineOptions engine;
};

int RunLogits(const LogitsArgs& a) {
  if (int(!a.prompt.empty()) + int(!a.prompt_file.empty()) + int(!a.prompt_ids.empty()) != 1) {
    return Fail(InvalidArgument("give exactly one of --prompt, --prompt-file and --prompt-ids"));
  }
  auto m = OpenRunnableModel(a.model, a.qmodel);
  if (!m.ok()) return Fail(m.status());
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    auto t = ReadTextArg(a.prompt_file);
    if (!t.ok()) return Fail(t.status());
    text = *t;
  }
  std::vector<int32_t> ids;
  Status st;
  if (!a.prompt_ids.empty()) {
    auto parsed = ParsePromptIds(a.prompt_ids, m->config.vocab_size);
    if (!parsed.ok()) return Fail(parsed.status());
    ids = std::move(*parsed);
  } else {
    st = m->tokenizer.Encode(text, &ids);
    if (!st.ok()) return Fail(st);
  }
  if (ids.empty()) return Fail(InvalidArgument("the prompt has no tokens"));
  auto engine = m->CreateEngine(a.engine);
  if (!engine.ok()) return Fail(engine.status());
  Engine& e = **engine;
  if (static_cast<int>(ids.size()) > e.max_seq_len()) {
    return Fail(InvalidArgument("prompt of " + std::to_string(ids.size()) + " tokens exceeds --ctx " +
                                std::to_string(e.max_seq_len())));
  }
  const size_t vocab = static_cast<size_t>(e.vocab_size());
  std::vector<float> logits(ids.size() * vocab);
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(e.max_batch())) {
    const size_t n = std::min(static_cast<size_t>(e.max_batch()), ids.size() - start);
    st = e.Forward(std::span<const int32_t>(ids.data() + start, n), static_cast<int>(start),
                   logits.data() + start * vocab, true);
    if (!st.ok()) return Fail(st);
  }
  st = WriteNpyF32(a.out, logits.data(), {static_cast<int64_t>(ids.size()), static_cast<int64_t>(vocab)});
  if (!st.ok()) return Fail(st);
  std::fprintf(stderr, "[famq-rt] wrote %s: [%zu, %zu] float32\n", a.out.c_str(), ids.size(), vocab);
  return 0;
}

}  // namespace

void RegisterLogits(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* cmd = app.add_subcommand("logits", "Write every position's logits of a prompt to a .npy file");
  AddModelFlags(cmd, &a->model, &a->qmodel);
  cmd->add_option("--prompt", a->prompt, "Prompt text (tokenized without special tokens)");
  cmd->add_option("--prompt-file", a->prompt_file, "Read the prompt from a file");
  cmd->add_option("--prompt-ids", a->prompt_ids, "Prompt as a JSON array of token ids (no tokenization)");
  cmd->add_option("--out", a->out, "Output .npy path")->required();
  AddEngineFlags(cmd, &a->engine);
  cmd->callback([a, exit_code] { exit_code->value = RunLogits(*a); });
}

}  // namespace famq::cli
