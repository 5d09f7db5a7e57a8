// famq_bf16w_f32_gemm__avx512: as the AVX2 kernel with 16 fp32 lanes and
// masked loads for the tail of a row (AVX-512 F + BW + VL; the kAvx512Vnni
// level has them). Specification: runtime/kernels/bf16gemm.h.
// GCC 12's AVX-512 headers build "undefined" vectors from themselves, which
// its own -W(maybe-)uninitialized then reports (GCC bug 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "kernels/bf16gemm.h"

namespace famq {
namespace {

inline __m512 LoadBf16x16(const uint8_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline __m512 LoadBf16Masked(const uint8_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

template <int T, int R>
inline void Tile(const uint8_t* w, size_t in, size_t r, const float* x, const float* bias, float* y,
                 size_t y_stride) {
  __m512 acc[T][R];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) acc[t][j] = _mm512_setzero_ps();
  }
  const uint8_t* rows[R];
#pragma GCC unroll 4
  for (int j = 0; j < R; ++j) rows[j] = w + (r + static_cast<size_t>(j)) * in * 2;
  size_t k = 0;
  // The rows after these: mapped checkpoint pages are 4 KiB, where the
  // hardware prefetchers stop, so the memory-bound tiles (1-2 tokens) ask for
  // them ahead (a mapped 2048 x 12288 layer at batch 1, one thread: 1.4-1.8x;
  // with more tokens the tile is compute-bound and prefetches only cost).
  const size_t ahead = static_cast<size_t>(R) * in * 2;
  for (; k + 16 <= in; k += 16) {
    if constexpr (T <= 2) {
#pragma GCC unroll 4
      for (int j = 0; j < R; ++j) _mm_prefetch(reinterpret_cast<const char*>(rows[j] + 2 * k + ahead), _MM_HINT_T0);
    }
    __m512 wv[R];
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) wv[j] = LoadBf16x16(rows[j] + 2 * k);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_loadu_ps(x + static_cast<size_t>(t) * in + k);
#pragma GCC unroll 4
      for (int j = 0; j < R; ++j) acc[t][j] = _mm512_fmadd_ps(xv, wv[j], acc[t][j]);
    }
  }
  if (k < in) {
    const __mmask16 m = static_cast<__mmask16>((1u << (in - k)) - 1u);
    __m512 wv[R];
    for (int j = 0; j < R; ++j) wv[j] = LoadBf16Masked(rows[j] + 2 * k, m);
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(t) * in + k);
      for (int j = 0; j < R; ++j) acc[t][j] = _mm512_fmadd_ps(xv, wv[j], acc[t][j]);
    }
  }
  for (int t = 0; t < T; ++t) {
    for (int j = 0; j < R; ++j) {
      const float s = _mm512_reduce_add_ps(acc[t][j]);
      const size_t o = r + static_cast<size_t>(j);
      y[static_cast<size_t>(t) * y_stride + o] = bias != nullptr ? s + bias[o] : s;
    }
  }
}

template <int T, int R>
void Rows(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, const float* bias, float* y,
          size_t y_stride) {
  size_t r = r0;
  for (; r + R <= r1; r += R) Tile<T, R>(w, in, r, x, bias, y, y_stride);
  for (; r < r1; ++r) Tile<T, 1>(w, in, r, x, bias, y, y_stride);
}

}  // namespace

void famq_bf16w_f32_gemm__avx512(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, size_t batch,
                                 const float* bias, float* y, size_t y_stride) {
  size_t t = 0;
  // 4 tokens x 4 rows: 16 accumulators + 4 weight vectors + 1 input vector of 32 zmm.
  for (; t + 4 <= batch; t += 4) Rows<4, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride);
  switch (batch - t) {
    case 3: Rows<3, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 2: Rows<2, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 1: Rows<1, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    default: break;
  }
}

}  // namespace famq
