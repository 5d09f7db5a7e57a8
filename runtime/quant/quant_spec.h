// QuantSpec: how one weight matrix is quantized (bits, group size, symmetry),
// and the pre-flight check that every method runs before touching weights.
#pragma once

#include <string>

#include "core/status.h"

namespace famq::quant {

struct QuantSpec {
  int bits = 4;           // 2, 3, 4, 6 or 8 (6: finalize uses it for the embedding / head only)
  int group_size = 128;   // input features per scale; divides cols; 0 = per channel (== cols)
  bool symmetric = false; // true: zero point 0 (codes centred), false: a zero point per group
  // true: every scale is rounded to the nearest IEEE binary16 value (within
  // [2^-24, 65504]) before the group's zero point and codes are computed, so
  // the quantized model stores it in 2 bytes without loss (finalize
  // --scale-dtype f16).
  bool f16_scales = false;
};

// The group size in effect for a matrix of `cols` input features (0 -> cols).
inline int EffectiveGroupSize(const QuantSpec& spec, int cols) {
  return spec.group_size == 0 ? cols : spec.group_size;
}

// Checks `spec` against a [rows][cols] weight named `name` (used in the
// message, e.g. "layers.3.mlp.down_proj"). Errors (all kInvalidArgument):
//   bits other than 2, 3, 4, 6 or 8    "wbits 5 is not supported (2, 3, 4, 6 or 8)"
//   rows or cols not positive
//   cols not a multiple of 32          the int8/int4 activation kernels work in blocks of 32
//   group_size < 0, not dividing cols  "group 64 does not divide down_proj's 192 input features"
//   group_size not a multiple of 32    (same kernel block)
Status ValidateQuantSpec(const QuantSpec& spec, int rows, int cols, const std::string& name);

}  // namespace famq::quant
