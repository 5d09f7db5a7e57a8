// Round-to-nearest (RTN) group-wise weight quantization, and the per-group
// quantizer that GPTQ and AWQ share.
//
// Convention (one for every method in famq::quant): the quantizer of GPTQ's
// reference code, `Quantizer.find_params` (IST-DASLab/gptq quant.py, the same
// in AutoGPTQ) with perchannel=True and mse=False, over one group of weights:
//
//   xmin = min(min(w), 0), xmax = max(max(w), 0)           0 is always representable
//   symmetric:  xmax = max(|xmin|, xmax); if xmin < 0: xmin = -xmax
//   xmin == xmax == 0 (an all-zero group): xmin = -1, xmax = +1   (scale never 0 or NaN)
//   scale = (xmax - xmin) / maxq,  maxq = 2^bits - 1
//   zero_u = symmetric ? (maxq + 1) / 2 : round(-xmin / scale)
//   code_u = clamp(round(w / scale) + zero_u, 0, maxq)      round: half to even (torch.round)
//   w ~ scale * (code_u - zero_u)
//
// So symmetric 4-bit has scale = 2*amax/15 and codes in [-8, 7] around zero 8
// (amax itself rounds to the clamped top code 7, as in the reference). One
// reference quirk is kept on purpose, for parity with GPTQ checkpoints: a
// symmetric group without negative weights keeps xmin = 0 (scale = xmax / maxq
// around the mid zero point), so its top half saturates.
//
// QMatrix (quant/qmatrix.h) stores codes and zero points signed:
// code_s = code_u - 2^(bits-1), zero_s = zero_u - 2^(bits-1) (symmetric: 0).
// Arithmetic runs in double; the stored scale is its float rounding.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/qmatrix.h"
#include "quant/quant_spec.h"

namespace famq::quant {

// One group's quantizer, as find_params computes it.
struct GroupParams {
  double scale = 1.0;  // > 0 and finite for finite inputs
  int zero = 0;        // unsigned zero point in [0, 2^bits - 1]
};

// The parameters of a group whose smallest and largest values are
// `group_min` <= `group_max` (finite). `bits`: 2, 3, 4 or 8. f16_scale: the
// scale is rounded to the nearest binary16 value, clamped to [2^-24, 65504]
// (QuantSpec::f16_scales), before the zero point is derived from it.
GroupParams FindGroupParams(double group_min, double group_max, int bits, bool symmetric, bool f16_scale = false);

// The unsigned code of `w`: clamp(round(w / scale) + zero, 0, maxq), rounding
// half to even like torch.round. `maxq` = 2^bits - 1.
int QuantizeToCode(double w, const GroupParams& params, int maxq);

// Quantizes one group of `n` weights, first clamped to [-clip, clip] when
// clip >= 0 (clip < 0: none). Writes the signed codes to `codes` and the
// dequantized values float(scale) * (code - zero), exactly what
// QMatrix::Dequant returns, to `dequant`; either may be null. Returns the
// group's parameters. No validation: callers have checked bits and inputs.
GroupParams QuantizeGroup(const float* w, int n, int bits, bool symmetric, float clip, int8_t* codes,
                          float* dequant, bool f16_scale = false);

// RTN-quantizes w [rows][cols] (row-major, finite) with `spec`.
//   clip: optional [rows][groups] maximum |w| per (row, group), e.g. AWQ's
//         clip search; each group is clamped to [-clip, clip] before its
//         parameters and codes are computed (llm-awq apply_clip). Null: none.
//   name: the tensor's name, for error messages.
// Errors: ValidateQuantSpec's (kInvalidArgument); a non-finite weight or a
// negative / non-finite clip value (kInvalidArgument, naming `name` and the
// element).
Result<QMatrix> QuantizeRtn(const float* w, int rows, int cols, const QuantSpec& spec,
                            const float* clip = nullptr, const std::string& name = "weight");

// Fake quantization of w [rows][cols] into out [rows][cols] (may alias w):
// what QuantizeRtn's matrix dequantizes to, without building it. Inputs as
// QuantizeRtn's but unchecked: for search loops that validated once.
void FakeQuantizeRtn(const float* w, int rows, int cols, const QuantSpec& spec, const float* clip, float* out);

// Checks that n values are finite; names the first bad one as `what`[index].
Status CheckFinite(const float* v, size_t n, const std::string& what);

}  // namespace famq::quant
