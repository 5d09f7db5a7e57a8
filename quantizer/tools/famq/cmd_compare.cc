// famq compare --fp FP.json NAME=Q.json [NAME=Q.json ...] [--baseline NAME] [--json]
// The accuracy loss of quantized models against their fp32 reference, from
// `famq eval --json` results of one suite, and the FAQ gain of every model
// over the baseline (default: the first): 1 - loss / loss(baseline).
#include <array>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/json_parse.h"
#include "eval/eval_compare.h"
#include "tools/famq/commands.h"

namespace famq::host_cli {
namespace {

// Resolutions of the gain: below these baseline losses there is nothing the
// evaluation can resolve (0.02 % perplexity, 0.02 top-1 points, one problem).
constexpr double kPplResolution = 0.02, kTop1Resolution = 0.02;

struct CompareArgs {
  std::string fp, baseline;
  std::vector<std::string> models;
  bool json = false;
};

Result<nlohmann::json> ReadJson(const std::string& path) {
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, size_t{64} << 20));
  nlohmann::json j;
  FAMQ_RETURN_IF_ERROR(ParseJson(text, path, &j));
  return j;
}

std::string Gain(const std::optional<double>& g) {
  if (!g) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.0f %%", 100.0 * *g);
  return buf;
}

int RunCompare(const CompareArgs& a) {
  auto fp = ReadJson(a.fp);
  if (!fp.ok()) return Fail(fp.status());
  struct Row {
    std::string name;
    EvalLoss loss;
  };
  std::vector<Row> rows;
  for (const std::string& m : a.models) {
    const size_t eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      return Fail(InvalidArgument("'" + m + "': give models as NAME=EVAL.json"));
    }
    auto q = ReadJson(m.substr(eq + 1));
    if (!q.ok()) return Fail(q.status());
    auto loss = ComputeEvalLoss(*fp, *q);
    if (!loss.ok()) return Fail(Status(loss.status().code(), m.substr(eq + 1) + ": " + loss.status().message()));
    rows.push_back({m.substr(0, eq), *loss});
  }
  const Row* base = &rows.front();
  if (!a.baseline.empty()) {
    base = nullptr;
    for (const Row& r : rows) base = r.name == a.baseline ? &r : base;
    if (!base) return Fail(InvalidArgument("--baseline " + a.baseline + " is not one of the models"));
  }
  const double reasoning_resolution = base->loss.reasoning_total > 0 ? 100.0 / base->loss.reasoning_total : 0.0;
  auto gains = [&](const Row& r) {
    std::optional<double> rg;
    if (r.loss.reasoning_points && base->loss.reasoning_points) {
      rg = FaqGain(*r.loss.reasoning_points, *base->loss.reasoning_points, reasoning_resolution);
    }
    return std::array<std::optional<double>, 3>{FaqGain(r.loss.ppl_pct, base->loss.ppl_pct, kPplResolution),
                                                 FaqGain(r.loss.top1_points, base->loss.top1_points, kTop1Resolution),
                                                 rg};
  };
  if (a.json) {
    nlohmann::ordered_json j;
    j["suite"] = (*fp)["suite"];
    j["baseline"] = base->name;
    for (const Row& r : rows) {
      nlohmann::ordered_json e{{"name", r.name}, {"ppl_loss_pct", r.loss.ppl_pct}, {"top1_loss_points", r.loss.top1_points}};
      if (r.loss.reasoning_points) e["reasoning_loss_points"] = *r.loss.reasoning_points;
      if (&r != base) {
        const auto g = gains(r);
        e["gain"] = {{"ppl", g[0] ? nlohmann::ordered_json(*g[0]) : nullptr},
                     {"top1", g[1] ? nlohmann::ordered_json(*g[1]) : nullptr},
                     {"reasoning", g[2] ? nlohmann::ordered_json(*g[2]) : nullptr}};
      }
      j["models"].push_back(std::move(e));
    }
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("loss against fp32 (suite %s; larger is worse)\n", (*fp)["suite"].get<std::string>().c_str());
  std::printf("  %-28s %12s %12s %15s\n", "model", "ppl loss", "top-1 loss", "reasoning loss");
  for (const Row& r : rows) {
    char reasoning[32] = "-";
    if (r.loss.reasoning_points) std::snprintf(reasoning, sizeof reasoning, "%+.1f pt", *r.loss.reasoning_points);
    std::printf("  %-28s %+10.3f %% %+9.3f pt %15s\n", r.name.c_str(), r.loss.ppl_pct, r.loss.top1_points, reasoning);
  }
  for (const Row& r : rows) {
    if (&r == base) continue;
    const auto g = gains(r);
    std::printf("  %-28s %12s %12s %15s\n", ("gain " + r.name + " vs " + base->name).c_str(), Gain(g[0]).c_str(),
                Gain(g[1]).c_str(), Gain(g[2]).c_str());
  }
  std::printf("  (gain = 1 - loss / loss(%s); n/a where %s's loss is within what the suite resolves: %.2f %% ppl, "
              "%.2f top-1 pt, one reasoning problem)\n",
              base->name.c_str(), base->name.c_str(), kPplResolution, kTop1Resolution);
  return 0;
}

}  // namespace

void RegisterCompare(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand("compare", "Accuracy loss vs fp32 and FAQ gain, from `famq eval --json` results");
  cmd->add_option("--fp", a->fp, "famq eval --json result of the fp32 model")->required();
  cmd->add_option("models", a->models, "NAME=EVAL.json of each quantized model (same suite)")->required();
  cmd->add_option("--baseline", a->baseline, "The model the gains are relative to (default: the first)");
  cmd->add_flag("--json", a->json, "Print one JSON object");
  cmd->callback([a, exit_code] { exit_code->value = RunCompare(*a); });
}

}  // namespace famq::host_cli
