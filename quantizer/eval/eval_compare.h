// Accuracy loss of a quantized model against its fp32 reference and the FAQ
// gain (docs/DESIGN.md §7), from two `famq eval --json` objects of the same suite.
// Losses are signed so that larger is worse:
//   ppl_pct          mean over text domains of 100 * (ppl_q / ppl_fp - 1)
//   top1_points      mean over text domains of 100 * (acc_fp - acc_q)
//   reasoning_points 100 * (exact_fp - exact_q), when both have reasoning
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "core/status.h"

namespace famq {

struct EvalLoss {
  double ppl_pct = 0, top1_points = 0;
  std::optional<double> reasoning_points;
  int reasoning_total = 0;  // problems behind reasoning_points (one problem = 100 / total points)
};

// InvalidFormat when either object is not an eval result, when the suites
// differ, or when the quantized result lacks one of the reference's domains.
Result<EvalLoss> ComputeEvalLoss(const nlohmann::json& fp, const nlohmann::json& quantized);

// 1 - loss / baseline_loss; nullopt when the baseline loss is not above
// `resolution` (no loss to cut, or one the evaluation cannot resolve).
std::optional<double> FaqGain(double loss, double baseline_loss, double resolution);

}  // namespace famq
