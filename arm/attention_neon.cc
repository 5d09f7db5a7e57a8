// AArch64 Advanced SIMD attention kernels (kernels/attention.h). Built with
// -ffp-contract=off (GCC's vmulq/vaddq are plain vector operators it could
// otherwise fuse into fmla): they return the reference's bits exactly (two
// 4-lane accumulators = the specification's s[0..3] and s[4..7]).
#include <arm_neon.h>

#include "kernels/attention.h"

namespace famq {
namespace {

struct F8 {
  float32x4_t lo, hi;
};
inline F8 Load8(const float* p) { return {vld1q_f32(p), vld1q_f32(p + 4)}; }
inline F8 Load8(const uint16_t* p) {
  const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p));
  return {vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
}
inline F8 Load8(const int8_t* p) {
  const int16x8_t w = vmovl_s8(vld1_s8(p));
  return {vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), vcvtq_f32_s32(vmovl_high_s16(w))};
}

template <typename T>
float Dot8(const float* q, const T* k, size_t hd) {
  float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
  for (size_t d = 0; d < hd; d += 8) {
    const F8 kk = Load8(k + d);
    lo = vaddq_f32(lo, vmulq_f32(vld1q_f32(q + d), kk.lo));
    hi = vaddq_f32(hi, vmulq_f32(vld1q_f32(q + d + 4), kk.hi));
  }
  const float32x4_t t = vaddq_f32(lo, hi);                          // s[l] + s[l + 4]
  const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));  // t[l] + t[l + 2]
  return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

template <typename T, bool kScaled>
void Attend(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores, float* out) {
  const T* k = static_cast<const T*>(kv->k);
  const T* v = static_cast<const T*>(kv->v);
  const size_t stride = kv->stride;
  for (size_t j = 0; j < len; ++j) {
    float dot = Dot8(q, k + j * stride, hd);
    if constexpr (kScaled) dot = dot * kv->k_scale[j * kv->scale_stride];
    scores[j] = dot * scale;
  }
  AttentionSoftmax(scores, len);
  if constexpr (kScaled) {
    for (size_t j = 0; j < len; ++j) scores[j] = scores[j] * kv->v_scale[j * kv->scale_stride];
  }
  // out[d]: one lane per d, two chains by the parity of j (even: a, odd: b).
  size_t d0 = 0;
  for (; d0 + 16 <= hd; d0 += 16) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const T* vj = v + d0;
    size_t j = 0;
    for (; j + 2 <= len; j += 2, vj += 2 * stride) {
      const float32x4_t w = vdupq_n_f32(scores[j]);
      const F8 x0 = Load8(vj), x1 = Load8(vj + 8);
      a0 = vaddq_f32(a0, vmulq_f32(w, x0.lo));
      a1 = vaddq_f32(a1, vmulq_f32(w, x0.hi));
      a2 = vaddq_f32(a2, vmulq_f32(w, x1.lo));
      a3 = vaddq_f32(a3, vmulq_f32(w, x1.hi));
      const float32x4_t w1 = vdupq_n_f32(scores[j + 1]);
      const F8 y0 = Load8(vj + stride), y1 = Load8(vj + stride + 8);
      b0 = vaddq_f32(b0, vmulq_f32(w1, y0.lo));
      b1 = vaddq_f32(b1, vmulq_f32(w1, y0.hi));
      b2 = vaddq_f32(b2, vmulq_f32(w1, y1.lo));
      b3 = vaddq_f32(b3, vmulq_f32(w1, y1.hi));
    }
    if (j < len) {
      const float32x4_t w = vdupq_n_f32(scores[j]);
      const F8 x0 = Load8(vj), x1 = Load8(vj + 8);
      a0 = vaddq_f32(a0, vmulq_f32(w, x0.lo));
      a1 = vaddq_f32(a1, vmulq_f32(w, x0.hi));
      a2 = vaddq_f32(a2, vmulq_f32(w, x1.lo));
      a3 = vaddq_f32(a3, vmulq_f32(w, x1.hi));
    }
    vst1q_f32(out + d0, vaddq_f32(a0, b0));
    vst1q_f32(out + d0 + 4, vaddq_f32(a1, b1));
    vst1q_f32(out + d0 + 8, vaddq_f32(a2, b2));
    vst1q_f32(out + d0 + 12, vaddq_f32(a3, b3));
  }
  for (; d0 < hd; d0 += 8) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, b0 = a0, b1 = a0;
    const T* vj = v + d0;
    size_t j = 0;
    for (; j + 2 <= len; j += 2, vj += 2 * stride) {
      const float32x4_t w = vdupq_n_f32(scores[j]), w1 = vdupq_n_f32(scores[j + 1]);
      const F8 x = Load8(vj), y = Load8(vj + stride);
      a0 = vaddq_f32(a0, vmulq_f32(w, x.lo));
      a1 = vaddq_f32(a1, vmulq_f32(w, x.hi));
      b0 = vaddq_f32(b0, vmulq_f32(w1, y.lo));
      b1 = vaddq_f32(b1, vmulq_f32(w1, y.hi));
    }
    if (j < len) {
      const float32x4_t w = vdupq_n_f32(scores[j]);
      const F8 x = Load8(vj);
      a0 = vaddq_f32(a0, vmulq_f32(w, x.lo));
      a1 = vaddq_f32(a1, vmulq_f32(w, x.hi));
    }
    vst1q_f32(out + d0, vaddq_f32(a0, b0));
    vst1q_f32(out + d0 + 4, vaddq_f32(a1, b1));
  }
}

}  // namespace

void famq_attend_f32__neon(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                           float* out) {
  Attend<float, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_f16__neon(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                           float* out) {
  Attend<uint16_t, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_i8__neon(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                          float* out) {
  Attend<int8_t, true>(q, kv, hd, len, scale, scores, out);
}

}  // namespace famq
