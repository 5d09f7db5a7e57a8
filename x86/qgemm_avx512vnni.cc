// Weight-only quantized GEMM/GEMV, AVX-512 F/BW/VL + VNNI. Spec:
// runtime/kernels/qgemm_ref.cc (and the SPECIFICATION in runtime/kernels/qgemm.h).
//
// Packing (kAvx512VnniKernels in qgemm.cc): 16 rows per tile, so one zmm holds
// the 16 rows x 4 inputs that one vpdpbusd adds to 16 int32 row sums against
// a broadcast activation quad. vpdpbusd is u8 x s8 without saturation, so
// weights are stored biased to unsigned (W4: nibbles u = c + 8, W8: u = c + 128)
// and the bias goes back with the zero point: offset = z + bias, and
// t = sum u * qx - offset * qsum is exactly the reference's dot - z * qsum.
//
// Compiled with -mavx512f/bw/vl/vnni: includes nothing with inline C++ library
// code (see runtime/kernels/qgemm_pack.h), everything else is internal linkage.
// GCC 12's AVX-512 headers build "undefined" vectors from themselves, which
// its own -Wmaybe-uninitialized then reports (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/qgemm.h"

namespace famq {
namespace {

constexpr size_t kTileRows = 16;
// Activation rows sharing each weight load (prefill). Rows are processed one
// after the other on the unpacked block held in registers: 8 weight vectors,
// 8 fp32 accumulators and the temporaries fit the 32 zmm registers.
constexpr size_t kRowsPerPass = 8;

inline __m512i BroadcastQuad(const int8_t* p) {
  int32_t quad;
  std::memcpy(&quad, p, sizeof(quad));
  return _mm512_set1_epi32(quad);
}

struct Tile {
  const uint8_t* codes;    // [blocks][block bytes] of this tile
  const float* scales;     // [groups][16]
  const uint8_t* offsets;  // [groups][16], unsigned
  const float* bias;       // [16] or nullptr
  size_t blocks;
  size_t blocks_per_group;
  __mmask16 store_mask;  // valid rows of this tile
};

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

// acc += (scale * sx) * float(t - offset * qsum), 16 rows at once.
inline __m512 Accumulate(__m512 acc, __m512i t, __m512i offset, int32_t qsum, __m512 scale, float sx) {
  t = _mm512_sub_epi32(t, _mm512_mullo_epi32(offset, _mm512_set1_epi32(qsum)));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(scale, _mm512_set1_ps(sx)), acc);
}

template <size_t MR>
inline void StoreRows(const Tile& tile, const __m512 (&acc)[MR], float* y, size_t y_stride) {
  const __m512 bias = tile.bias != nullptr ? _mm512_loadu_ps(tile.bias) : _mm512_setzero_ps();
  for (size_t i = 0; i < MR; ++i) _mm512_mask_storeu_ps(y + i * y_stride, tile.store_mask, _mm512_add_ps(acc[i], bias));
}

// One block's 8 activation quads against its 8 weight vectors (quad q in
// w[q]): two dependency chains of 4 vpdpbusd each, over the even and the odd
// quads. With 4-bit weights the odd quads are the high nibbles left in place
// (16 u): their chain holds exactly 16 times its sum, which an arithmetic
// shift divides back, one shift per block instead of one per vector.
template <bool kW4>
inline __m512i BlockDot(const __m512i (&w)[8], const int8_t* q) {
  __m512i even = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], BroadcastQuad(q));
  __m512i odd = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[1], BroadcastQuad(q + 4));
  even = _mm512_dpbusd_epi32(even, w[2], BroadcastQuad(q + 8));
  odd = _mm512_dpbusd_epi32(odd, w[3], BroadcastQuad(q + 12));
  even = _mm512_dpbusd_epi32(even, w[4], BroadcastQuad(q + 16));
  odd = _mm512_dpbusd_epi32(odd, w[5], BroadcastQuad(q + 20));
  even = _mm512_dpbusd_epi32(even, w[6], BroadcastQuad(q + 24));
  odd = _mm512_dpbusd_epi32(odd, w[7], BroadcastQuad(q + 28));
  // |16 u * qx| sums: 16 products of at most 240 * 127 per lane, far from 2^31.
  if constexpr (kW4) odd = _mm512_srai_epi32(odd, 4);
  return _mm512_add_epi32(even, odd);
}

