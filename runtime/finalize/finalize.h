// Finalize (docs/DESIGN.md §2, device side): calibrate the fp32 model over the
// weighted samples and quantize it, layer by layer, into a quantized model.
//
// For block l = 0..L-1, with X the residual stream of every sample entering
// it (computed through the already-quantized blocks 0..l-1, as GPTQ does):
//   A. run block l in fp32 over every sample and accumulate, per linear, the
//      weighted statistics the method needs (Hessian for GPTQ, mean |x| and
//      a token subsample for AWQ, per-channel max |x| for SmoothQuant and
//      static activations; every token weighted as the calibration set says);
//   B. W8A8 only: run it again and fill weighted histograms of every linear's
//      (smoothed) input and output, then estimate the static int8 ranges;
//   C. quantize the four linears, swap them into the engine, and run block l
//      quantized to produce the next X.
// Weight-only RTN needs none of this: it quantizes the weights directly.
// The forward passes, the Hessians and GPTQ run on the engine's threads
// (FinalizeOptions::num_threads); the Hessians and GPTQ give the same bits
// on any number of threads.
// Peak memory: the fp32 model, X (samples x length x hidden floats) and one
// block's statistics.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "finalize/calibration_set.h"
#include "kernels/isa.h"
#include "model/model_dir.h"
#include "qmodel/qmodel.h"
#include "quant/act_range.h"

namespace famq {

enum class QuantMethod { kRtn, kGptq, kAwq, kSmoothQuant };
const char* QuantMethodName(QuantMethod m);  // "rtn", "gptq", "awq", "smoothquant"
Result<QuantMethod> ParseQuantMethod(const std::string& name);

inline constexpr int kDefaultHeadBits = 8;
inline constexpr int kHeadGroupSize = 32;

struct FinalizeOptions {
  QuantMethod method = QuantMethod::kGptq;
  int wbits = 4;                 // 2, 3, 4 or 8 (2 and 3: weight-only, rtn / gptq / awq)
  int abits = 0;                 // 0: weight-only; 8: W8A8 static (needs wbits 8, per channel)
  int group_size = 32;           // 0: per channel
  bool symmetric = false;        // weight-only only; W8A8 weights are always symmetric
  quant::Estimator estimator = quant::Estimator::kMinMax;  // static activation ranges
  double percentile = 99.99;
  float smooth_alpha = 0.5f;     // SmoothQuant migration strength
  double gptq_damp = 0.01;       // of mean diag(H)
  int gptq_block = 128;
  bool gptq_act_order = false;
  int awq_max_tokens = 4096;     // calibration tokens AWQ's searches evaluate
  int num_threads = 0;           // engine threads (0: one per CPU, at most 8)
  // How the calibration forward holds the block being calibrated (only that
  // one: each block's fp linears are built when it is calibrated and dropped
  // once it is quantized) (--calib-weights): kF32, an fp32 copy packed for
  // XNNPACK (about 4 bytes per weight of one block; the reference
  // arithmetic), or kBf16, a BF16 checkpoint's weights read in place. The
  // two differ in fp32 summation order only (docs/DEVICE.md "Finalize memory").
  WeightType calib_weights = WeightType::kF32;
  Isa isa = Isa::kRef;           // kernels the quantized blocks run on while calibrating
  // The token embedding and the head: 16 keeps them as the checkpoint stores
  // them (fp); 8, 6 or 4 quantizes them RTN, symmetric, groups of 32
  // (kHeadGroupSize), stored once for a tied model (lookup and head), the
  // untied head likewise. Default: measured on the family (docs/DEVICE.md).
  int head_bits = kDefaultHeadBits;
  // true: every weight scale (blocks, embedding, head) is rounded to fp16
  // before its codes are computed and stored in 2 bytes (--scale-dtype f16;
  // quant::QuantSpec::f16_scales). false: fp32 scales, as before.
  bool f16_scales = false;
  // true: each finished linear's codes are packed at their stored width as
  // soon as the block is done (QLinearContents::packed_codes, w.codes left
  // empty): half the memory for 4-bit codes held until the file is built.
  // FinalizeToFile sets it; false keeps w.codes for callers that read them.
  bool compact_records = false;

  // Progress: return false to cancel (Finalize then returns kCancelled).
  std::function<bool(const struct FinalizeProgress&)> on_progress;
};

struct FinalizeProgress {
  int layer = 0, layers = 0;   // block being finalized
  const char* stage = "";      // "statistics", "ranges", "quantize", "propagate"
  int done = 0, total = 0;     // samples (or linears) within the stage
  double fraction = 0.0;       // overall, 0..1
};

// Wall-clock seconds per phase of one Finalize, summed over the blocks.
struct FinalizeTimings {
  double embed = 0;       // the calibration tokens' embeddings (the first X)
  double statistics = 0;  // A: the fp32 block forward plus the statistics (Hessians, maxima, AWQ samples)
  double ranges = 0;      // the weights loaded (SmoothQuant folded in), then B: W8A8's histogram pass
  double quantize = 0;    // C: the methods (GPTQ, AWQ, RTN) and the linears' packing
  double propagate = 0;   // D: the quantized block forward producing the next X
  double assemble = 0;    // the float tensors, embedded files and provenance
};

// Checks the options alone (and against the model's shapes): every
// impossible setting is rejected here, before any work starts.
Status ValidateFinalizeOptions(const FinalizeOptions& options, const ModelConfig& config);

// Runs the finalize; `model_dir_path` is where model came from (its config,
// tokenizer and generation files are embedded in the result). `timings`, if
// not null, receives where the time went.
Result<QModelContents> Finalize(const ModelDir& model, const std::string& model_dir_path, const CalibrationSet& calib,
                                const FinalizeOptions& options, FinalizeTimings* timings = nullptr);

// Peak resident set size of this process so far, in bytes.
uint64_t PeakRssBytes();

}  // namespace famq
