#include "tools/famq-rt/calib_source.h"

#include <cstdio>
#include <optional>

#include "bundle/bundle.h"
#include "tools/famq-rt/cli_util.h"

namespace famq::cli {

void AddCalibSourceOptions(CLI::App* cmd, CalibSourceArgs* a) {
  cmd->add_option("--bundle", a->bundle, "Signed calibration bundle from `famq bundle`");
  cmd->add_option("--trust", a->trust, "Public key (PEM) the bundle must be signed with");
  cmd->add_flag("--allow-unsigned", a->allow_unsigned, "Accept a bundle without a signature");
  cmd->add_flag("--allow-foreign-family", a->allow_foreign, "Accept a bundle made for another tokenizer");
  cmd->add_option("--calib-text", a->calib_text, "Calibrate on plain text instead (uniform weights)");
  cmd->add_option("--seq-len", a->seq_len, "Tokens per --calib-text sample")->check(CLI::Range(2, 1 << 20));
}

Status CheckCalibSourceArgs(const CalibSourceArgs& a) {
  if (a.bundle.empty() == a.calib_text.empty()) {
    return InvalidArgument("give exactly one calibration source: --bundle B (with --trust) or --calib-text FILE");
  }
  return Status::Ok();
}

Result<CalibrationSet> LoadCalibSource(const CalibSourceArgs& a, const ModelDir& model, bool quiet) {
  FAMQ_RETURN_IF_ERROR(CheckCalibSourceArgs(a));
  if (a.bundle.empty()) {
    FAMQ_ASSIGN_OR_RETURN(std::string text, ReadTextArg(a.calib_text));
    return CalibrationFromText(model.tokenizer, text, a.seq_len, a.calib_text);
  }
  BundleVerifyOptions vo;
  std::optional<PublicKey> key;
  if (!a.trust.empty()) {
    FAMQ_ASSIGN_OR_RETURN(PublicKey k, PublicKey::Load(a.trust));
    key = std::move(k);
    vo.trusted_key = &*key;
  } else if (!a.allow_unsigned) {
    return InvalidArgument("--bundle needs --trust PUB.pem (the key the host signed it with)");
  }
  vo.allow_unsigned = a.allow_unsigned;
  FAMQ_ASSIGN_OR_RETURN(Bundle b, Bundle::Open(a.bundle, vo));
  FAMQ_ASSIGN_OR_RETURN(CalibrationSet calib,
                        CalibrationFromBundle(b, a.bundle, model.tokenizer.ContentHash(), a.allow_foreign));
  if (!quiet) {
    std::fprintf(stderr, "[famq-rt] bundle %s: %s, %zu samples of %d tokens\n", a.bundle.c_str(),
                 b.verification().signature_checked ? ("signature OK (key " + b.verification().key_id + ")").c_str()
                                                    : "UNSIGNED (allowed by --allow-unsigned)",
                 calib.samples.size(), calib.seq_len);
  }
  return calib;
}

}  // namespace famq::cli
