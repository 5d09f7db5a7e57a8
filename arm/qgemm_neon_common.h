// Shared by qgemm_neon.cc and qgemm_neondot.cc: tile bookkeeping, the
// per-block fp32 epilogue and the tile/row loops. Everything has internal
// linkage (anonymous namespace), so each file keeps its own copy compiled
// with its own flags; nothing here can leak a dotprod instruction into code
// that the plain NEON path runs.
//
// Packing (kNeonKernels / kNeonDotKernels in runtime/kernels/qgemm.cc): 8 rows
// per tile, as two int8x16 vectors of 4 rows x 4 inputs per activation quad.
//   W4: nibbles u = c + 8 in [0, 15], offset z + 8 (uint8);
//   W8: signed codes, offset z (int8).
// Both are signed x signed products for smull/sdot, no bias needed for W8.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/qgemm.h"

namespace famq {
namespace {

constexpr size_t kTileRows = 8;
// Activation rows sharing each unpacked weight block (prefill): with 4 int32
// accumulators per row and the unpacked weights, 2 rows fit 32 registers.
constexpr size_t kRowsPerPass = 2;
static_assert(kRowsPerPass == 2, "Gemm below handles a remainder of at most one row");

struct Tile {
  const uint8_t* codes;    // [blocks][block bytes] of this tile
  const float* scales;     // [groups][8]
  const uint8_t* offsets;  // [groups][8]
  const float* bias;       // [8] or nullptr
  size_t blocks;
  size_t blocks_per_group;
  size_t valid_rows;  // < 8 only in the last tile
};

template <size_t MR>
struct Rows {
  const int8_t* qx[MR];
  const float* sx[MR];
  const int32_t* qsum[MR];
};

// Rows 0-3 and 4-7 of an 8-row tile.
struct Int8Rows {
  int32x4_t lo;
  int32x4_t hi;
};
struct Float8Rows {
  float32x4_t lo;
  float32x4_t hi;
};

// 4 consecutive int8 activations, twice (8 lanes), for smull against the
// 2 rows x 4 inputs of half an int8x16 weight vector.
inline int8x8_t DupQuad(const int8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, sizeof(quad));
  return vreinterpret_s8_s32(vdup_n_s32(quad));
}

template <bool kUnsigned>
inline Int8Rows LoadOffsets(const uint8_t* p) {
  if constexpr (kUnsigned) {
    const uint16x8_t wide = vmovl_u8(vld1_u8(p));
    return {vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(wide))),
            vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(wide)))};
  } else {
    const int16x8_t wide = vmovl_s8(vld1_s8(reinterpret_cast<const int8_t*>(p)));
    return {vmovl_s16(vget_low_s16(wide)), vmovl_s16(vget_high_s16(wide))};
  }
}

// acc += (scale * sx) * float(t - offset * qsum), 8 rows.
inline Float8Rows Accumulate(Float8Rows acc, Int8Rows t, Int8Rows offset, int32_t qsum, Float8Rows scale, float sx) {
  const int32x4_t sum = vdupq_n_s32(qsum);
  const int32x4_t t_lo = vmlsq_s32(t.lo, offset.lo, sum);
  const int32x4_t t_hi = vmlsq_s32(t.hi, offset.hi, sum);
  return {vfmaq_f32(acc.lo, vcvtq_f32_s32(t_lo), vmulq_n_f32(scale.lo, sx)),
          vfmaq_f32(acc.hi, vcvtq_f32_s32(t_hi), vmulq_n_f32(scale.hi, sx))};
}

// y[0..valid_rows) of one output row; the tail goes through a stack copy.
inline void StoreRow(Float8Rows acc, const float* bias, size_t valid_rows, float* y) {
  if (bias != nullptr) {
    acc.lo = vaddq_f32(acc.lo, vld1q_f32(bias));
    acc.hi = vaddq_f32(acc.hi, vld1q_f32(bias + 4));
  }
  if (valid_rows == kTileRows) {
    vst1q_f32(y, acc.lo);
    vst1q_f32(y + 4, acc.hi);
  } else {
    float tmp[kTileRows];
    vst1q_f32(tmp, acc.lo);
    vst1q_f32(tmp + 4, acc.hi);
    for (size_t r = 0; r < valid_rows; ++r) y[r] = tmp[r];
  }
}

// Defined by each file: MR activation rows against one tile.
template <size_t MR, bool kW4>
void RunTile(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride);

template <size_t MR, bool kW4>
inline void RunRows(const Tile& tile, const QGemmActivations* a, size_t m0, float* y, size_t y_stride) {
  Rows<MR> rows;
  for (size_t i = 0; i < MR; ++i) {
    rows.qx[i] = a->qx + (m0 + i) * a->qx_stride;
    rows.sx[i] = a->sx + (m0 + i) * tile.blocks;
    rows.qsum[i] = a->qsum + (m0 + i) * tile.blocks;
  }
  RunTile<MR, kW4>(tile, rows, y + m0 * y_stride, y_stride);
}

template <bool kW4>
void Gemm(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin, size_t tile_end,
          const float* bias, float* y, size_t y_stride) {
  const size_t blocks = w->cols / kQBlock;
  const size_t groups = blocks / w->blocks_per_group;
  const size_t block_bytes = kTileRows * (kW4 ? kQBlock / 2 : kQBlock);
  for (size_t t = tile_begin; t < tile_end; ++t) {
    const size_t row0 = t * kTileRows;
    const size_t left = w->rows - row0;
    const Tile tile{w->codes + t * blocks * block_bytes,
                    w->scales + t * groups * kTileRows,
                    w->offsets + t * groups * kTileRows,
                    bias != nullptr ? bias + row0 : nullptr,
                    blocks,
                    w->blocks_per_group,
                    left < kTileRows ? left : kTileRows};
    size_t m0 = 0;
    for (; m0 + kRowsPerPass <= m; m0 += kRowsPerPass) RunRows<kRowsPerPass, kW4>(tile, a, m0, y + row0, y_stride);
    if (m0 < m) RunRows<1, kW4>(tile, a, m0, y + row0, y_stride);
  }
}

}  // namespace
}  // namespace famq
