// famq-rt bench (--model DIR | --qmodel Q)... [--prompt-tokens P] [--gen-tokens N] [--reps R] [--json]
// Speed of each model in one run: prefill tokens/s (P seeded random tokens),
// decode tokens/s (N greedy one-token steps through the KV cache), time to
// first token, and peak RSS; each figure is the median of R repetitions, and
// every model after the first gets its ratios to the first. Only the weights
// are needed (no tokenizer), so shape-only random checkpoints work too.
// Memory (docs/BENCHMARKS.md): the process's resident set before the model
// is opened, after it is opened, after the engine is built and at its peak
// (VmHWM), split into file-backed (mapped weights) and anonymous pages, next
// to what the engine accounts for (weights a decode step reads, KV cache,
// scratch); the time from opening the model file to the first generated
// token; and the bytes one decode step reads, times tokens/s: the memory
// bandwidth decode achieves.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/checkpoint.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"
#include "tools/famq-rt/engine_flags.h"

namespace famq::cli {
namespace {

struct BenchArgs {
  std::vector<std::string> models, qmodels;
  std::vector<std::pair<std::string, bool>> order;  // (path, quantized) in command-line order
  int prompt_tokens = 128;
  int gen_tokens = 64;
  int reps = 3;
  uint64_t seed = 1;
  bool json = false;
  EngineOptions engine;
};

struct BenchResult {
  std::string model, label;
  bool quantized = false;
  int threads = 0;
  int64_t parameters = 0;
  double prefill_tps = 0, decode_tps = 0, ttft_ms = 0;
  double peak_rss_mib = 0;
  double open_to_first_token_ms = 0;  // cold: opening the file, building the engine, prefill, first token
  double open_ms = 0, engine_ms = 0;  // its first two parts: opening (read, verify), building the engine (packing)
  uint64_t file_bytes = 0;            // the model file(s) on disk
  uint64_t weight_bytes = 0, kv_cache_bytes = 0, scratch_bytes = 0;  // Engine's accounts
  uint64_t bytes_per_token = 0;       // read by one decode step (weights + the KV cache it attends to)
  double achieved_gb_s = 0;           // bytes_per_token * decode tokens/s
  struct Rss {
    double total = 0, anon = 0, file = 0;  // MiB: VmRSS, RssAnon, RssFile (+ RssShmem)
  } before, opened, built, after;     // before opening, opened, engine built, after the last run
};

// Linux: fields of /proc/self/status in MiB (0 where unavailable). VmHWM
// (the peak) is reset per model through /proc/self/clear_refs ("5").
double StatusMiB(const char* field) {
  std::ifstream f("/proc/self/status");
  const std::string key = std::string(field) + ":";
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;
  }
  return 0.0;
}
double PeakRssMiB() { return StatusMiB("VmHWM"); }
BenchResult::Rss RssNow() {
  BenchResult::Rss r;
  r.total = StatusMiB("VmRSS");
  r.anon = StatusMiB("RssAnon");
  r.file = StatusMiB("RssFile") + StatusMiB("RssShmem");
  return r;
}
void ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5";
}

