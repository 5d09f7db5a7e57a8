// famq_bf16w_f32_gemm__neon: BF16 weights read in place (8 at a time, widened
// by a 16-bit shift, ushll), fp32 activations, 4 fp32 lanes with fmla.
// Specification: runtime/kernels/bf16gemm.h.
#include <arm_neon.h>

#include <cstring>

#include "kernels/bf16gemm.h"

namespace famq {
namespace {

inline float Bf16At(const uint8_t* row, size_t k) {
  uint16_t h;
  std::memcpy(&h, row + 2 * k, sizeof h);
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <int T, int R>
inline void Tile(const uint8_t* w, size_t in, size_t r, const float* x, const float* bias, float* y,
                 size_t y_stride) {
  float32x4_t acc[T][R];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) acc[t][j] = vdupq_n_f32(0.0f);
  }
  const uint8_t* rows[R];
#pragma GCC unroll 4
  for (int j = 0; j < R; ++j) rows[j] = w + (r + static_cast<size_t>(j)) * in * 2;
  size_t k = 0;
  for (; k + 8 <= in; k += 8) {
    float32x4_t lo[R], hi[R];
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) {
      // Bytes, not uint16_t: the mapped tensor may sit at an odd address.
      const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(rows[j] + 2 * k));
      lo[j] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
      hi[j] = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const float* xt = x + static_cast<size_t>(t) * in + k;
      const float32x4_t x0 = vld1q_f32(xt), x1 = vld1q_f32(xt + 4);
#pragma GCC unroll 4
      for (int j = 0; j < R; ++j) acc[t][j] = vfmaq_f32(vfmaq_f32(acc[t][j], x0, lo[j]), x1, hi[j]);
    }
  }
  for (int t = 0; t < T; ++t) {
    const float* xt = x + static_cast<size_t>(t) * in;
    for (int j = 0; j < R; ++j) {
      float s = vaddvq_f32(acc[t][j]);
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

void famq_bf16w_f32_gemm__neon(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, size_t batch,
                               const float* bias, float* y, size_t y_stride) {
  size_t t = 0;
  // 4 tokens x 4 rows: 16 accumulators + 8 weight + 2 input vectors of 32.
  for (; t + 4 <= batch; t += 4) Rows<4, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride);
  switch (batch - t) {
    case 3: Rows<3, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 2: Rows<2, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    case 1: Rows<1, 4>(w, in, r0, r1, x + t * in, bias, y + t * y_stride, y_stride); break;
    default: break;
  }
}

}  // namespace famq
