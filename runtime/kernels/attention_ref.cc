// The scalar reference attention kernels: the SPECIFICATION of
// kernels/attention.h, line by line. Compiled with -ffp-contract=off
// (runtime/kernels/CMakeLists.txt) so that no compiler fuses a multiply and
// an add that the specification rounds separately.
#include <cstring>

#include "kernels/attention.h"
#include "model/dtype.h"

namespace famq {
namespace {

// Element j of a cache row as fp32 (exact for every type).
inline float LoadF32(const float* p, size_t d) { return p[d]; }
inline float LoadF32(const uint16_t* p, size_t d) { return F16ToF32(p[d]); }
inline float LoadF32(const int8_t* p, size_t d) { return static_cast<float>(p[d]); }

template <typename T>
float Dot8(const float* q, const T* k, size_t hd) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t d = 0; d < hd; ++d) {
    const float prod = q[d] * LoadF32(k, d);
    s[d % 8] = s[d % 8] + prod;
  }
  float t[4];
  for (int l = 0; l < 4; ++l) t[l] = s[l] + s[l + 4];
  const float u0 = t[0] + t[2], u1 = t[1] + t[3];
  return u0 + u1;
}

template <typename T, bool kScaled>
void Attend(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores, float* out) {
  const T* k = static_cast<const T*>(kv->k);
  const T* v = static_cast<const T*>(kv->v);
  for (size_t j = 0; j < len; ++j) {
    float dot = Dot8(q, k + j * kv->stride, hd);
    if constexpr (kScaled) dot = dot * kv->k_scale[j * kv->scale_stride];
    scores[j] = dot * scale;
  }
  AttentionSoftmax(scores, len);
  for (size_t d = 0; d < hd; ++d) {
    float acc[2] = {0.0f, 0.0f};  // by the parity of j
    for (size_t j = 0; j < len; ++j) {
      float w = scores[j];
      if constexpr (kScaled) w = w * kv->v_scale[j * kv->scale_stride];
      const float prod = w * LoadF32(v + j * kv->stride, d);
      acc[j % 2] = acc[j % 2] + prod;
    }
    out[d] = acc[0] + acc[1];
  }
}

// The block's definition: each query on its own, in the per-query order.
void AttendBlockRef(AttendFn attend, const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale,
                    float* scratch) {
  for (size_t r = 0; r < b->rows; ++r) {
    const size_t len = static_cast<size_t>(b->pos[r]) + 1;
    for (size_t g = 0; g < b->group; ++g) {
      attend(b->q + r * b->q_stride + g * hd, kv, hd, len, scale, scratch, b->out + r * b->out_stride + g * hd);
    }
  }
}

}  // namespace

void famq_attend_f32__ref(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                          float* out) {
  Attend<float, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_f16__ref(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                          float* out) {
  Attend<uint16_t, false>(q, kv, hd, len, scale, scores, out);
}
void famq_attend_i8__ref(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                         float* out) {
  Attend<int8_t, true>(q, kv, hd, len, scale, scores, out);
}

void famq_attend_block_f32__ref(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockRef(famq_attend_f32__ref, b, kv, hd, scale, scratch);
}
void famq_attend_block_f16__ref(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockRef(famq_attend_f16__ref, b, kv, hd, scale, scratch);
}
void famq_attend_block_i8__ref(const AttendBlock* b, const KvHeadView* kv, size_t hd, float scale, float* scratch) {
  AttendBlockRef(famq_attend_i8__ref, b, kv, hd, scale, scratch);
}

}  // namespace famq
