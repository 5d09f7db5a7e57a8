// famq-rt ppl --model DIR --text FILE [--ctx N] [--json]
// Perplexity over non-overlapping windows of N tokens, each evaluated from an
// empty cache: PPL = exp(mean NLL of every token predicted inside a window).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/ops.h"
#include "engine/sampler.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"
#include "tools/famq-rt/engine_flags.h"

namespace famq::cli {
namespace {

struct PplArgs {
  std::string model, text;
  int ctx = 512;
  int max_windows = 0;
  EngineOptions engine;
  bool json = false;
};

int RunPpl(PplArgs a) {
  auto m = OpenModelDir(a.model);
  if (!m.ok()) return Fail(m.status());
  auto text = ReadTextArg(a.text);
  if (!text.ok()) return Fail(text.status());
  std::vector<int32_t> ids;
  Status st = m->tokenizer.Encode(*text, &ids);
  if (!st.ok()) return Fail(st);
  const int ctx = std::min(a.ctx, m->checkpoint.config().max_position_embeddings);
  if (ids.size() < 2) return Fail(InvalidArgument(a.text + ": fewer than 2 tokens, nothing to predict"));

  a.engine.max_seq_len = ctx;
  auto engine = Engine::Create(m->checkpoint, a.engine);
  if (!engine.ok()) return Fail(engine.status());
  Engine& e = **engine;
  const size_t vocab = static_cast<size_t>(e.vocab_size());
  std::vector<float> logits(static_cast<size_t>(e.max_batch()) * vocab);

  auto t0 = std::chrono::steady_clock::now();
  double nll = 0.0;
  int64_t predicted = 0, correct = 0;
  int windows = 0;
  // Progress with ETA on a terminal only; logs get the final line.
  const bool progress = !a.json && isatty(fileno(stderr));
  size_t total_windows = (ids.size() - 1 + static_cast<size_t>(ctx) - 1) / static_cast<size_t>(ctx);
  if (a.max_windows > 0) total_windows = std::min(total_windows, static_cast<size_t>(a.max_windows));
  for (size_t w = 0; w + 1 < ids.size(); w += static_cast<size_t>(ctx)) {
    if (a.max_windows > 0 && windows == a.max_windows) break;
    const int len = static_cast<int>(std::min<size_t>(static_cast<size_t>(ctx), ids.size() - w));
    if (len < 2) break;
    const int32_t* win = ids.data() + w;
    for (int start = 0; start < len; start += e.max_batch()) {
      const int n = std::min(e.max_batch(), len - start);
      st = e.Forward(std::span<const int32_t>(win + start, static_cast<size_t>(n)), start, logits.data(), true);
      if (!st.ok()) return Fail(st);
      for (int r = 0; r < n; ++r) {
        const int p = start + r;
        if (p + 1 >= len) break;
        const float* row = logits.data() + static_cast<size_t>(r) * vocab;
        const int32_t target = win[p + 1];
        nll += ops::LogSumExp(row, vocab) - row[target];
        correct += Argmax(row, static_cast<int>(vocab)) == target;
        ++predicted;
      }
    }
    ++windows;
    if (progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = el / windows * (static_cast<double>(total_windows) - windows);
      std::fprintf(stderr, "\r[famq-rt] window %d/%zu, %lld tokens, %.0f s left   ", windows, total_windows,
                   static_cast<long long>(predicted), eta > 0 ? eta : 0.0);
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double mean_nll = nll / static_cast<double>(predicted);
  const double ppl = std::exp(mean_nll);
  const double acc = static_cast<double>(correct) / static_cast<double>(predicted);
  if (a.json) {
    nlohmann::ordered_json j;
    j["ppl"] = ppl;
    j["nll"] = mean_nll;
    j["tokens"] = predicted;
    j["top1_accuracy"] = acc;
    j["windows"] = windows;
    j["ctx"] = ctx;
    j["seconds"] = secs;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("ppl %.4f  (mean nll %.5f over %lld predicted tokens, %d windows of %d; top-1 %.2f%%; %.1f s)\n", ppl,
                mean_nll, static_cast<long long>(predicted), windows, ctx, 100.0 * acc, secs);
  }
  return 0;
}

}  // namespace

void RegisterPpl(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a text file");
  cmd->add_option("--model", a->model, "Model directory")->required();
  cmd->add_option("--text", a->text, "UTF-8 text file")->required();
  cmd->add_option("--ctx", a->ctx, "Window length in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-windows", a->max_windows, "Stop after this many windows (0: all)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--threads", a->engine.num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--batch", a->engine.max_batch, "Prefill chunk size in tokens")->check(CLI::Range(1, 8192));
  cmd->add_flag("--json", a->json, "Print one JSON object {ppl, nll, tokens, ...}");
  cmd->callback([a, exit_code] { exit_code->value = RunPpl(*a); });
}

}  // namespace famq::cli
