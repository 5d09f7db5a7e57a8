#include "finalize/finalize_job.h"

#include <optional>
#include <utility>

#include "core/file.h"
#include "model/model_dir.h"

namespace famq {
namespace {

constexpr size_t kMaxTextBytes = size_t{1} << 31;

Result<CalibrationSet> LoadCalibration(const FinalizeRequest& r, const ModelDir& model) {
  const FinalizeCalibSource& s = r.calib;
  if (s.bundle_path.empty() == s.text_path.empty()) {
    return InvalidArgument("finalize: give exactly one calibration source: a bundle or a text file");
  }
  CalibrationSet calib;
  if (!s.bundle_path.empty()) {
    // Signature first, then family: nothing of an unverified bundle is used.
    BundleVerifyOptions vo;
    std::optional<PublicKey> key;
    if (!s.public_key_path.empty()) {
      FAMQ_ASSIGN_OR_RETURN(PublicKey k, PublicKey::Load(s.public_key_path));
      key = std::move(k);
      vo.trusted_key = &*key;
    } else if (!s.allow_unsigned) {
      return InvalidArgument(s.bundle_path + ": no public key given: give the key the host signed the bundle with");
    }
    vo.allow_unsigned = s.allow_unsigned;
    FAMQ_ASSIGN_OR_RETURN(const Bundle bundle, Bundle::Open(s.bundle_path, vo));
    FAMQ_ASSIGN_OR_RETURN(calib, CalibrationFromBundle(bundle, s.bundle_path, model.tokenizer.ContentHash(),
                                                       s.allow_foreign_family));
    if (r.on_calibration_loaded) r.on_calibration_loaded(calib, &bundle.verification());
  } else {
    FAMQ_ASSIGN_OR_RETURN(const std::string text, ReadFile(s.text_path, kMaxTextBytes));
    FAMQ_ASSIGN_OR_RETURN(calib, CalibrationFromText(model.tokenizer, text, s.text_seq_len, s.text_path));
    if (r.on_calibration_loaded) r.on_calibration_loaded(calib, nullptr);
  }
  if (!s.private_text_path.empty()) {
    FAMQ_ASSIGN_OR_RETURN(const std::string text, ReadFile(s.private_text_path, kMaxTextBytes));
    FAMQ_ASSIGN_OR_RETURN(CalibrationSet p,
                          CalibrationFromText(model.tokenizer, text, calib.seq_len, s.private_text_path));
    FAMQ_RETURN_IF_ERROR(MixPrivate(&calib, std::move(p), s.private_weight));
  }
  return calib;
}

}  // namespace

Result<FinalizeReport> FinalizeToFile(const FinalizeRequest& r) {
  FAMQ_ASSIGN_OR_RETURN(const ModelDir model, OpenModelDir(r.model_dir));
  FAMQ_RETURN_IF_ERROR(ValidateFinalizeOptions(r.options, model.checkpoint.config()));
  FAMQ_ASSIGN_OR_RETURN(const CalibrationSet calib, LoadCalibration(r, model));
  FinalizeReport report;
  SerializedQModel serialized;
  {
    FinalizeOptions options = r.options;
    options.compact_records = true;  // only the file is wanted: codes held at their stored width
    FAMQ_ASSIGN_OR_RETURN(QModelContents q, Finalize(model, r.model_dir, calib, options, &report.timings));
    report.provenance = q.provenance;
    // Each record's weights are freed as they go into the buffer, and the
    // rest with q here; the buffer built is the one written (no copy).
    FAMQ_ASSIGN_OR_RETURN(serialized, SerializeQModelInPlace(std::move(q)));
  }
  // Read back what is about to be written (the bytes move in, no copy): a
  // file that fails verification never lands.
  auto check = QModel::FromSerialized(std::move(serialized), r.out_path);
  if (!check.ok()) return Internal("the finalized model does not verify: " + check.status().message());
  FAMQ_RETURN_IF_ERROR(WriteFileAtomic(r.out_path, check->bytes().data(), check->bytes().size()));
  report.file_bytes = check->file_size();
  return report;
}

}  // namespace famq