template <size_t MR, bool kW4>
void RunTile(const Tile& tile, const Rows<MR>& rows, float* y, size_t y_stride) {
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  const __m512i high_nibbles = _mm512_set1_epi8(static_cast<char>(0xF0));
  __m512 acc[MR];
  for (size_t i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  // Group by group: scales and offsets change once per group_size inputs.
  for (size_t g = 0; g < tile.blocks / tile.blocks_per_group; ++g) {
    const __m512i offset =
        _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile.offsets + g * kTileRows)));
    const __m512 scale = _mm512_loadu_ps(tile.scales + g * kTileRows);
    for (size_t b = g * tile.blocks_per_group; b < (g + 1) * tile.blocks_per_group; ++b) {
      __m512i w[8];  // w[q]: 16 rows x inputs 4q..4q+3 of this block, as u8 (W4 odd q: 16 u)
      if constexpr (kW4) {
        const uint8_t* packed = tile.codes + b * (kTileRows * kQBlock / 2);
        for (size_t p = 0; p < 4; ++p) {
          const __m512i v = _mm512_loadu_si512(packed + p * 64);
          w[2 * p] = _mm512_and_si512(v, low_nibbles);
          w[2 * p + 1] = _mm512_and_si512(v, high_nibbles);  // 16 u of quad 2p+1
        }
      } else {
        const uint8_t* codes = tile.codes + b * (kTileRows * kQBlock);
        for (size_t q = 0; q < 8; ++q) w[q] = _mm512_loadu_si512(codes + q * 64);
      }
      for (size_t i = 0; i < MR; ++i) {
        const __m512i t = BlockDot<kW4>(w, rows.qx[i] + b * kQBlock);
        acc[i] = Accumulate(acc[i], t, offset, rows.qsum[i][b], scale, rows.sx[i][b]);
      }
    }
  }
  StoreRows<MR>(tile, acc, y, y_stride);
}

template <size_t MR, bool kW4>
inline void RunRows(const Tile& tile, const QGemmActivations* a, size_t m0, float* y, size_t y_stride) {
  RunTile<MR, kW4>(tile, RowsAt<MR>(a, tile.blocks, m0), y + m0 * y_stride, y_stride);
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
                    static_cast<__mmask16>(left < kTileRows ? (1u << left) - 1u : 0xFFFFu)};
    float* y_tile = y + row0;
    size_t m0 = 0;
    for (; m0 + kRowsPerPass <= m; m0 += kRowsPerPass) RunRows<kRowsPerPass, kW4>(tile, a, m0, y_tile, y_stride);
    switch (m - m0) {
      case 7: RunRows<7, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 6: RunRows<6, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 5: RunRows<5, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 4: RunRows<4, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 3: RunRows<3, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 2: RunRows<2, kW4>(tile, a, m0, y_tile, y_stride); break;
      case 1: RunRows<1, kW4>(tile, a, m0, y_tile, y_stride); break;
      default: break;
    }
  }
}

}  // namespace

void famq_qd8_f32_quantize__avx512vnni(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum) {
  const __m256i min_code = _mm256_set1_epi8(-127);
  for (size_t b = 0; b < k / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    const __m512 v0 = _mm512_loadu_ps(xb);
    const __m512 v1 = _mm512_loadu_ps(xb + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    if (!(amax >= kQMinBlockAmax)) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + b * kQBlock), _mm256_setzero_si256());
      sx[b] = 0.0f;
      qsum[b] = 0;
      continue;
    }
    const __m512 inv = _mm512_set1_ps(127.0f / amax);
    // cvtps rounds per MXCSR: to nearest, ties to even, as the reference's rint;
    // vpmovsdb saturates, the max keeps -128 (only reachable from NaN) out.
    const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, inv)));
    const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, inv)));
    const __m256i q = _mm256_max_epi8(_mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1), min_code);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qx + b * kQBlock), q);
    sx[b] = amax / 127.0f;
    const __m512i widened = _mm512_add_epi32(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)),
                                             _mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)));
    qsum[b] = _mm512_reduce_add_epi32(widened);
  }
}

void famq_q4w_f32_gemm__avx512vnni(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                                   size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<true>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

void famq_q8w_f32_gemm__avx512vnni(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin,
                                   size_t tile_end, const float* bias, float* y, size_t y_stride) {
  Gemm<false>(w, a, m, tile_begin, tile_end, bias, y, y_stride);
}

}  // namespace famq
