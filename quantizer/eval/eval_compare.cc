#include "eval/eval_compare.h"

#include <string>

namespace famq {
namespace {

bool IsEvalResult(const nlohmann::json& j) {
  return j.is_object() && j.contains("suite") && j["suite"].is_string() && j.contains("text") && j["text"].is_object();
}

const nlohmann::json* Number(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number() ? &*it : nullptr;
}

}  // namespace

Result<EvalLoss> ComputeEvalLoss(const nlohmann::json& fp, const nlohmann::json& q) {
  if (!IsEvalResult(fp) || !IsEvalResult(q)) return InvalidFormat("not a `famq eval --json` result");
  if (fp["suite"] != q["suite"]) {
    return InvalidFormat("the results come from different suites (" + fp["suite"].get<std::string>() + " vs " +
                         q["suite"].get<std::string>() + ")");
  }
  EvalLoss loss;
  int domains = 0;
  for (const auto& [domain, ref] : fp["text"].items()) {
    auto it = q["text"].find(domain);
    if (it == q["text"].end()) return InvalidFormat("the quantized result has no '" + domain + "' domain");
    const nlohmann::json *p0 = Number(ref, "ppl"), *p1 = Number(*it, "ppl");
    const nlohmann::json *a0 = Number(ref, "top1_accuracy"), *a1 = Number(*it, "top1_accuracy");
    if (!p0 || !p1 || !a0 || !a1 || !(p0->get<double>() > 0)) {
      return InvalidFormat("domain '" + domain + "' lacks a positive ppl or a top1_accuracy");
    }
    loss.ppl_pct += 100.0 * (p1->get<double>() / p0->get<double>() - 1.0);
    loss.top1_points += 100.0 * (a0->get<double>() - a1->get<double>());
    ++domains;
  }
  if (domains == 0) return InvalidFormat("the reference has no text domains");
  loss.ppl_pct /= domains;
  loss.top1_points /= domains;
  auto r0 = fp.find("reasoning");
  auto r1 = q.find("reasoning");
  if (r0 != fp.end() && r1 != q.end() && r0->is_object() && r1->is_object()) {
    const nlohmann::json *e0 = Number(*r0, "accuracy"), *e1 = Number(*r1, "accuracy");
    const nlohmann::json* n = Number(*r0, "total");
    if (e0 && e1) {
      loss.reasoning_points = 100.0 * (e0->get<double>() - e1->get<double>());
      loss.reasoning_total = n ? n->get<int>() : 0;
    }
  }
  return loss;
}

std::optional<double> FaqGain(double loss, double baseline_loss, double resolution) {
  if (!(baseline_loss > resolution) || !(baseline_loss > 0)) return std::nullopt;
  return 1.0 - loss / baseline_loss;
}

}  // namespace famq
