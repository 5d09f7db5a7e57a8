// Original calibration data for the host stage: a JSONL file ({"text": ...}
// per line), a plain-text file split into samples at blank lines, or a named
// preset built from the family's data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace famq {

struct CalibSample {
  std::string text;
  int line = 0;  // 1-based line of the sample's start in the input file
};

struct CalibInput {
  std::vector<CalibSample> samples;
  std::string source;   // the file, or "preset:NAME"
  std::string sha256;   // hex SHA-256 of the file's bytes
};

// Files above this size are refused (calibration sets are small).
inline constexpr size_t kMaxCalibBytes = size_t{256} << 20;

// Reads PATH: ".jsonl" files hold one JSON object with a string "text" per
// line (blank lines skipped; errors give the line number); anything else is
// plain text split into samples at blank lines. max_samples > 0 keeps the
// first max_samples. Errors: NotFound, IoError, InvalidFormat (bad line,
// invalid UTF-8 is kept as bytes), InvalidArgument (no samples).
Result<CalibInput> LoadCalibration(const std::string& path, int max_samples = 0);

// Keeps `n` samples drawn at random without replacement (a partial
// Fisher-Yates shuffle driven by SplitMix64, so the draw is the same on every
// platform), in their file order; `source` gains " draw N seed S". n must be
// in [1, samples]; InvalidArgument otherwise.
Status DrawCalibSamples(CalibInput& in, int n, uint64_t seed);

// Presets: models/calib/NAME.jsonl under `models_dir`; their names.
Result<CalibInput> LoadCalibrationPreset(const std::string& name, const std::string& models_dir, int max_samples = 0);
std::vector<std::string> CalibrationPresetNames(const std::string& models_dir);

}  // namespace famq
