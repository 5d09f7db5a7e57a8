// Weight-only quantized GEMM/GEMV, AArch64 Advanced SIMD + dot product
// (armv8.2-a+dotprod). Spec: runtime/kernels/qgemm_ref.cc (and the
// SPECIFICATION in runtime/kernels/qgemm.h). Activations are quantized by
// famq_qd8_f32_quantize__neon (no dot product needed there).
//
// sdot (by element) adds, for 4 rows at once, the 4 products of a row's 4
// inputs with one 4-byte activation quad selected from a 16-byte vector:
// exact int32, s8 x s8, so nibbles (0..15) and signed 8-bit codes both go in
// as they are. Two accumulator chains (even and odd quads) per 4 rows.
#include "qgemm_neon_common.h"

namespace famq {
namespace {

// Per activation row: even- and odd-quad partial sums for rows 0-3 and 4-7.
struct DotSums {
  int32x4_t even03, odd03, even47, odd47;
};

// Quads kQuad (low nibbles / even) and kQuad + 1 of a block, weights for
// rows 0-3 and 4-7 already unpacked; a[0] holds quads 0-3, a[1] quads 4-7.
template <int kQuad>
inline void DotQuadPair(DotSums& s, int8x16_t even03, int8x16_t even47, int8x16_t odd03, int8x16_t odd47,
                        const int8x16_t (&a)[2]) {
  static_assert(kQuad % 2 == 0 && kQuad < 8, "quad pairs start at even quads");
  constexpr int kVector = kQuad / 4;
  constexpr int kLane = kQuad % 4;
  s.even03 = vdotq_laneq_s32(s.even03, even03, a[kVector], kLane);
  s.even47 = vdotq_laneq_s32(s.even47, even47, a[kVector], kLane);
  s.odd03 = vdotq_laneq_s32(s.odd03, odd03, a[kVector], kLane + 1);
  s.odd47 = vdotq_laneq_s32(s.odd47, odd47, a[kVector], kLane + 1);
}

// W4: pair p of a block packs quad 2p in the low nibbles, 2p+1 in the high.
template <int kPair, size_t MR>
inline void W4Pair(const uint8_t* packed, const int8x16_t (&a)[MR][2], DotSums (&s)[MR]) {
  const uint8x16_t low_nibbles = vdupq_n_u8(0x0F);
  const uint8x16_t rows03 = vld1q_u8(packed + kPair * 32);
  const uint8x16_t rows47 = vld1q_u8(packed + kPair * 32 + 16);
  const int8x16_t lo03 = vreinterpretq_s8_u8(vandq_u8(rows03, low_nibbles));
  const int8x16_t lo47 = vreinterpretq_s8_u8(vandq_u8(rows47, low_nibbles));
  const int8x16_t hi03 = vreinterpretq_s8_u8(vshrq_n_u8(rows03, 4));
  const int8x16_t hi47 = vreinterpretq_s8_u8(vshrq_n_u8(rows47, 4));
  for (size_t i = 0; i < MR; ++i) DotQuadPair<2 * kPair>(s[i], lo03, lo47, hi03, hi47, a[i]);
}

// W8: quads q and q+1 are consecutive 32-byte runs (rows 0-3, then 4-7).
template <int kQuad, size_t MR>
inline void W8QuadPair(const int8_t* codes, const int8x16_t (&a)[MR][2], DotSums (&s)[MR]) {
  const int8x16_t even03 = vld1q_s8(codes + kQuad * 32);
  const int8x16_t even47 = vld1q_s8(codes + kQuad * 32 + 16);
  const int8x16_t odd03 = vld1q_s8(codes + kQuad * 32 + 32);
  const int8x16_t odd47 = vld1q_s8(codes + kQuad * 32 + 48);
  for (size_t i = 0; i < MR; ++i) DotQuadPair<kQuad>(s[i], even03, even47, odd03, odd47, a[i]);
}

template <size_t MR, bool kW4>
void RunTile(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride) {
  Float8Rows acc[MR];
  for (size_t i = 0; i < MR; ++i) acc[i] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  // Group by group: scales and offsets change once per group_size inputs.
  for (size_t g = 0; g < tile.blocks / tile.blocks_per_group; ++g) {
    const Int8Rows offset = LoadOffsets<kW4>(tile.offsets + g * kTileRows);
    const Float8Rows scale{vld1q_f32(tile.scales + g * kTileRows), vld1q_f32(tile.scales + g * kTileRows + 4)};
    for (size_t b = g * tile.blocks_per_group; b < (g + 1) * tile.blocks_per_group; ++b) {
      int8x16_t a[MR][2];
      DotSums s[MR];
      for (size_t i = 0; i < MR; ++i) {
        a[i][0] = vld1q_s8(rows.qx[i] + b * kQBlock);
        a[i][1] = vld1q_s8(rows.qx[i] + b * kQBlock + 16);
        s[i] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
      }
      if constexpr (kW4) {
        const uint8_t* packed = tile.codes + b * (kTileRows * kQBlock / 2);
        W4Pair<0>(packed, a, s);
        W4Pair<1>(packed, a, s);
        W4Pair<2>(packed, a, s);
        W4Pair<3>(packed, a, s);
      } else {
        const int8_t* codes = reinterpret_cast<const int8_t*>(tile.codes) + b * (kTileRows * kQBlock);
        W8QuadPair<0>(codes, a, s);
        W8QuadPair<2>(codes, a, s);
        W8QuadPair<4>(codes, a, s);
        W8QuadPair<6>(codes, a, s);
      }
      for (size_t i = 0; i < MR; ++i) {
        const Int8Rows t{vaddq_s32(s[i].even03, s[i].odd03), vaddq_s32(s[i].even47, s[i].odd47)};
        acc[i] = Accumulate(acc[i], t, offset, rows.qsum[i][b], scale, rows.sx[i][b]);
      }
    }
  }
  for (size_t i = 0; i < MR; ++i) StoreRow(acc[i], tile.bias, tile.valid_rows, y + i * y_stride);
}

}  // namespace

void famq_q4w_f32_gemm__neondot(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                                size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<true>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

void famq_q8w_f32_gemm__neondot(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                                size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<false>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

}  // namespace famq