uint64_t FileBytes(const RunnableModel& m) {
  if (m.qmodel != nullptr) return m.qmodel->file_size();
  uint64_t b = 0;
  std::error_code ec;
  for (const std::string& f : m.checkpoint->files()) {
    const auto n = std::filesystem::file_size(f, ec);
    if (!ec) b += n;
  }
  return b;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

Result<BenchResult> BenchOne(const std::string& path, bool quantized, const BenchArgs& a) {
  ResetPeakRss();
  BenchResult r;
  r.before = RssNow();
  const auto t_open = Clock::now();
  FAMQ_ASSIGN_OR_RETURN(RunnableModel model, quantized ? OpenRunnableModel("", path) : OpenRunnableModel(path, ""));
  const auto t_opened = Clock::now();
  r.opened = RssNow();
  EngineOptions eo = a.engine;
  if (eo.max_seq_len == 0) eo.max_seq_len = a.prompt_tokens + a.gen_tokens;
  FAMQ_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, model.CreateEngine(eo));
  const auto t_built = Clock::now();
  r.built = RssNow();
  r.open_ms = Seconds(t_open, t_opened) * 1e3;
  r.engine_ms = Seconds(t_opened, t_built) * 1e3;
  if (a.prompt_tokens + a.gen_tokens > engine->max_seq_len()) {
    return InvalidArgument("--prompt-tokens + --gen-tokens exceed the context " +
                           std::to_string(engine->max_seq_len()));
  }
  const int vocab = engine->vocab_size();
  Rng rng(a.seed);
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt_tokens));
  for (auto& t : prompt) t = static_cast<int32_t>(rng.Next() % static_cast<uint64_t>(vocab));
  std::vector<float> logits(static_cast<size_t>(vocab));

  std::vector<double> prefill, decode, ttft;
  for (int rep = 0; rep < a.reps + 1; ++rep) {  // rep 0 warms caches and XNNPACK
    const auto t0 = Clock::now();
    FAMQ_RETURN_IF_ERROR(engine->Forward(prompt, 0, logits.data(), false));
    int32_t tok = Argmax(logits.data(), vocab);
    const auto t1 = Clock::now();
    if (rep == 0) r.open_to_first_token_ms = Seconds(t_open, t1) * 1e3;
    for (int i = 0; i < a.gen_tokens; ++i) {
      FAMQ_RETURN_IF_ERROR(engine->Forward(std::span<const int32_t>(&tok, 1), a.prompt_tokens + i, logits.data(), false));
      tok = Argmax(logits.data(), vocab);
    }
    const auto t2 = Clock::now();
    if (rep == 0) continue;
    prefill.push_back(a.prompt_tokens / Seconds(t0, t1));
    decode.push_back(a.gen_tokens / Seconds(t1, t2));
    ttft.push_back(Seconds(t0, t1) * 1e3);
  }
  r.after = RssNow();
  r.model = path;
  r.quantized = quantized;
  r.label = model.Describe();
  if (!quantized && eo.weights == WeightType::kBf16 && r.label.size() > 7 &&
      r.label.compare(r.label.size() - 7, 7, " (fp32)") == 0) {
    r.label.replace(r.label.size() - 7, 7, " (bf16 in place)");
  }
  r.threads = engine->num_threads();
  r.parameters = model.config.NumParameters();
  r.prefill_tps = Median(prefill);
  r.decode_tps = Median(decode);
  r.ttft_ms = Median(ttft);
  r.peak_rss_mib = PeakRssMiB();
  r.file_bytes = FileBytes(model);
  r.weight_bytes = engine->weight_bytes();
  r.kv_cache_bytes = engine->kv_cache_bytes();
  r.scratch_bytes = engine->scratch_bytes();
  // The cache holds max_seq_len positions of one sequence (whatever its
  // element type); a decode step at position p reads p + 1 of them.
  const double kv_per_position = static_cast<double>(r.kv_cache_bytes) /
                                 (static_cast<double>(engine->max_seq_len()) * engine->max_sequences());
  const double mean_positions = a.prompt_tokens + (a.gen_tokens + 1) / 2.0;
  r.bytes_per_token = r.weight_bytes + static_cast<uint64_t>(kv_per_position * mean_positions);
  r.achieved_gb_s = static_cast<double>(r.bytes_per_token) * r.decode_tps / 1e9;
  return r;
}

