// AWQ (Lin et al. 2023): activation-aware weight quantization. Input channels
// that carry large activations are scaled up in W (and their activations
// divided by the same factor, folded into the previous op) so that they lose
// less to rounding; then each (row, group) may be clipped to a smaller range.
//
// Matches llm-awq (mit-han-lab/llm-awq, awq/quantize/auto_scale.py
// `_search_module_scale` and auto_clip.py `auto_clip_layer`), with famq's
// per-token calibration weights and famq's quantizer (rtn.h, not llm-awq's
// pseudo_quantize_tensor):
//
// Scale search: x_mean[j] = sum_t weight_t |x_tj| / sum_t weight_t; for
// ratio = i / n_grid, i = 0 .. n_grid - 1: s = max(x_mean^ratio, 1e-4),
// s /= sqrt(max(s) * min(s)); W' = Q(W diag(s)) diag(s)^-1; loss(W'); the
// first ratio with the smallest loss wins (strict <, as the reference). The
// default loss is the weighted mean squared error of the layer's output,
// sum_t weight_t |(W' - W) x_t|^2 / (sum_t weight_t * rows) (the reference's
// `(org_out - out).pow(2).mean()` with token weights); ratio 0 is plain RTN.
//
// Clip search, on the scaled problem (W diag(s), inputs X diag(s)^-1, as the
// reference runs auto_clip after apply_scale): per (row, group), org_max =
// max |w| over the group; for i = 0 .. int(clip_max_shrink * clip_n_grid) - 1:
// max_val = org_max * (1 - i / clip_n_grid), W_g clamped to [-max_val,
// max_val] and quantized; error = weighted mean over tokens of (x_g . (q - w_g))^2
// (the group's partial dot products); the first smallest error wins. Tokens:
// the counted ones (weight > 0), subsampled like the reference
// (`input_feat[:, 0::n // n_sample_token]`, i.e. every (n / clip_max_tokens)-th).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/qmatrix.h"
#include "quant/quant_spec.h"

namespace famq::quant {

struct AwqOptions {
  QuantSpec spec;
  bool search_scale = true;     // false: s = 1
  int n_grid = 20;              // scale-search ratios (reference n_grid = 20); >= 1
  bool search_clip = true;      // llm-awq skips q_proj / k_proj (attention scores)
  int clip_n_grid = 20;         // reference n_grid
  double clip_max_shrink = 0.5; // reference max_shrink: try down to half the range
  int clip_max_tokens = 512;    // reference n_sample_token
  std::string name = "weight";  // the layer, for error messages
};

struct AwqResult {
  std::vector<float> input_scales;   // [cols] s: the caller divides the layer's input by s
                                     // (folds 1/s into the previous RMSNorm or linear)
  std::vector<float> clip;           // [rows][groups] the max |w * s| kept per group; empty
                                     // when !search_clip
  QMatrix q;                         // W diag(s) clamped to the clip, RTN-quantized
  double best_ratio = 0;             // the chosen ratio (0 = no scaling)
  std::vector<double> ratio_losses;  // [n_grid] the loss of each ratio; [0] is plain RTN's
};

// loss(w_candidate [rows][cols]) for one candidate W' = Q(W diag(s)) diag(s)^-1,
// in the original input space. Lower is better; a non-finite value never wins.
using AwqLossFn = std::function<double(const float* w_candidate)>;

// AWQ of w [rows][cols] on calibration inputs x [tokens][cols] with per-token
// weights [tokens] (>= 0). `w` may stack several linears that share this input
// (q/k/v, gate/up); the loss is then their joint output error.
// Errors (kInvalidArgument, naming options.name): ValidateQuantSpec's,
// non-finite weights or inputs, bad weights, no token with weight > 0, bad
// grid options, or no ratio with a finite loss.
Result<AwqResult> QuantizeAwq(const float* w, int rows, int cols, const float* x, const float* token_weights,
                              size_t tokens, const AwqOptions& options);

// The same with the scale search's loss supplied by the caller, e.g. the
// output error of the whole decoder block with W' in place (the reference
// measures the block's output). x still drives x_mean and the clip search.
Result<AwqResult> QuantizeAwq(const float* w, int rows, int cols, const float* x, const float* token_weights,
                              size_t tokens, const AwqOptions& options, const AwqLossFn& loss);

// The default loss on its own: sum_t weight_t |(w_candidate - w) x_t|^2 /
// (sum_t weight_t * rows), tokens with weight 0 skipped. Computed as
// sum_r d_r^T B d_r-style float products over panels of rows (d = w_candidate
// - w): through the counted tokens' inputs (B = X^T, cost rows * cols *
// tokens) or, when there are more counted tokens than cols, through their
// Hessian (cost rows * cols^2); the same value up to float rounding.
// Keeps a pointer to `w`, which must outlive it. Inputs unchecked: valid
// shapes, weights >= 0, at least one positive (QuantizeAwq checks them).
class AwqOutputLoss {
 public:
  AwqOutputLoss(const float* w, int rows, int cols, const float* x, const float* token_weights, size_t tokens);
  double operator()(const float* w_candidate) const;
  bool uses_hessian() const { return uses_hessian_; }

 private:
  const float* w_;
  size_t rows_, cols_;
  bool uses_hessian_ = false;
  size_t n_ = 0;              // columns of b_: cols (Hessian) or counted tokens
  std::vector<float> b_;      // [cols][n_]: the Hessian, or the counted tokens' inputs transposed
  std::vector<double> weight_;  // [n_] token weights (token path)
  double total_weight_ = 0;
};

}  // namespace famq::quant
