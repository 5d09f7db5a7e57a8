// A weight matrix quantized group-wise, the one canonical form that every
// quantization method produces, the quantized-model file stores and the
// kernels repack:
//
//   W[r][c] ≈ scales[r][g] * (codes[r][c] - zeros[r][g]),  g = c / group_size
//
// Codes are signed: [-2, 1] for 2 bits, [-4, 3] for 3 bits, [-8, 7] for 4
// bits, [-128, 127] for 8 bits (one int8 each in memory, whatever the width;
// the file packs them densely, runtime/qmodel/code_packing.h). Symmetric
// quantization has zeros == 0; asymmetric stores the zero point in the same
// signed code range (an unsigned zero point z_u maps to z_u - 2^(bits-1)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace famq {

struct QMatrix {
  int bits = 0;        // 2, 3, 4 or 8
  int rows = 0;        // output features (n)
  int cols = 0;        // input features (k)
  int group_size = 0;  // divides cols; == cols for per-channel scales
  std::vector<int8_t> codes;  // [rows][cols], each in [CodeMin(), CodeMax()]
  std::vector<float> scales;  // [rows][groups_per_row()], finite, >= 0
  std::vector<int8_t> zeros;  // [rows][groups_per_row()], in [CodeMin(), CodeMax()]

  int groups_per_row() const { return group_size > 0 ? cols / group_size : 0; }
  int CodeMin() const { return -(1 << (bits - 1)); }
  int CodeMax() const { return (1 << (bits - 1)) - 1; }
  float Dequant(int r, int c) const {
    const size_t g = static_cast<size_t>(r) * static_cast<size_t>(groups_per_row()) + static_cast<size_t>(c / group_size);
    return scales[g] * static_cast<float>(codes[static_cast<size_t>(r) * static_cast<size_t>(cols) + static_cast<size_t>(c)] - zeros[g]);
  }
};

}  // namespace famq
