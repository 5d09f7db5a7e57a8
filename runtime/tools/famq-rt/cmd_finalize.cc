// famq-rt finalize --model DIR (--bundle B --trust PUB.pem | --calib-text FILE)
//   --method {rtn,gptq,awq,smoothquant} --wbits {8,4,3,2} [--abits 8] [--head-bits {8,6,4,16}]
//   [--group 32|64|128|channel] [--act-estimator {minmax,percentile,mse}]
//   [--mix-private FILE --private-weight W] --out Q.famq
// Verifies the bundle (signature, then family) before anything else, runs the
// weighted calibration layer by layer and writes the quantized model
// atomically (temporary file, fsync, rename).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "finalize/finalize_job.h"
#include "tools/famq-rt/calib_source.h"
#include "tools/famq-rt/cli_util.h"
#include "tools/famq-rt/commands.h"

namespace famq::cli {
namespace {

struct FinalizeArgs {
  std::string model, mix_private, out;
  CalibSourceArgs source;
  std::string method = "gptq", group = "32", estimator = "minmax", scale_dtype = "f32", calib_weights = "fp32";
  int wbits = 4, abits = 0;
  float private_weight = 0.0f;
  bool symmetric = false, act_order = false, quiet = false, json = false;
  FinalizeOptions options;
};

Result<quant::Estimator> ParseEstimator(const std::string& s) {
  if (s == "minmax") return quant::Estimator::kMinMax;
  if (s == "percentile") return quant::Estimator::kPercentile;
  if (s == "mse") return quant::Estimator::kMse;
  return InvalidArgument("unknown activation estimator '" + s + "' (minmax, percentile, mse)");
}

Result<int> ParseGroup(const std::string& s) {
  if (s == "channel") return 0;
  if (s == "32" || s == "64" || s == "128") return std::stoi(s);
  return InvalidArgument("--group " + s + " is not one of 32, 64, 128, channel");
}

int RunFinalize(FinalizeArgs a) {
  FinalizeOptions& o = a.options;
  // Settings first: impossible ones are refused before any file is read.
  auto method = ParseQuantMethod(a.method);
  if (!method.ok()) return Fail(method.status());
  o.method = *method;
  auto group = ParseGroup(a.group);
  if (!group.ok()) return Fail(group.status());
  o.group_size = *group;
  auto est = ParseEstimator(a.estimator);
  if (!est.ok()) return Fail(est.status());
  o.estimator = *est;
  o.wbits = a.wbits;
  o.abits = a.abits;
  if (o.method == QuantMethod::kSmoothQuant && a.abits == 0) o.abits = 8;  // SmoothQuant means W8A8
  o.symmetric = a.symmetric;
  if (a.scale_dtype != "f32" && a.scale_dtype != "f16") {
    return Fail(InvalidArgument("--scale-dtype " + a.scale_dtype + " is not one of f32, f16"));
  }
  o.f16_scales = a.scale_dtype == "f16";
  auto calib_weights = ParseWeightType(a.calib_weights);
  if (!calib_weights.ok()) return Fail(calib_weights.status());
  o.calib_weights = *calib_weights;
  o.gptq_act_order = a.act_order;
  if (Status st = CheckCalibSourceArgs(a.source); !st.ok()) return Fail(st);
  if (!a.mix_private.empty() && !(a.private_weight > 0.0f && a.private_weight < 1.0f)) {
    return Fail(InvalidArgument("--mix-private needs --private-weight W in (0, 1)"));
  }
  auto isa = ActiveIsa();
  if (!isa.ok()) return Fail(isa.status());
  o.isa = *isa;

  // A bundle needs its key (or --allow-unsigned): refused before any file is read.
  if (!a.source.bundle.empty() && a.source.trust.empty() && !a.source.allow_unsigned) {
    return Fail(InvalidArgument("--bundle needs --trust PUB.pem (the key the host signed it with)"));
  }

  FinalizeRequest r;
  r.model_dir = a.model;
  r.out_path = a.out;
  r.calib.bundle_path = a.source.bundle;
  r.calib.public_key_path = a.source.trust;
  r.calib.allow_unsigned = a.source.allow_unsigned;
  r.calib.allow_foreign_family = a.source.allow_foreign;
  r.calib.text_path = a.source.calib_text;
  r.calib.text_seq_len = a.source.seq_len;
  r.calib.private_text_path = a.mix_private;
  r.calib.private_weight = a.private_weight;
  r.on_calibration_loaded = [&a](const CalibrationSet& calib, const BundleVerification* v) {
    if (a.quiet || v == nullptr) return;
    std::fprintf(stderr, "[famq-rt] bundle %s: %s, %zu samples of %d tokens\n", a.source.bundle.c_str(),
                 v->signature_checked ? ("signature OK (key " + v->key_id + ")").c_str()
                                      : "UNSIGNED (allowed by --allow-unsigned)",
                 calib.samples.size(), calib.seq_len);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(fileno(stderr));
  double last_print = -1.0;
  o.on_progress = [&](const FinalizeProgress& p) {
    if (a.quiet) return true;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el - last_print < (tty ? 0.2 : 5.0) && p.fraction < 1.0) return true;
    last_print = el;
    const double eta = p.fraction > 0.0 ? el / p.fraction * (1.0 - p.fraction) : 0.0;
    std::fprintf(stderr, "%s[famq-rt] finalize %3.0f%%  block %d/%d %-10s %d/%d  %.0f s, ETA %.0f s%s",
                 tty ? "\r" : "", 100.0 * p.fraction, p.layer + 1, p.layers, p.stage, p.done, p.total, el, eta,
                 tty ? "   " : "\n");
    return true;
  };
  r.options = o;
  auto report = FinalizeToFile(r);
  if (tty && !a.quiet) std::fprintf(stderr, "\n");
  if (!report.ok()) return Fail(report.status());
  const uint64_t bytes = report->file_bytes;
  const auto& p = report->provenance;
  if (a.json) {
    nlohmann::ordered_json j;
    j["out"] = a.out;
    j["bytes"] = bytes;
    j["method"] = a.method;
    j["wbits"] = o.wbits;
    j["head_bits"] = o.head_bits;
    j["abits"] = o.abits;
    j["group"] = o.group_size;
    j["isa"] = IsaName(o.isa);
    j["calibration"] = p.calibration;
    j["samples"] = p.samples;
    j["calib_tokens"] = p.calib_tokens;
    j["seconds"] = p.seconds;
    j["peak_rss_bytes"] = p.peak_rss_bytes;
    const FinalizeTimings& t = report->timings;
    j["phase_seconds"] = {{"embed", t.embed},       {"statistics", t.statistics}, {"ranges", t.ranges},
                          {"quantize", t.quantize}, {"propagate", t.propagate},   {"assemble", t.assemble}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("wrote %s: %.2f MiB, %s W%d%s %s, calibrated on %u samples (%llu tokens, %s) in %.1f s, peak RSS %.0f MiB\n",
                a.out.c_str(), static_cast<double>(bytes) / (1 << 20), a.method.c_str(), o.wbits,
                o.abits == 8 ? "A8" : "", o.group_size == 0 ? "per-channel" : ("g" + std::to_string(o.group_size)).c_str(),
                p.samples, static_cast<unsigned long long>(p.calib_tokens), p.calibration.c_str(), p.seconds,
                static_cast<double>(p.peak_rss_bytes) / (1 << 20));
  }
  return 0;
}

}  // namespace

void RegisterFinalize(CLI::App& app, ExitCode* exit_code) {
  auto a = std::make_shared<FinalizeArgs>();
  CLI::App* cmd = app.add_subcommand("finalize", "Calibrate a model on a bundle (or text) and write the quantized model");
  cmd->add_option("--model", a->model, "fp model directory (Hugging Face layout)")->required();
  AddCalibSourceOptions(cmd, &a->source);
  cmd->add_option("--method", a->method, "rtn, gptq, awq or smoothquant")->capture_default_str();
  cmd->add_option("--wbits", a->wbits, "Weight bits: 4, 8, or 3 / 2 (weight-only; run as 8-bit codes, stored at true size)")->capture_default_str();
  cmd->add_option("--abits", a->abits, "Activation bits: 8 for static W8A8 (default: weight-only)");
  cmd->add_option("--group", a->group, "Weights per scale: 32, 64, 128 or channel")->capture_default_str();
  cmd->add_flag("--symmetric", a->symmetric, "Weight-only: symmetric codes (no zero points)");
  cmd->add_option("--head-bits", a->options.head_bits,
                  "Embedding and head: 8, 6 or 4 (RTN, symmetric, groups of 32; stored once when tied) or 16 (kept as "
                  "stored)")
      ->capture_default_str();
  cmd->add_option("--scale-dtype", a->scale_dtype,
                  "Weight scales: f32, or f16 (rounded to fp16 before the codes are computed, stored in 2 bytes: "
                  "a smaller file)")
      ->capture_default_str();
  cmd->add_option("--act-estimator", a->estimator, "Static activation ranges: minmax, percentile or mse")
      ->capture_default_str();
  cmd->add_option("--percentile", a->options.percentile, "Percentile of the percentile estimator")->capture_default_str();
  cmd->add_option("--smooth-alpha", a->options.smooth_alpha, "SmoothQuant migration strength")->capture_default_str();
  cmd->add_option("--damp", a->options.gptq_damp, "GPTQ damping (fraction of mean diag H)")->capture_default_str();
  cmd->add_flag("--act-order", a->act_order, "GPTQ: columns by descending Hessian diagonal (static groups)");
  cmd->add_option("--mix-private", a->mix_private, "On-device text mixed into the statistics (never leaves the device)");
  cmd->add_option("--private-weight", a->private_weight, "Mass of the --mix-private text, in (0, 1)");
  cmd->add_option("--calib-weights", a->calib_weights,
                  "Calibration forward's fp weights, one block at a time: fp32 (a packed copy, the reference) or "
                  "bf16 (a BF16 checkpoint read in place: less memory)")
      ->capture_default_str();
  cmd->add_option("--threads", a->options.num_threads, "Worker threads (0: one per CPU, at most 8)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--out", a->out, "Quantized model file to write (.famq)")->required();
  cmd->add_flag("--quiet", a->quiet, "No progress on stderr");
  cmd->add_flag("--json", a->json, "Print the summary as one JSON object");
  cmd->callback([a, exit_code] { exit_code->value = RunFinalize(*a); });
}

}  // namespace famq::cli
