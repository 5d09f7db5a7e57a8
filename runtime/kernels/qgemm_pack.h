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
#include "core/qmatrix.h"

namespace famq {

// A group-wise quantized matrix read in place: a QMatrix's vectors (codes one
// per byte) or a quantized-model record (schema/qmodel.fbs QuantLinear: 4-bit
// codes two per byte, even column in the low nibble; 2-, 3- and 6-bit codes
// as a bit stream). Same meaning as QMatrix.
struct QMatrixView {
  int bits = 0, rows = 0, cols = 0, group_size = 0;
  // int8 bit patterns [rows][cols], or nibbles [rows][cols / 2] (4 bits, nibbles),
  // or a bit stream [rows][cols * bits / 8] (2, 3 or 6 bits, bitstream).
  const uint8_t* codes = nullptr;
  bool nibbles = false;            // 4-bit codes two per byte (signed nibbles, even column low)
  // 2-, 3- or 6-bit codes as runtime/qmodel/code_packing.h's bit stream: the
  // unsigned code c + 2^(bits-1) of element i (row-major) at stream bits
  // [i * bits, (i + 1) * bits), least significant bit first. cols % 32 == 0, so
  // each 32-column block is 4 * bits whole bytes. Every bit pattern is a code
  // in range. At most one of nibbles / bitstream is set.
  bool bitstream = false;
  const float* scales = nullptr;   // [rows][cols / group_size]
  // Or the scales as IEEE binary16 bit patterns (a record written with fp16
  // scales): exactly one of scales / scales_f16 is set; scale_count counts either.
  const uint16_t* scales_f16 = nullptr;
  const int8_t* zeros = nullptr;   // [rows][cols / group_size]; nullptr with zero_count 0: all 0 (symmetric)
  size_t code_count = 0, scale_count = 0, zero_count = 0;  // the arrays' lengths, checked against the shape
};

// The view of a QMatrix (codes one per byte).
QMatrixView ViewOf(const QMatrix& w);

// Group g's scale (fp16 scales widened exactly) and zero point (0 when the
// view has none) of a view; g < scale_count, unchecked.
float QMatrixViewScale(const QMatrixView& w, size_t g);
int QMatrixViewZero(const QMatrixView& w, size_t g);

// ValidateQMatrix's checks on a view: bits 2, 3, 4, 6 or 8 (2, 3 and 6 run on
// the 8-bit packing), shape, array lengths (bit stream: rows * cols * bits / 8
// bytes), zero points in the code range, scales finite and >= 0; codes stored
// one per byte are range-checked below 8 bits (nibbles, bit-stream codes and
// 8-bit bytes are in range by construction); nibbles only at 4 bits, a bit
// stream only at 2, 3 or 6. Returns: Ok; InvalidArgument naming the first
// offending value.
Status ValidateQMatrixView(const QMatrixView& w, const std::string& name);

// Checks everything the kernels rely on: bits 2, 3, 4, 6 or 8; rows, cols, group_size
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
QGemmPackedSizes PackedSizes(const QMatrixView& w, const QGemmPacking& p);

// Writes w (valid) in packing p into caller-owned arrays of PackedSizes(w, p).
void PackQMatrix(const QMatrix& w, const QGemmPacking& p, uint8_t* codes, float* scales, uint8_t* offsets);
// The same for the tiles [tile_begin, tile_end) of a view (valid), so that
// packing can be split across threads; the arrays are the whole matrix's.
// A bit-stream view is decoded block by block straight into the packing (no
// one-byte-per-code copy of the matrix).
void PackQMatrixTiles(const QMatrixView& w, const QGemmPacking& p, size_t tile_begin, size_t tile_end, uint8_t* codes,
                      float* scales, uint8_t* offsets);

// Packed weights read back one row at a time (the tied embedding's lookup
// reads the head's packed weights, so the file's copy can be dropped).
struct QGemmPackedRows {
  QGemmWeights weights{};  // all pointers null: none
  QGemmPacking packing{};
  int bits = 0;
  size_t groups = 0;  // per row
};
// out[cols] = row r dequantized exactly as QMatrix::Dequant computes it:
// scale * float(code - zero). r < rows (unchecked).
void DequantPackedRow(const QGemmPackedRows& p, size_t r, float* out);
// Bytes one DequantPackedRow reads (codes, scales, offsets of one row).
size_t PackedRowBytes(const QGemmPackedRows& p);

}  // namespace famq
