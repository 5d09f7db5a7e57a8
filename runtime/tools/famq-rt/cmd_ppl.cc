// famq-rt ppl (--model DIR | --qmodel Q) --text FILE [--ctx N] [--json]
// Perplexity over non-overlapping windows of N tokens, each evaluated from an
// empty cache: PPL = exp(mean NLL of every token predicted inside a window).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/perplexity.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"
#include "tools/famq-rt/engine_flags.h"

namespace famq::cli {
namespace {

struct PplArgs {
  std::string model, qmodel, text;
  int ctx = 512;
  int max_windows = 0;
  EngineOptions engine;
  bool json = false;
};

int RunPpl(PplArgs a) {
  auto m = OpenRunnableModel(a.model, a.qmodel);
  if (!m.ok()) return Fail(m.status());
  auto text = ReadTextArg(a.text);
  if (!text.ok()) return Fail(text.status());
  std::vector<int32_t> ids;
  if (Status st = m->tokenizer.Encode(*text, &ids); !st.ok()) return Fail(st);
  const int ctx = std::min(a.ctx, m->config.max_position_embeddings);
  if (ids.size() < 2) return Fail(InvalidArgument(a.text + ": fewer than 2 tokens, nothing to predict"));

  a.engine.max_seq_len = ctx;
  auto engine = m->CreateEngine(a.engine);
  if (!engine.ok()) return Fail(engine.status());

  // Progress with ETA on a terminal only; logs get the final line.
  const bool progress = !a.json && isatty(fileno(stderr));
  const auto t0 = std::chrono::steady_clock::now();
  PerplexityOptions po;
  po.ctx = ctx;
  po.max_windows = a.max_windows;
  po.on_window = [&](int done, int planned) {
    if (progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\r[famq-rt] window %d/%d, %.0f s left   ", done, planned, el / done * (planned - done));
      if (done == planned) std::fprintf(stderr, "\n");
    }
    return true;
  };
  auto r = ComputePerplexity(**engine, ids, po);
  if (!r.ok()) return Fail(r.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ppl = r->ppl, mean_nll = r->mean_nll, acc = r->top1_accuracy();
  const int64_t predicted = r->tokens;
  const int windows = r->windows;
  if (a.json) {
    nlohmann::ordered_json j;
    j["ppl"] = ppl;
    j["nll"] = mean_nll;
    j["tokens"] = predicted;
    j["top1_accuracy"] = acc;
    j["windows"] = windows;
    j["ctx"] = ctx;
    j["kv_type"] = KvTypeName(a.engine.kv_type);
    j["seconds"] = secs;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("ppl %.4f  (mean nll %.5f over %lld predicted tokens, %d windows of %d; top-1 %.2f%%; %s KV; %.1f s)\n",
                ppl, mean_nll, static_cast<long long>(predicted), windows, ctx, 100.0 * acc,
                KvTypeName(a.engine.kv_type), secs);
  }
  return 0;
}

}  // namespace

void RegisterPpl(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a text file");
  AddModelFlags(cmd, &a->model, &a->qmodel);
  cmd->add_option("--text", a->text, "UTF-8 text file")->required();
  cmd->add_option("--ctx", a->ctx, "Window length in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-windows", a->max_windows, "Stop after this many windows (0: all)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--threads", a->engine.num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--batch", a->engine.max_batch, "Prefill chunk size in tokens")->check(CLI::Range(1, 8192));
  AddKvTypeFlag(cmd, &a->engine);
  cmd->add_flag("--json", a->json, "Print one JSON object {ppl, nll, tokens, ...}");
  cmd->callback([a, exit_code] { exit_code->value = RunPpl(*a); });
}

}  // namespace famq::cli