int RunBench(const BenchArgs& a) {
  std::vector<BenchResult> results;
  for (const auto& [path, quantized] : a.order) {
    if (!a.json) std::fprintf(stderr, "[famq-rt] bench %s ...\n", path.c_str());
    auto r = BenchOne(path, quantized, a);
    if (!r.ok()) return Fail(r.status());
    results.push_back(*r);
  }
  const BenchResult& base = results.front();
  if (a.json) {
    nlohmann::ordered_json j;
    j["prompt_tokens"] = a.prompt_tokens;
    j["gen_tokens"] = a.gen_tokens;
    j["reps"] = a.reps;
    j["results"] = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::ordered_json o;
      o["model"] = r.model;
      o["description"] = r.label;
      o["format"] = r.quantized ? "qmodel" : "fp32";
      o["parameters"] = r.parameters;
      o["threads"] = r.threads;
      o["prefill_tokens_per_s"] = r.prefill_tps;
      o["decode_tokens_per_s"] = r.decode_tps;
      o["ttft_ms"] = r.ttft_ms;
      o["peak_rss_mib"] = r.peak_rss_mib;
      o["open_to_first_token_ms"] = r.open_to_first_token_ms;
      o["open_ms"] = r.open_ms;
      o["engine_build_ms"] = r.engine_ms;
      o["file_bytes"] = r.file_bytes;
      o["weight_bytes"] = r.weight_bytes;
      o["kv_cache_bytes"] = r.kv_cache_bytes;
      o["scratch_bytes"] = r.scratch_bytes;
      o["decode_bytes_per_token"] = r.bytes_per_token;
      o["decode_gb_per_s"] = r.achieved_gb_s;
      nlohmann::ordered_json rss;
      for (const auto& [name, x] : {std::pair<const char*, const BenchResult::Rss*>{"before_open", &r.before},
                                    {"opened", &r.opened}, {"engine_built", &r.built}, {"after_runs", &r.after}}) {
        rss[name] = {{"rss_mib", x->total}, {"anon_mib", x->anon}, {"file_mib", x->file}};
      }
      o["rss"] = rss;
      o["prefill_ratio"] = r.prefill_tps / base.prefill_tps;
      o["decode_ratio"] = r.decode_tps / base.decode_tps;
      j["results"].push_back(o);
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("%-40s %7s %12s %12s %10s %10s %8s %8s\n", "model", "threads", "prefill t/s", "decode t/s", "ttft ms",
              "peak MiB", "prefill", "decode");
  for (const auto& r : results) {
    std::printf("%-40s %7d %12.1f %12.1f %10.2f %10.1f %7.2fx %7.2fx\n", r.label.c_str(), r.threads, r.prefill_tps,
                r.decode_tps, r.ttft_ms, r.peak_rss_mib, r.prefill_tps / base.prefill_tps,
                r.decode_tps / base.decode_tps);
  }
  std::printf("(prompt %d tokens, %d decode steps, median of %d runs; ratios relative to the first model)\n",
              a.prompt_tokens, a.gen_tokens, a.reps);
  constexpr double kMiB = 1024.0 * 1024.0;
  std::printf("\n%-40s %8s %9s %9s %9s %9s %9s %9s %9s %9s %10s\n", "memory (MiB)", "file", "base RSS",
              "+open", "+engine", "peak", "mapped", "weights", "KV", "scratch", "open->tok");
  for (const auto& r : results) {
    std::printf("%-40s %8.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %8.0fms\n", r.label.c_str(),
                r.file_bytes / kMiB, r.before.total, r.opened.total - r.before.total, r.built.total - r.opened.total,
                r.peak_rss_mib, r.after.file - r.before.file, r.weight_bytes / kMiB, r.kv_cache_bytes / kMiB,
                r.scratch_bytes / kMiB, r.open_to_first_token_ms);
  }
  std::printf("(base RSS: the process before opening the model; +open / +engine: RSS added by opening the file and\n"
              " building the engine; peak: VmHWM; mapped: file-backed pages resident after the runs; weights, KV,\n"
              " scratch: the engine's own accounts; open->tok: opening the model to the first token, cold engine)\n");
  for (const auto& r : results) {
    std::printf("%s: open->tok %.0f ms = open %.0f ms (read, verify) + engine %.0f ms (build, pack) + first token "
                "%.0f ms\n",
                r.label.c_str(), r.open_to_first_token_ms, r.open_ms, r.engine_ms,
                r.open_to_first_token_ms - r.open_ms - r.engine_ms);
  }
  for (const auto& r : results) {
    std::printf("%s: decode reads %.1f MiB per token (weights + KV cache) = %.1f GB/s at %.1f tokens/s\n",
                r.label.c_str(), r.bytes_per_token / kMiB, r.achieved_gb_s, r.decode_tps);
  }
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Prefill/decode speed and peak memory of one or more models");
  CLI::Option* model = cmd->add_option("--model", a->models, "Model directory (repeat to compare; ratios are to the first)");
  CLI::Option* qmodel = cmd->add_option("--qmodel", a->qmodels, "Quantized model file (repeatable, mixes with --model)");
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "Prefill length")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--gen-tokens", a->gen_tokens, "Decode steps")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--reps", a->reps, "Measured repetitions (after one warm-up)")->check(CLI::Range(1, 1000));
  cmd->add_option("--seed", a->seed, "Seed of the random prompt tokens");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  AddEngineFlags(cmd, &a->engine);
  // famq's host-stage engine option (famq regenerate/select/bundle/serve/eval
  // --weights), to measure the in-process engine's memory and speed both ways.
  cmd->add_option_function<std::string>(
         "--weights",
         [a](const std::string& name) {
           auto w = ParseWeightType(name);
           if (!w.ok()) throw CLI::ValidationError("--weights", w.status().message());
           a->engine.weights = *w;
         },
         "--model's linear layers: fp32 (default; a packed fp32 copy) or bf16 (a BF16 checkpoint read in place); "
         "quantized models run their own kernels")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->callback([a, cmd, model, qmodel, exit_code] {
    // Ratios are to the first model given, so keep --model / --qmodel in command-line order.
    a->order.clear();
    size_t mi = 0, qi = 0;
    for (const CLI::Option* opt : cmd->parse_order()) {
      if (opt == model && mi < a->models.size()) a->order.emplace_back(a->models[mi++], false);
      if (opt == qmodel && qi < a->qmodels.size()) a->order.emplace_back(a->qmodels[qi++], true);
    }
    if (a->order.empty()) {
      exit_code->value = Fail(InvalidArgument("give at least one --model DIR or --qmodel FILE"));
      return;
    }
    exit_code->value = RunBench(*a);
  });
}

}  // namespace famq::cli
