// AArch64 Advanced SIMD attention kernels (kernels/attention.h). Built with
// -ffp-contract=off (GCC's vmulq/vaddq are plain vector operators it could
// otherwise fuse into fmla): they return the reference's bits exactly (two
// 4-lane accumulators = the specification's s[0..3] and s[4..7]).
#include <arm_neon.h>

#include <algorithm>

#include "kernels/attention.h"
#include "model/dtype.h"

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

// The specification's reduction of s[0..3] (lo) and s[4..7] (hi).
inline float Reduce8(float32x4_t lo, float32x4_t hi) {
  const float32x4_t t = vaddq_f32(lo, hi);                          // s[l] + s[l + 4]
  const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));  // t[l] + t[l + 2]
  return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

template <typename T>
float Dot8(const float* q, const T* k, size_t hd) {
  float32x4_t lo = vdupq_n_f32(0.0f), hi = lo;
  for (size_t d = 0; d < hd; d += 8) {
    const F8 kk = Load8(k + d);
    lo = vaddq_f32(lo, vmulq_f32(vld1q_f32(q + d), kk.lo));
    hi = vaddq_f32(hi, vmulq_f32(vld1q_f32(q + d + 4), kk.hi));
  }
  return Reduce8(lo, hi);
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

// ---------------------------------- blocks ----------------------------------
// Cache rows [0, n) (stride elements apart) as fp32 rows of hd: the block's
// one conversion of each key and value (exact for every type; int8 stays a code).
template <typename T>
void ConvertTile(const T* src, size_t stride, size_t n, size_t hd, float* dst) {
  for (size_t j = 0; j < n; ++j, src += stride, dst += hd) {
    for (size_t d = 0; d < hd; d += 8) {
      const F8 x = Load8(src + d);
      vst1q_f32(dst + d, x.lo);
      vst1q_f32(dst + d + 4, x.hi);
    }
  }
}

// dots[a][b] = the specification's dot(q[a], k_b), k_b = k + b * hd (fp32):
// NQ x NK independent chains of two 4-lane halves.
template <size_t NQ, size_t NK>
inline void Dots(const float* const* q, const float* k, size_t hd, float (*dots)[NK]) {
  float32x4_t lo[NQ][NK], hi[NQ][NK];
  for (size_t a = 0; a < NQ; ++a) {
    for (size_t b = 0; b < NK; ++b) lo[a][b] = hi[a][b] = vdupq_n_f32(0.0f);
  }
  for (size_t d = 0; d < hd; d += 8) {
    F8 kk[NK];
    for (size_t b = 0; b < NK; ++b) kk[b] = Load8(k + b * hd + d);
    for (size_t a = 0; a < NQ; ++a) {
      const F8 qa = Load8(q[a] + d);
      for (size_t b = 0; b < NK; ++b) {
        lo[a][b] = vaddq_f32(lo[a][b], vmulq_f32(qa.lo, kk[b].lo));
        hi[a][b] = vaddq_f32(hi[a][b], vmulq_f32(qa.hi, kk[b].hi));
      }
    }
  }
  for (size_t a = 0; a < NQ; ++a) {
    for (size_t b = 0; b < NK; ++b) dots[a][b] = Reduce8(lo[a][b], hi[a][b]);
  }
}

// The two parity chains of out (a: even j, b: odd j) over a value tile's
// rows [0, lim) (fp32, hd apart; the tile starts at an even position) with
// weights w[0, lim); a and b persist across tiles in memory.
inline void AccumulateTile(const float* w, const float* tile, size_t lim, size_t hd, float* a, float* b) {
  size_t d0 = 0;
  for (; d0 + 16 <= hd; d0 += 16) {
    float32x4_t a0 = vld1q_f32(a + d0), a1 = vld1q_f32(a + d0 + 4), a2 = vld1q_f32(a + d0 + 8),
                a3 = vld1q_f32(a + d0 + 12);
    float32x4_t b0 = vld1q_f32(b + d0), b1 = vld1q_f32(b + d0 + 4), b2 = vld1q_f32(b + d0 + 8),
                b3 = vld1q_f32(b + d0 + 12);
    const float* vj = tile + d0;
    size_t j = 0;
    for (; j + 2 <= lim; j += 2, vj += 2 * hd) {
      const float32x4_t w0 = vdupq_n_f32(w[j]);
      a0 = vaddq_f32(a0, vmulq_f32(w0, vld1q_f32(vj)));
      a1 = vaddq_f32(a1, vmulq_f32(w0, vld1q_f32(vj + 4)));
      a2 = vaddq_f32(a2, vmulq_f32(w0, vld1q_f32(vj + 8)));
      a3 = vaddq_f32(a3, vmulq_f32(w0, vld1q_f32(vj + 12)));
      const float32x4_t w1 = vdupq_n_f32(w[j + 1]);
      const float* vk = vj + hd;
      b0 = vaddq_f32(b0, vmulq_f32(w1, vld1q_f32(vk)));
      b1 = vaddq_f32(b1, vmulq_f32(w1, vld1q_f32(vk + 4)));
      b2 = vaddq_f32(b2, vmulq_f32(w1, vld1q_f32(vk + 8)));
      b3 = vaddq_f32(b3, vmulq_f32(w1, vld1q_f32(vk + 12)));
    }
    if (j < lim) {
      const float32x4_t w0 = vdupq_n_f32(w[j]);
      a0 = vaddq_f32(a0, vmulq_f32(w0, vld1q_f32(vj)));
      a1 = vaddq_f32(a1, vmulq_f32(w0, vld1q_f32(vj + 4)));
      a2 = vaddq_f32(a2, vmulq_f32(w0, vld1q_f32(vj + 8)));
      a3 = vaddq_f32(a3, vmulq_f32(w0, vld1q_f32(vj + 12)));
    }
    vst1q_f32(a + d0, a0);
    vst1q_f32(a + d0 + 4, a1);
    vst1q_f32(a + d0 + 8, a2);
    vst1q_f32(a + d0 + 12, a3);
    vst1q_f32(b + d0, b0);
    vst1q_f32(b + d0 + 4, b1);
    vst1q_f32(b + d0 + 8, b2);
    vst1q_f32(b + d0 + 12, b3);
  }
  for (; d0 < hd; d0 += 4) {
    float32x4_t a0 = vld1q_f32(a + d0), b0 = vld1q_f32(b + d0);
    const float* vj = tile + d0;
    size_t j = 0;
    for (; j + 2 <= lim; j += 2, vj += 2 * hd) {
      a0 = vaddq_f32(a0, vmulq_f32(vdupq_n_f32(w[j]), vld1q_f32(vj)));
      b0 = vaddq_f32(b0, vmulq_f32(vdupq_n_f32(w[j + 1]), vld1q_f32(vj + hd)));
    }
    if (j < lim) a0 = vaddq_f32(a0, vmulq_f32(vdupq_n_f32(w[j]), vld1q_f32(vj)));
    vst1q_f32(a + d0, a0);
    vst1q_f32(b + d0, b0);
  }
}

template <typename T, bool kScaled>
void AttendBlockT(const AttendBlock* blk, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  const size_t group = blk->group, nq = blk->rows * group;
  size_t max_len = 0;
  for (size_t r = 0; r < blk->rows; ++r) max_len = std::max(max_len, static_cast<size_t>(blk->pos[r]) + 1);
  float* scores = scratch;                  // [nq][max_len]
  float* tile = scores + nq * max_len;      // [kAttendKeyTile][hd]
  float* acc = tile + kAttendKeyTile * hd;  // [nq][2][hd]
  auto query = [&](size_t i) { return blk->q + (i / group) * blk->q_stride + (i % group) * hd; };
  auto length = [&](size_t i) { return static_cast<size_t>(blk->pos[i / group]) + 1; };
  const T* k = static_cast<const T*>(kv->k);
  const T* v = static_cast<const T*>(kv->v);
  const size_t stride = kv->stride;

  // Scores: 2 queries x 4 keys at a time over each converted key tile. A
  // pair computes the longer query's keys for both; the other's extra scores
  // lie past its length and are never read.
  for (size_t j0 = 0; j0 < max_len; j0 += kAttendKeyTile) {
    const size_t jn = std::min(kAttendKeyTile, max_len - j0);
    ConvertTile(k + j0 * stride, stride, jn, hd, tile);
    auto put = [&](float* row, size_t j, float dot) {
      if constexpr (kScaled) dot = dot * kv->k_scale[(j0 + j) * kv->scale_stride];
      row[j] = dot * scale;
    };
    for (size_t i = 0; i < nq; i += 2) {
      const bool pair = i + 1 < nq;
      const size_t len = pair ? std::max(length(i), length(i + 1)) : length(i);
      if (len <= j0) continue;
      const size_t lim = std::min(jn, len - j0);
      const float* qs[2] = {query(i), query(pair ? i + 1 : i)};
      float* s0 = scores + i * max_len + j0;
      float* s1 = scores + (pair ? i + 1 : i) * max_len + j0;
      size_t j = 0;
      if (pair) {
        for (; j + 4 <= lim; j += 4) {
          float dots[2][4];
          Dots<2, 4>(qs, tile + j * hd, hd, dots);
          for (size_t c = 0; c < 4; ++c) {
            put(s0, j + c, dots[0][c]);
            put(s1, j + c, dots[1][c]);
          }
        }
        for (; j < lim; ++j) {
          float dots[2][1];
          Dots<2, 1>(qs, tile + j * hd, hd, dots);
          put(s0, j, dots[0][0]);
          put(s1, j, dots[1][0]);
        }
      } else {
        for (; j + 4 <= lim; j += 4) {
          float dots[1][4];
          Dots<1, 4>(qs, tile + j * hd, hd, dots);
          for (size_t c = 0; c < 4; ++c) put(s0, j + c, dots[0][c]);
        }
        for (; j < lim; ++j) {
          float dots[1][1];
          Dots<1, 1>(qs, tile + j * hd, hd, dots);
          put(s0, j, dots[0][0]);
        }
      }
    }
  }
  for (size_t i = 0; i < nq; ++i) {
    float* s = scores + i * max_len;
    const size_t len = length(i);
    AttentionSoftmax(s, len);
    if constexpr (kScaled) {
      for (size_t j = 0; j < len; ++j) s[j] = s[j] * kv->v_scale[j * kv->scale_stride];
    }
  }

  // out: each converted value tile once for every query of the block.
  std::fill(acc, acc + 2 * nq * hd, 0.0f);
  for (size_t j0 = 0; j0 < max_len; j0 += kAttendKeyTile) {
    const size_t jn = std::min(kAttendKeyTile, max_len - j0);
    ConvertTile(v + j0 * stride, stride, jn, hd, tile);
    for (size_t i = 0; i < nq; ++i) {
      const size_t len = length(i);
      if (len <= j0) continue;
      float* a = acc + 2 * i * hd;
      AccumulateTile(scores + i * max_len + j0, tile, std::min(jn, len - j0), hd, a, a + hd);
    }
  }
  for (size_t i = 0; i < nq; ++i) {
    const float* a = acc + 2 * i * hd;
    float* out = blk->out + (i / group) * blk->out_stride + (i % group) * hd;
    for (size_t d = 0; d < hd; d += 4) vst1q_f32(out + d, vaddq_f32(vld1q_f32(a + d), vld1q_f32(a + hd + d)));
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

void famq_attend_block_f32__neon(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<float, false>(b, kv, hd, scale, scratch);
}
void famq_attend_block_f16__neon(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<uint16_t, false>(b, kv, hd, scale, scratch);
}
void famq_attend_block_i8__neon(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<int8_t, true>(b, kv, hd, scale, scratch);
}

// fcvtn with the FPCR's defaults (round to nearest even, IEEE half, NaNs
// propagated quiet with their top payload bits) is F32ToF16 bit for bit.
void famq_f32_to_f16__neon(const float* x, size_t n, uint16_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
    vst1q_u16(out + i, vreinterpretq_u16_f16(h));
  }
  for (; i < n; ++i) out[i] = F32ToF16(x[i]);
}

}  // namespace famq
