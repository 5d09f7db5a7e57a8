// The calibration source of famq-rt finalize and act-stats: a signed bundle
// (verified, then checked against the model's family) or plain text.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"
#include "finalize/calibration_set.h"
#include "model/model_dir.h"

namespace famq::cli {

struct CalibSourceArgs {
  std::string bundle, trust, calib_text;
  int seq_len = 256;
  bool allow_unsigned = false, allow_foreign = false;
};

// --bundle, --trust, --allow-unsigned, --allow-foreign-family, --calib-text, --seq-len.
void AddCalibSourceOptions(CLI::App* cmd, CalibSourceArgs* a);

// InvalidArgument unless exactly one of --bundle and --calib-text is given:
// the commands check it before loading a model, LoadCalibSource again.
Status CheckCalibSourceArgs(const CalibSourceArgs& a);

// Loads the source CheckCalibSourceArgs accepts. A bundle is verified against --trust (or accepted unsigned with
// --allow-unsigned) and must carry `model`'s tokenizer hash unless
// --allow-foreign-family; unless `quiet`, one line on stderr says what was
// verified.
Result<CalibrationSet> LoadCalibSource(const CalibSourceArgs& a, const ModelDir& model, bool quiet);

}  // namespace famq::cli
