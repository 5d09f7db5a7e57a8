// Weight-only quantized GEMM/GEMV, AVX2 + FMA. Spec: runtime/kernels/qgemm_ref.cc
// (and the SPECIFICATION in runtime/kernels/qgemm.h).
//
// Packing (kAvx2Kernels in qgemm.cc): 8 rows per tile, so one ymm holds the
// 8 rows x 4 inputs that vpmaddubsw + vpmaddwd reduce to 8 int32 row sums.
//   W4: nibbles u = c + 8 in [0, 15] (vpmaddubsw's unsigned operand). A pair
//       u * qx is at most 2 * 15 * 127, and even 8 vpmaddubsw results (16
//       products, <= 30480) fit int16, so a whole block accumulates in int16.
//   W8: signed c. u8 x s8 with u = c + 128 would saturate int16 pair sums
//       (2 * 255 * 127), so the kernel multiplies |c| (u8, <= 128) by
//       sign(c) * qx (s8, |qx| <= 127): pairs <= 2 * 128 * 127 = 32512.
//
// Compiled with -mavx2 -mfma: includes nothing with inline C++ library code
// (see runtime/kernels/qgemm_pack.h), everything else is internal linkage.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/qgemm.h"

namespace famq {
namespace {

constexpr size_t kTileRows = 8;
// Activation rows sharing each weight load (prefill): 4 int16/int32 and 4 fp32
// accumulators plus the weights fit the 16 ymm registers.
constexpr size_t kRowsPerPass = 4;

// 4 consecutive int8 activations broadcast to every 32-bit lane.
inline __m256i BroadcastQuad(const int8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, sizeof(quad));
  return _mm256_set1_epi32(quad);
}

inline int32_t HorizontalSum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// The per-tile arguments that TileW4/TileW8 share.
struct Tile {
  const uint8_t* codes;    // [blocks][block bytes] of this tile
  const float* scales;     // [groups][8]
  const uint8_t* offsets;  // [groups][8]
  const float* bias;       // [8] or nullptr
  size_t blocks;
  size_t blocks_per_group;
  size_t valid_rows;  // < 8 only in the last tile
};

// Activation row pointers for MR rows starting at m0.
template <size_t MR>
struct Rows {
  const int8_t* qx[MR];
  const float* sx[MR];
  const int32_t* qsum[MR];
};

template <size_t MR>
inline Rows<MR> RowsAt(const QGemmActivations* a, size_t blocks, size_t m0) {
  Rows<MR> rows;
  for (size_t i = 0; i < MR; ++i) {
    rows.qx[i] = a->qx + (m0 + i) * a->qx_stride;
    rows.sx[i] = a->sx + (m0 + i) * blocks;
    rows.qsum[i] = a->qsum + (m0 + i) * blocks;
  }
  return rows;
}

// y[0..valid_rows) of one output row; the tail goes through a stack copy so
// that nothing past the matrix' last column is written.
inline void StoreRow(__m256 v, const float* bias, size_t valid_rows, float* y) {
  if (bias != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(bias));
  if (valid_rows == kTileRows) {
    _mm256_storeu_ps(y, v);
  } else {
    float tmp[kTileRows];
    _mm256_storeu_ps(tmp, v);
    for (size_t r = 0; r < valid_rows; ++r) y[r] = tmp[r];
  }
}

// acc += (scale * sx) * float(t - offset * qsum), 8 rows at once.
inline __m256 Accumulate(__m256 acc, __m256i t, __m256i offset, int32_t qsum, __m256 scale, float sx) {
  t = _mm256_sub_epi32(t, _mm256_mullo_epi32(offset, _mm256_set1_epi32(qsum)));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(scale, _mm256_set1_ps(sx)), acc);
}

template <size_t MR>
void TileW4(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride) {
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
  for (size_t i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  // Group by group: scales and offsets change once per group_size inputs.
  for (size_t g = 0; g < tile.blocks / tile.blocks_per_group; ++g) {
    const __m256i offset =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(tile.offsets + g * kTileRows)));
    const __m256 scale = _mm256_loadu_ps(tile.scales + g * kTileRows);
    for (size_t b = g * tile.blocks_per_group; b < (g + 1) * tile.blocks_per_group; ++b) {
      const uint8_t* w = tile.codes + b * (kTileRows * kQBlock / 2);
      __m256i dot16[MR];
      for (size_t i = 0; i < MR; ++i) dot16[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (size_t p = 0; p < 4; ++p) {
        const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + p * 32));
        const __m256i lo = _mm256_and_si256(packed, low_nibbles);                        // quad 2p
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);  // quad 2p+1
        for (size_t i = 0; i < MR; ++i) {
          const int8_t* q = rows.qx[i] + b * kQBlock + p * 8;
          dot16[i] = _mm256_add_epi16(dot16[i], _mm256_maddubs_epi16(lo, BroadcastQuad(q)));
          dot16[i] = _mm256_add_epi16(dot16[i], _mm256_maddubs_epi16(hi, BroadcastQuad(q + 4)));
        }
      }
      for (size_t i = 0; i < MR; ++i) {
        acc[i] = Accumulate(acc[i], _mm256_madd_epi16(dot16[i], ones), offset, rows.qsum[i][b], scale, rows.sx[i][b]);
      }
    }
  }
  for (size_t i = 0; i < MR; ++i) StoreRow(acc[i], tile.bias, tile.valid_rows, y + i * y_stride);
}

