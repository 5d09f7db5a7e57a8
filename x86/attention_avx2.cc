// AVX2 + F16C attention kernels (kernels/attention.h). Built with
// -mavx2 -mf16c -ffp-contract=off and no -mfma: the specification rounds
// every product before adding it, and these kernels return the reference's
// bits exactly (8 lanes = the specification's s[0..7], reduced in its order).
#include <immintrin.h>

#include "kernels/attention.h"

namespace famq {
namespace {

inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 Load8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

template <typename T>
float Dot8(const float* q, const T* k, size_t hd) {
  __m256 acc = _mm256_setzero_ps();
  for (size_t d = 0; d < hd; d += 8) acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + d), Load8(k + d)));
  const __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // s[l] + s[l + 4]
  const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));                                       // t[l] + t[l + 2]
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));                              // u[0] + u[1]
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

}  // namespace famq
