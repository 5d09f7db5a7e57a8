// famq eval (--model DIR | --qmodel FILE) [--suite default] [--eval-dir DIR] [--kv-type f32|f16|int8]
//           [--weights fp32|bf16] [--json]
// Perplexity and next-token accuracy per text domain, reasoning exact match
// with greedy chain-of-thought decoding; a table on stdout, or one JSON object
// (with the summed NLL and token count of every window, and every reasoning
// problem's 0/1, for statistics over windows and problems).
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "eval/eval_suite.h"
#include "kernels/attention.h"
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

struct EvalArgs {
  std::string model, qmodel, suite = "default", eval_dir = "models/eval";
  int limit = -1;
  int max_windows = -1;
  EngineOptions engine;
  std::string kv_type = "f32";
  std::string weights = "fp32";  // --weights (ParseWeightType); --model only
  bool json = false, quiet = false;
};

nlohmann::ordered_json TallyJson(const ReasoningTally& t) {
  return {{"accuracy", t.accuracy()}, {"correct", t.correct}, {"total", t.total}};
}

int RunEval(const EvalArgs& a) {
  if (a.model.empty() == a.qmodel.empty()) return Fail(InvalidArgument("give exactly one of --model and --qmodel"));
  auto kv = ParseKvType(a.kv_type);
  if (!kv.ok()) return Fail(kv.status());
  EngineOptions engine = a.engine;
  engine.kv_type = *kv;
  auto weights = ParseWeightType(a.weights);
  if (!weights.ok()) return Fail(weights.status());
  if (*weights != WeightType::kF32 && !a.qmodel.empty()) {
    return Fail(InvalidArgument("--weights applies to --model (a quantized model runs its own kernels)"));
  }
  engine.weights = *weights;
  auto suite = LoadEvalSuite(a.suite, a.eval_dir);
  if (!suite.ok()) return Fail(suite.status());
  if (a.limit >= 0) suite->reasoning_limit = a.limit;
  if (a.max_windows >= 0) suite->max_windows = a.max_windows;
  auto model = OpenRunnableModel(a.model, a.qmodel);
  if (!model.ok()) return Fail(model.status());

  const bool tty = isatty(fileno(stderr));
  std::string last_stage;
  auto progress = [&](std::string_view stage, int done, int total) {
    if (a.quiet) return;
    if (tty) {
      std::fprintf(stderr, "\r[famq eval] %-12.*s %d/%d   ", static_cast<int>(stage.size()), stage.data(), done, total);
      if (done == total) std::fprintf(stderr, "\n");
    } else if (done == total) {
      std::fprintf(stderr, "[famq eval] %.*s: %d done\n", static_cast<int>(stage.size()), stage.data(), total);
    }
  };
  auto r = RunEvalSuite(*suite, *model, engine, progress);
  if (!r.ok()) return Fail(r.status());

  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = model->origin;
    j["format"] = model->quantized() ? "qmodel" : "fp32";
    j["description"] = model->Describe();
    j["suite"] = suite->name;
    j["ctx"] = suite->ctx;
    j["kv_type"] = a.kv_type;
    j["text"] = nlohmann::ordered_json::object();
    for (const auto& [domain, t] : r->text) {
      j["text"][domain] = {{"ppl", t.ppl},       {"nll", t.nll},         {"top1_accuracy", t.top1_accuracy},
                           {"tokens", t.tokens}, {"windows", t.windows}, {"window_nll", t.window_nll},
                           {"window_tokens", t.window_tokens}};
    }
    if (r->reasoning) {
      const ReasoningResult& rr = *r->reasoning;
      nlohmann::ordered_json rj = TallyJson(rr.all);
      rj["unparsed"] = rr.unparsed;
      rj["generated_tokens"] = rr.generated_tokens;
      rj["correct_by_problem"] = rr.correct_by_problem;
      for (const auto& [d, t] : rr.by_difficulty) rj["by_difficulty"][std::to_string(d)] = TallyJson(t);
      for (const auto& [f, t] : rr.by_format) rj["by_format"][f] = TallyJson(t);
      for (const auto& [k, t] : rr.by_kind) rj["by_kind"][k] = TallyJson(t);
      j["reasoning"] = rj;
    }
    j["seconds"] = r->seconds;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("famq eval: %s, suite %s (ctx %d, KV cache %s)\n", model->Describe().c_str(), suite->name.c_str(),
              suite->ctx, a.kv_type.c_str());
  if (!r->text.empty()) {
    std::printf("  %-14s %12s %10s %10s\n", "domain", "perplexity", "top-1", "tokens");
    for (const auto& [domain, t] : r->text) {
      std::printf("  %-14s %12.5g %9.2f%% %10lld\n", domain.c_str(), t.ppl, 100.0 * t.top1_accuracy,
                  static_cast<long long>(t.tokens));
    }
  }
  if (r->reasoning) {
    const ReasoningResult& rr = *r->reasoning;
    std::printf("  reasoning exact match %.2f%% (%d/%d; %d without an answer line)\n", 100.0 * rr.all.accuracy(),
                rr.all.correct, rr.all.total, rr.unparsed);
    for (const auto& [d, t] : rr.by_difficulty) {
      std::printf("    difficulty %d: %6.2f%% (%d/%d)\n", d, 100.0 * t.accuracy(), t.correct, t.total);
    }
  }
  std::printf("  (%.1f s)\n", r->seconds);
  return 0;
}

}  // namespace

void RegisterEval(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a model on the family's suite (perplexity, accuracy, reasoning)");
  cmd->add_option("--model", a->model, "Hugging Face model directory");
  cmd->add_option("--qmodel", a->qmodel, "Quantized model file (.famq)");
  cmd->add_option("--suite", a->suite, "Suite name (EVAL_DIR/NAME.json) or path to a suite .json")->capture_default_str();
  cmd->add_option("--eval-dir", a->eval_dir, "Where suite names are looked up")->capture_default_str();
  cmd->add_option("--limit", a->limit, "Evaluate only the first N reasoning problems")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--max-windows", a->max_windows, "Text windows per domain (0: all)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--threads", a->engine.num_threads, "Worker threads (0: one per CPU, at most 8)")->check(CLI::Range(0, 256));
  cmd->add_option("--kv-type", a->kv_type, "KV-cache element type: f32 (the reference), f16, int8")
      ->check(CLI::IsMember({"f32", "f16", "int8"}))
      ->capture_default_str();
  AddWeightsFlag(cmd, &a->weights);
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  cmd->callback([a, exit_code] { exit_code->value = RunEval(*a); });
}

}  // namespace famq::host_cli
