// Validation of a QMatrix for the weight-only kernels, and packing it into an
// ISA's layout (the PACKED LAYOUT section of qgemm.h). Kept out of qgemm.h so
// that kernel files, compiled with ISA flags, include no inline C++ library
// code (an inline function emitted there with AVX-512 instructions could be
// the copy the linker keeps for the whole program).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/qgemm.h"
#include "quant/qmatrix.h"

namespace famq {

// Checks everything the kernels rely on: bits 2, 3, 4 or 8; rows, cols, group_size
// positive; cols % 32, group_size % 32 and cols % group_size all 0; vector
// sizes; codes and zeros within [CodeMin(), CodeMax()]; scales finite, >= 0.
// name: prefixes messages (the layer or tensor name).
// Returns: Ok; InvalidArgument naming the first offending value.
Status ValidateQMatrix(const QMatrix& w, const std::string& name);

// Sizes of the three packed arrays for w in packing p (w valid).
struct QGemmPackedSizes {
  size_t tiles;         // ceil(rows / tile_rows)
  size_t code_bytes;    // tiles * blocks * tile_rows * 32 (or * 16 with nibbles)
  size_t scale_count;   // tiles * groups * tile_rows floats
  size_t offset_bytes;  // tiles * groups * tile_rows bytes
};
QGemmPackedSizes PackedSizes(const QMatrix& w, const QGemmPacking& p);

// Writes w (valid) in packing p into caller-owned arrays of PackedSizes(w, p).
void PackQMatrix(const QMatrix& w, const QGemmPacking& p, uint8_t* codes, float* scales, uint8_t* offsets);

}  // namespace famq