template <size_t MR>
void TileW8(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MR];
  for (size_t i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
  // Group by group: scales and offsets change once per group_size inputs.
  for (size_t g = 0; g < tile.blocks / tile.blocks_per_group; ++g) {
    const __m256i offset =
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(tile.offsets + g * kTileRows)));
    const __m256 scale = _mm256_loadu_ps(tile.scales + g * kTileRows);
    for (size_t b = g * tile.blocks_per_group; b < (g + 1) * tile.blocks_per_group; ++b) {
      const uint8_t* w = tile.codes + b * (kTileRows * kQBlock);
      __m256i dot[MR];
      for (size_t i = 0; i < MR; ++i) dot[i] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (size_t q = 0; q < 8; ++q) {
        const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 32));
        const __m256i magnitudes = _mm256_abs_epi8(codes);  // -128 -> 0x80, read as u8 128
        for (size_t i = 0; i < MR; ++i) {
          const __m256i signed_x = _mm256_sign_epi8(BroadcastQuad(rows.qx[i] + b * kQBlock + q * 4), codes);
          dot[i] = _mm256_add_epi32(dot[i], _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, signed_x), ones));
        }
      }
      for (size_t i = 0; i < MR; ++i) {
        acc[i] = Accumulate(acc[i], dot[i], offset, rows.qsum[i][b], scale, rows.sx[i][b]);
      }
    }
  }
  for (size_t i = 0; i < MR; ++i) StoreRow(acc[i], tile.bias, tile.valid_rows, y + i * y_stride);
}

template <size_t MR, bool kW4>
void RunTile(const Tile& tile, const QGemmActivations* a, size_t m0, float* y, size_t y_stride) {
  const Rows<MR> rows = RowsAt<MR>(a, tile.blocks, m0);
  if constexpr (kW4) {
    TileW4<MR>(tile, rows, y + m0 * y_stride, y_stride);
  } else {
    TileW8<MR>(tile, rows, y + m0 * y_stride, y_stride);
  }
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
    float* y_tile = y + row0;
    size_t m0 = 0;
    for (; m0 + kRowsPerPass <= m; m0 += kRowsPerPass) RunTile<kRowsPerPass, kW4>(tile, a, m0, y_tile, y_stride);
    switch (m - m0) {
      case 3: RunTile<3, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 2: RunTile<2, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 1: RunTile<1, kW4>(tile, a, m0, y_tile, y_stride); break;
      default: break;
    }
  }
}

}  // namespace

void famq_qd8_f32_quantize__avx2(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  // packs_epi32/packs_epi16 interleave 128-bit lanes; this restores order.
  const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i min_code = _mm256_set1_epi8(-127);
  const __m256i ones_u8 = _mm256_set1_epi8(1);
  const __m256i ones_i16 = _mm256_set1_epi16(1);
  for (size_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    const __m256 v0 = _mm256_loadu_ps(xb);
    const __m256 v1 = _mm256_loadu_ps(xb + 8);
    const __m256 v2 = _mm256_loadu_ps(xb + 16);
    const __m256 v3 = _mm256_loadu_ps(xb + 24);
    const __m256 m01 = _mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask));
    const __m256 m23 = _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask));
    const __m256 m8 = _mm256_max_ps(m01, m23);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (!(amax >= kQMinBlockAmax)) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + b * kQBlock), _mm256_setzero_si256());
      sx[b] = 0.0f;
      qsum[b] = 0;
      continue;
    }
    const __m256 inv = _mm256_set1_ps(127.0f / amax);
    // cvtps rounds per MXCSR: to nearest, ties to even, as the reference's rint.
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
    __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    q = _mm256_max_epi8(_mm256_permutevar8x32_epi32(q, unshuffle), min_code);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + b * kQBlock), q);
    sx[b] = amax / 127.0f;
    qsum[b] = HorizontalSum(_mm256_madd_epi16(_mm256_maddubs_epi16(ones_u8, q), ones_i16));
  }
}

void famq_q4w_f32_gemm__avx2(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                             size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<true>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

void famq_q8w_f32_gemm__avx2(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                             size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<false>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

}  // namespace famq
