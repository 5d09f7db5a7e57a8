// Per-channel maxima of |x| at every linear layer's input over a calibration
// set: what a calibration set "reached". The FAQ experiment compares them with
// the maxima of evaluation-time text (coverage = calibration max / evaluation
// max per channel) to show which data exercises the ranges inference sees.
#pragma once

#include <vector>

#include "core/status.h"
#include "finalize/calibration_set.h"
#include "model/model_dir.h"

namespace famq {

struct InputMaxima {
  int layers = 0;
  // [layer][slot][input channel]: max |x| over every token with weight > 0.
  std::vector<std::vector<std::vector<float>>> max_abs;
  uint64_t tokens = 0;  // tokens that counted
};

// Runs the fp32 model over `calib` (block by block, every sample as one
// sequence from position 0) and records the maxima. Tokens with weight 0
// (masked positions) are excluded. num_threads 0: one per CPU.
Result<InputMaxima> CollectInputMaxima(const ModelDir& model, const CalibrationSet& calib, int num_threads);

}  // namespace famq
