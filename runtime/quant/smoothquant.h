// SmoothQuant (Xiao et al. 2023) for W8A8: migrates activation outliers into
// the weights with a per-input-channel factor s, so that X diag(s)^-1 and
// diag(s) W^T both quantize well to int8.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/qmatrix.h"

namespace famq::quant {

// The smoothing factors of one input shared by the linears stacked in
// w [rows][cols] (e.g. q/k/v after input_layernorm, gate/up after
// post_attention_layernorm), as mit-han-lab/smoothquant smooth.py
// `smooth_ln_fcs` computes them:
//   w_max_j = max(max_i |W_ij|, 1e-5)
//   s_j     = max(act_absmax_j^alpha / w_max_j^(1 - alpha), 1e-5)
// act_absmax [cols]: the calibrated max |x_j| (weighted statistics: max over
// tokens with weight > 0, LinearInputStats::max_abs). alpha in [0, 1]
// (reference default 0.5). The caller divides the input (the preceding
// RMSNorm's weight) by s and multiplies W's columns by s.
// Preconditions (not checked: a pure function of its inputs): rows, cols > 0,
// finite inputs.
std::vector<float> SmoothQuantScales(const float* act_absmax, const float* w, int rows, int cols, float alpha = 0.5f);

// Symmetric int8 per-output-channel weights for the W8A8 path:
// QuantizeRtn(w, rows, cols, {8, cols, true}) (rtn.h's convention: scale =
// 2 * max|w_i| / 255, zero point 0, codes in [-128, 127]), the form XNNPACK's
// qc8 convolution takes. `name`: the tensor, for error messages.
// Errors: QuantizeRtn's.
Result<QMatrix> QuantizeW8PerChannel(const float* w, int rows, int cols, const std::string& name = "weight");

}  // namespace famq::quant
