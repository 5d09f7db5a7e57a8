// AVX2 + F16C attention kernels (kernels/attention.h). Built with
// -mavx2 -mf16c -ffp-contract=off and no -mfma: the specification rounds
// every product before adding it, and these kernels return the reference's
// bits exactly (8 lanes = the specification's s[0..7], reduced in its order).
#include <immintrin.h>

#include <algorithm>

#include "kernels/attention.h"
#include "model/dtype.h"

namespace famq {
namespace {

inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 Load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// The specification's reduction of the 8 lanes s[0..7].
inline float Reduce8(__m256 acc) {
  const __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // s[l] + s[l + 4]
  const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));                                       // t[l] + t[l + 2]
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));                              // u[0] + u[1]
}

template <typename T>
float Dot8(const float* q, const T* k, size_t hd) {
  __m256 acc = _mm256_setzero_ps();
  for (size_t d = 0; d < hd; d += 8) acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + d), Load8(k + d)));
  return Reduce8(acc);
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
  for (; d0 + 32 <= hd; d0 += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const T* vj = v + d0;
    size_t j = 0;
    for (; j + 2 <= len; j += 2, vj += 2 * stride) {
      const __m256 w = _mm256_set1_ps(scores[j]);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(w, Load8(vj)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(w, Load8(vj + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(w, Load8(vj + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(w, Load8(vj + 24)));
      const __m256 w1 = _mm256_set1_ps(scores[j + 1]);
      const T* vk = vj + stride;
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(w1, Load8(vk)));
      b1 = _mm256_add_ps(b1, _mm256_mul_ps(w1, Load8(vk + 8)));
      b2 = _mm256_add_ps(b2, _mm256_mul_ps(w1, Load8(vk + 16)));
      b3 = _mm256_add_ps(b3, _mm256_mul_ps(w1, Load8(vk + 24)));
    }
    if (j < len) {
      const __m256 w = _mm256_set1_ps(scores[j]);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(w, Load8(vj)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(w, Load8(vj + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(w, Load8(vj + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(w, Load8(vj + 24)));
    }
    _mm256_storeu_ps(out + d0, _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(out + d0 + 8, _mm256_add_ps(a1, b1));
    _mm256_storeu_ps(out + d0 + 16, _mm256_add_ps(a2, b2));
    _mm256_storeu_ps(out + d0 + 24, _mm256_add_ps(a3, b3));
  }
  for (; d0 < hd; d0 += 8) {
    __m256 a = _mm256_setzero_ps(), b = a;
    const T* vj = v + d0;
    size_t j = 0;
    for (; j + 2 <= len; j += 2, vj += 2 * stride) {
      a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(scores[j]), Load8(vj)));
      b = _mm256_add_ps(b, _mm256_mul_ps(_mm256_set1_ps(scores[j + 1]), Load8(vj + stride)));
    }
    if (j < len) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(scores[j]), Load8(vj)));
    _mm256_storeu_ps(out + d0, _mm256_add_ps(a, b));
  }
}

// ---------------------------------- blocks ----------------------------------
// Cache rows [0, n) (stride elements apart) as fp32 rows of hd: the block's
// one conversion of each key and value (exact for every type; int8 stays a code).
template <typename T>
void ConvertTile(const T* src, size_t stride, size_t n, size_t hd, float* dst) {
  for (size_t j = 0; j < n; ++j, src += stride, dst += hd) {
    for (size_t d = 0; d < hd; d += 8) _mm256_storeu_ps(dst + d, Load8(src + d));
  }
}

// dots[a][b] = the specification's dot(q[a], k_b), k_b = k + b * hd (fp32):
// NQ x NK independent 8-lane chains (the per-query kernel has one).
template <size_t NQ, size_t NK>
inline void Dots(const float* const* q, const float* k, size_t hd, float (*dots)[NK]) {
  __m256 acc[NQ][NK];
  for (size_t a = 0; a < NQ; ++a) {
    for (size_t b = 0; b < NK; ++b) acc[a][b] = _mm256_setzero_ps();
  }
  for (size_t d = 0; d < hd; d += 8) {
    __m256 kk[NK];
    for (size_t b = 0; b < NK; ++b) kk[b] = _mm256_loadu_ps(k + b * hd + d);
    for (size_t a = 0; a < NQ; ++a) {
      const __m256 qa = _mm256_loadu_ps(q[a] + d);
      for (size_t b = 0; b < NK; ++b) acc[a][b] = _mm256_add_ps(acc[a][b], _mm256_mul_ps(qa, kk[b]));
    }
  }
  for (size_t a = 0; a < NQ; ++a) {
    for (size_t b = 0; b < NK; ++b) dots[a][b] = Reduce8(acc[a][b]);
  }
}

// The two parity chains of out (a: even j, b: odd j) over a value tile's
// rows [0, lim) (fp32, hd apart; the tile starts at an even position) with
// weights w[0, lim); a and b persist across tiles in memory.
inline void AccumulateTile(const float* w, const float* tile, size_t lim, size_t hd, float* a, float* b) {
  size_t d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) {
    __m256 a0 = _mm256_loadu_ps(a + d0), a1 = _mm256_loadu_ps(a + d0 + 8), a2 = _mm256_loadu_ps(a + d0 + 16),
           a3 = _mm256_loadu_ps(a + d0 + 24);
    __m256 b0 = _mm256_loadu_ps(b + d0), b1 = _mm256_loadu_ps(b + d0 + 8), b2 = _mm256_loadu_ps(b + d0 + 16),
           b3 = _mm256_loadu_ps(b + d0 + 24);
    const float* vj = tile + d0;
    size_t j = 0;
    for (; j + 2 <= lim; j += 2, vj += 2 * hd) {
      const __m256 w0 = _mm256_set1_ps(w[j]);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(w0, _mm256_loadu_ps(vj)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 24)));
      const __m256 w1 = _mm256_set1_ps(w[j + 1]);
      const float* vk = vj + hd;
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(w1, _mm256_loadu_ps(vk)));
      b1 = _mm256_add_ps(b1, _mm256_mul_ps(w1, _mm256_loadu_ps(vk + 8)));
      b2 = _mm256_add_ps(b2, _mm256_mul_ps(w1, _mm256_loadu_ps(vk + 16)));
      b3 = _mm256_add_ps(b3, _mm256_mul_ps(w1, _mm256_loadu_ps(vk + 24)));
    }
    if (j < lim) {
      const __m256 w0 = _mm256_set1_ps(w[j]);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(w0, _mm256_loadu_ps(vj)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 8)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 16)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(w0, _mm256_loadu_ps(vj + 24)));
    }
    _mm256_storeu_ps(a + d0, a0);
    _mm256_storeu_ps(a + d0 + 8, a1);
    _mm256_storeu_ps(a + d0 + 16, a2);
    _mm256_storeu_ps(a + d0 + 24, a3);
    _mm256_storeu_ps(b + d0, b0);
    _mm256_storeu_ps(b + d0 + 8, b1);
    _mm256_storeu_ps(b + d0 + 16, b2);
    _mm256_storeu_ps(b + d0 + 24, b3);
  }
  for (; d0 < hd; d0 += 8) {
    __m256 a0 = _mm256_loadu_ps(a + d0), b0 = _mm256_loadu_ps(b + d0);
    const float* vj = tile + d0;
    size_t j = 0;
    for (; j + 2 <= lim; j += 2, vj += 2 * hd) {
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(vj)));
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(_mm256_set1_ps(w[j + 1]), _mm256_loadu_ps(vj + hd)));
    }
    if (j < lim) a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(vj)));
    _mm256_storeu_ps(a + d0, a0);
    _mm256_storeu_ps(b + d0, b0);
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
    for (size_t d = 0; d < hd; d += 8) {
      _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(a + hd + d)));
    }
  }
}

}  // namespace

void famq_attend_f32__avx2(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                           float* out) {
  Attend<float, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_f16__avx2(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                           float* out) {
  Attend<uint16_t, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_i8__avx2(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                          float* out) {
  Attend<int8_t, true>(q, kv, hd, len, scale, scores, out);
}

void famq_attend_block_f32__avx2(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<float, false>(b, kv, hd, scale, scratch);
}
void famq_attend_block_f16__avx2(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<uint16_t, false>(b, kv, hd, scale, scratch);
}
void famq_attend_block_i8__avx2(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockT<int8_t, true>(b, kv, hd, scale, scratch);
}

// F16C's conversion with round to nearest even is F32ToF16 bit for bit:
// overflow to inf, NaN quieted with its top payload bits (tested on every
// binary16 value, the midpoints and a sweep of all fp32 exponents). MXCSR's
// DAZ, which famq never sets, would only zero fp32 subnormals: they round to
// a signed 0 anyway.
void famq_f32_to_f16__avx2(const float* x, size_t n, uint16_t* out) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  for (; i < n; ++i) out[i] = F32ToF16(x[i]);
}

}  // namespace famq
