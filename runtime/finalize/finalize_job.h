// The finalize job, start to finish, as `famq-rt finalize` and the C API's
// famq_finalize both run it: open the model directory, check the options
// against it, load the calibration source (a bundle verified before any of it
// is used, or plain text), mix in private text, run Finalize, serialize,
// verify the bytes and write them atomically (temporary file, fsync, rename).
// The front ends only translate their arguments and report the result.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "bundle/bundle.h"
#include "core/status.h"
#include "finalize/calibration_set.h"
#include "finalize/finalize.h"
#include "qmodel/qmodel.h"

namespace famq {

// Exactly one of bundle_path and text_path is set.
struct FinalizeCalibSource {
  std::string bundle_path;          // a calibration bundle from `famq bundle`
  std::string public_key_path;      // the key it must be signed with; empty: only with allow_unsigned
  bool allow_unsigned = false;      // accept a bundle without a signature
  bool allow_foreign_family = false;  // accept a bundle made for another tokenizer
  std::string text_path;            // plain text instead (uniform weights)
  int text_seq_len = 256;           // tokens per text sample
  std::string private_text_path;    // optional on-device text mixed into the statistics
  float private_weight = 0.0f;      // its mass, in (0, 1) when private_text_path is set
};

struct FinalizeRequest {
  std::string model_dir;  // fp model directory (Hugging Face layout)
  std::string out_path;   // the .famq to write
  FinalizeCalibSource calib;
  FinalizeOptions options;  // options.on_progress may cancel (kCancelled; no file is written)
  // Optional: called once the calibration set is loaded, before any
  // calibration work; `bundle` is the verified bundle's record (nullptr for text).
  std::function<void(const CalibrationSet&, const BundleVerification* bundle)> on_calibration_loaded;
};

struct FinalizeReport {
  uint64_t file_bytes = 0;               // size of the written file
  QModelProvenanceContents provenance;   // as stored in the file (seconds, peak RSS, samples, tokens)
  FinalizeTimings timings;               // where Finalize spent its time
};

// Runs the job. Errors: those of OpenModelDir, ValidateFinalizeOptions, the
// bundle's verification and family check, the calibration loaders, Finalize
// (kCancelled when on_progress returns false), SerializeQModel, and
// WriteFileAtomic; kInternal if the serialized model does not verify. On any
// error out_path is left as it was.
Result<FinalizeReport> FinalizeToFile(const FinalizeRequest& request);

}  // namespace famq
