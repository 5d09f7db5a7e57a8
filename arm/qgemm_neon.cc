// Weight-only quantized GEMM/GEMV, AArch64 Advanced SIMD without dot product
// instructions (and the activation quantizer shared with neondot). Spec:
// runtime/kernels/qgemm_ref.cc (and the SPECIFICATION in runtime/kernels/qgemm.h).
//
// smull/smlal multiply 2 rows x 4 inputs of int8 into int16 lanes, one
// product per lane; sadalp/addp fold the lanes into per-row int32 sums.
//   W4: |u * qx| <= 15 * 127, so all 8 quads of a block add up in int16
//       (<= 15240) before one widening;
//   W8: |c * qx| <= 128 * 127, so two quads share an int16 lane (<= 32512)
//       before each widening add.
#include "qgemm_neon_common.h"

namespace famq {
namespace {

// One int16x8 accumulator per pair of rows (0-1, 2-3, 4-5, 6-7).
struct PairSums16 {
  int16x8_t r[4];
};
struct PairSums32 {
  int32x4_t r[4];
};

// Adds one activation quad (a) times the 8 rows x 4 inputs in w_lo (rows 0-3)
// and w_hi (rows 4-7) to the int16 lanes.
inline void MultiplyAdd(PairSums16& d, int8x16_t w_lo, int8x16_t w_hi, int8x8_t a) {
  d.r[0] = vmlal_s8(d.r[0], vget_low_s8(w_lo), a);
  d.r[1] = vmlal_s8(d.r[1], vget_high_s8(w_lo), a);
  d.r[2] = vmlal_s8(d.r[2], vget_low_s8(w_hi), a);
  d.r[3] = vmlal_s8(d.r[3], vget_high_s8(w_hi), a);
}

// [r0 k0..3, r1 k0..3] int16 lanes of rows (2h, 2h+1) -> int32 row sums.
inline Int8Rows FoldRows(const PairSums32& d) { return {vpaddq_s32(d.r[0], d.r[1]), vpaddq_s32(d.r[2], d.r[3])}; }

template <size_t MR, bool kW4>
void RunTile(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride) {
  Float8Rows acc[MR];
  for (size_t i = 0; i < MR; ++i) acc[i] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  const uint8x16_t low_nibbles = vdupq_n_u8(0x0F);
  // Group by group: scales and offsets change once per group_size inputs.
  for (size_t g = 0; g < tile.blocks / tile.blocks_per_group; ++g) {
    const Int8Rows offset = LoadOffsets<kW4>(tile.offsets + g * kTileRows);
    const Float8Rows scale{vld1q_f32(tile.scales + g * kTileRows), vld1q_f32(tile.scales + g * kTileRows + 4)};
    for (size_t b = g * tile.blocks_per_group; b < (g + 1) * tile.blocks_per_group; ++b) {
      Int8Rows t[MR];
      if constexpr (kW4) {
        const uint8_t* packed = tile.codes + b * (kTileRows * kQBlock / 2);
        PairSums16 d[MR];
        for (size_t i = 0; i < MR; ++i) {
          for (int h = 0; h < 4; ++h) d[i].r[h] = vdupq_n_s16(0);
        }
        for (size_t p = 0; p < 4; ++p) {
          const uint8x16_t rows03 = vld1q_u8(packed + p * 32);
          const uint8x16_t rows47 = vld1q_u8(packed + p * 32 + 16);
          // Nibbles are in [0, 15]: as int8 they are the same values.
          const int8x16_t lo03 = vreinterpretq_s8_u8(vandq_u8(rows03, low_nibbles));  // quad 2p
          const int8x16_t lo47 = vreinterpretq_s8_u8(vandq_u8(rows47, low_nibbles));
          const int8x16_t hi03 = vreinterpretq_s8_u8(vshrq_n_u8(rows03, 4));  // quad 2p+1
          const int8x16_t hi47 = vreinterpretq_s8_u8(vshrq_n_u8(rows47, 4));
          for (size_t i = 0; i < MR; ++i) {
            const int8_t* q = rows.qx[i] + b * kQBlock + p * 8;
            MultiplyAdd(d[i], lo03, lo47, DupQuad(q));
            MultiplyAdd(d[i], hi03, hi47, DupQuad(q + 4));
          }
        }
        for (size_t i = 0; i < MR; ++i) {
          PairSums32 wide;
          for (int h = 0; h < 4; ++h) wide.r[h] = vpaddlq_s16(d[i].r[h]);
          t[i] = FoldRows(wide);
        }
      } else {
        const int8_t* codes = reinterpret_cast<const int8_t*>(tile.codes) + b * (kTileRows * kQBlock);
        PairSums32 d[MR];
        for (size_t i = 0; i < MR; ++i) {
          for (int h = 0; h < 4; ++h) d[i].r[h] = vdupq_n_s32(0);
        }
        for (size_t q = 0; q < 8; q += 2) {
          const int8x16_t even03 = vld1q_s8(codes + q * 32);
          const int8x16_t even47 = vld1q_s8(codes + q * 32 + 16);
          const int8x16_t odd03 = vld1q_s8(codes + q * 32 + 32);
          const int8x16_t odd47 = vld1q_s8(codes + q * 32 + 48);
          for (size_t i = 0; i < MR; ++i) {
            const int8_t* x = rows.qx[i] + b * kQBlock + q * 4;
            PairSums16 s;
            for (int h = 0; h < 4; ++h) s.r[h] = vdupq_n_s16(0);
            MultiplyAdd(s, even03, even47, DupQuad(x));
            MultiplyAdd(s, odd03, odd47, DupQuad(x + 4));
            for (int h = 0; h < 4; ++h) d[i].r[h] = vpadalq_s16(d[i].r[h], s.r[h]);
          }
        }
        for (size_t i = 0; i < MR; ++i) t[i] = FoldRows(d[i]);
      }
      for (size_t i = 0; i < MR; ++i) acc[i] = Accumulate(acc[i], t[i], offset, rows.qsum[i][b], scale, rows.sx[i][b]);
    }
  }
  for (size_t i = 0; i < MR; ++i) StoreRow(acc[i], tile.bias, tile.valid_rows, y + i * y_stride);
}

}  // namespace

void famq_qd8_f32_quantize__neon(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum) {
  const int8x16_t min_code = vdupq_n_s8(-127);
  for (size_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float32x4_t v[8];
    for (int i = 0; i < 8; ++i) v[i] = vld1q_f32(xb + 4 * i);
    float32x4_t m = vabsq_f32(v[0]);
    for (int i = 1; i < 8; ++i) m = vmaxq_f32(m, vabsq_f32(v[i]));
    const float amax = vmaxvq_f32(m);
    if (!(amax >= kQMinBlockAmax)) {
      vst1q_s8(qx + b * kQBlock, vdupq_n_s8(0));
      vst1q_s8(qx + b * kQBlock + 16, vdupq_n_s8(0));
      sx[b] = 0.0f;
      qsum[b] = 0;
      continue;
    }
    const float inv = 127.0f / amax;
    int16x8_t q16[4];
    for (int i = 0; i < 4; ++i) {
      // fcvtns: round to nearest, ties to even, whatever FPCR says.
      const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i], inv));
      const int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(v[2 * i + 1], inv));
      q16[i] = vcombine_s16(vqmovn_s32(a), vqmovn_s32(c));
    }
    const int8x16_t q0 = vmaxq_s8(vcombine_s8(vqmovn_s16(q16[0]), vqmovn_s16(q16[1])), min_code);
    const int8x16_t q1 = vmaxq_s8(vcombine_s8(vqmovn_s16(q16[2]), vqmovn_s16(q16[3])), min_code);
    vst1q_s8(qx + b * kQBlock, q0);
    vst1q_s8(qx + b * kQBlock + 16, q1);
    sx[b] = amax / 127.0f;
    qsum[b] = vaddlvq_s8(q0) + vaddlvq_s8(q1);
  }
}

void famq_q4w_f32_gemm__neon(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                             size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<true>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

void famq_q8w_f32_gemm__neon(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                             size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<false>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

}  // namespace famq
