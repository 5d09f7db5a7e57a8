// famq_bf16w_f32_gemm__avx2: BF16 weights read in place, fp32 activations,
// 8 fp32 lanes with FMA (the specification is in runtime/kernels/bf16gemm.h).
// Each tile computes T tokens x R weight rows at once, so a converted weight
// vector serves T tokens (prefill, scoring) and R rows keep R * T
// independent accumulator chains.
#include <immintrin.h>

#include <cstring>

#include "kernels/bf16gemm.h"

namespace famq {
namespace {

inline __m256 LoadBf16x8(const uint8_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float Bf16At(const uint8_t* row, size_t k) {
  uint16_t h;
  std::memcpy(&h, row + 2 * k, sizeof h);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Tokens [0, T) of x (row stride in) x weight rows [r, r + R).
template <int T, int R>
inline void Tile(const uint8_t* w, size_t in, size_t r, const float* x, const float* bias, float* y,
                 size_t y_stride) {
  __m256 acc[T][R];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) acc[t][j] = _mm256_setzero_ps();
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
  for (; k + 8 <= in; k += 8) {
    if constexpr (T <= 2) {
#pragma GCC unroll 4
      for (int j = 0; j < R; ++j) _mm_prefetch(reinterpret_cast<const char*>(rows[j] + 2 * k + ahead), _MM_HINT_T0);
    }
    __m256 wv[R];
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) wv[j] = LoadBf16x8(rows[j] + 2 * k);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + static_cast<size_t>(t) * in + k);
#pragma GCC unroll 4
      for (int j = 0; j < R; ++j) acc[t][j] = _mm256_fmadd_ps(xv, wv[j], acc[t][j]);
    }
  }
  for (int t = 0; t < T; ++t) {
    const float* xt = x + static_cast<size_t>(t) * in;
    for (int j = 0; j < R; ++j) {
      float s = HorizontalSum(acc[t][j]);
      for (size_t kk = k; kk < in; ++kk) s += xt[kk] * Bf16At(rows[j], kk);
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

void famq_bf16w_f32_gemm__avx2(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, size_t batch,
                               const float* bias, float* y, size_t y_stride) {
  size_t t = 0;
  // 4 tokens x 2 rows: 8 accumulators + 2 weight vectors + 1 input vector of 16 ymm.
  for (; t + 4 <= batch; t += 4) Rows<4, 2>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride);
  switch (batch - t) {
    case 3: Rows<3, 2>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 2: Rows<2, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 1: Rows<1, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    default: break;
  }
}

}  // namespace famq
