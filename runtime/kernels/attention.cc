// Attention kernels: names, the cache writers, the shared softmax and the
// per-ISA dispatch tables (the reference kernels are in attention_ref.cc,
// SIMD ones in x86/ and arm/).
#include "kernels/attention.h"
#include "model/dtype.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace famq {
namespace {

constexpr AttentionKernels kRefAttention = {
    Isa::kRef,
    {famq_attend_f32__ref, famq_attend_f16__ref, famq_attend_i8__ref},
    {famq_attend_block_f32__ref, famq_attend_block_f16__ref, famq_attend_block_i8__ref},
    famq_f32_to_f16__ref};
#if defined(FAMQ_HAVE_X86_KERNELS)
constexpr AttentionKernels kAvx2Attention = {
    Isa::kAvx2,
    {famq_attend_f32__avx2, famq_attend_f16__avx2, famq_attend_i8__avx2},
    {famq_attend_block_f32__avx2, famq_attend_block_f16__avx2, famq_attend_block_i8__avx2},
    famq_f32_to_f16__avx2};
// No AVX-512 variant: a head is 64-128 values and decode reads the cache
// once, so 256-bit lanes already stream it; the AVX2 kernels serve this level.
constexpr AttentionKernels kAvx512Attention = {
    Isa::kAvx512Vnni,
    {famq_attend_f32__avx2, famq_attend_f16__avx2, famq_attend_i8__avx2},
    {famq_attend_block_f32__avx2, famq_attend_block_f16__avx2, famq_attend_block_i8__avx2},
    famq_f32_to_f16__avx2};
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
constexpr AttentionKernels kNeonAttention = {
    Isa::kNeon,
    {famq_attend_f32__neon, famq_attend_f16__neon, famq_attend_i8__neon},
    {famq_attend_block_f32__neon, famq_attend_block_f16__neon, famq_attend_block_i8__neon},
    famq_f32_to_f16__neon};
constexpr AttentionKernels kNeonDotAttention = {
    Isa::kNeonDot,
    {famq_attend_f32__neon, famq_attend_f16__neon, famq_attend_i8__neon},
    {famq_attend_block_f32__neon, famq_attend_block_f16__neon, famq_attend_block_i8__neon},
    famq_f32_to_f16__neon};
#endif

}  // namespace

const char* KvTypeName(KvType type) {
  switch (type) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kInt8: return "int8";
  }
  return "?";
}

Result<KvType> ParseKvType(std::string_view name) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kInt8}) {
    if (name == KvTypeName(t)) return t;
  }
  std::string message = "KV cache type '";
  message += name;
  message += "' is not one of f16, f32, int8";
  return InvalidArgument(message);
}

size_t KvElementSize(KvType type) {
  switch (type) {
    case KvType::kF32: return 4;
    case KvType::kF16: return 2;
    case KvType::kInt8: return 1;
  }
  return 4;
}

size_t KvHeadBytes(KvType type, size_t head_dim) {
  return head_dim * KvElementSize(type) + (type == KvType::kInt8 ? sizeof(float) : 0);
}

size_t AttendBlockScratchFloats(size_t rows, size_t group, size_t hd, size_t max_len) {
  const size_t queries = rows * group;
  return queries * max_len + kAttendKeyTile * hd + 2 * queries * hd;
}

void famq_f32_to_f16__ref(const float* x, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = F32ToF16(x[i]);
}

void StoreKvWith(const AttentionKernels& kernels, KvType type, const float* x, size_t hd, void* dst, float* scale) {
  if (type == KvType::kF16) {
    kernels.f32_to_f16(x, hd, static_cast<uint16_t*>(dst));
    return;
  }
  StoreKv(type, x, hd, dst, scale);
}

void StoreKv(KvType type, const float* x, size_t hd, void* dst, float* scale) {
  switch (type) {
    case KvType::kF32: std::memcpy(dst, x, hd * sizeof(float)); return;
    case KvType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (size_t d = 0; d < hd; ++d) h[d] = F32ToF16(x[d]);
      return;
    }
    case KvType::kInt8: {
      auto* q = static_cast<int8_t*>(dst);
      float amax = 0.0f;
      for (size_t d = 0; d < hd; ++d) amax = std::max(amax, std::fabs(x[d]));
      if (!(amax >= kKvMinAmax)) {  // also NaN
        std::memset(q, 0, hd);
        *scale = 0.0f;
        return;
      }
      *scale = amax / 127.0f;
      const float inv = 127.0f / amax;
      for (size_t d = 0; d < hd; ++d) {
        const float r = std::rint(x[d] * inv);
        // NaN compares false both ways and lands on 0 (no UB in the cast).
        q[d] = static_cast<int8_t>(r >= 127.0f ? 127 : r <= -127.0f ? -127 : r == r ? static_cast<int>(r) : 0);
      }
      return;
    }
  }
}

void AttentionSoftmax(float* x, size_t n) {
  // The maximum does not depend on the order: 8 independent lanes.
  float mx[8];
  for (size_t l = 0; l < 8; ++l) mx[l] = x[0];
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t l = 0; l < 8; ++l) mx[l] = std::max(mx[l], x[i + l]);
  }
  for (; i < n; ++i) mx[0] = std::max(mx[0], x[i]);
  float m = mx[0];
  for (size_t l = 1; l < 8; ++l) m = std::max(m, mx[l]);
  for (size_t j = 0; j < n; ++j) x[j] = std::exp(x[j] - m);
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t l = 0; l < 8; ++l) s[l] = s[l] + x[i + l];
  }
  for (; i < n; ++i) s[i % 8] = s[i % 8] + x[i];
  float t[4];
  for (size_t l = 0; l < 4; ++l) t[l] = s[l] + s[l + 4];
  const float sum = (t[0] + t[2]) + (t[1] + t[3]);
  const float inv = 1.0f / sum;
  for (size_t j = 0; j < n; ++j) x[j] *= inv;
}

const AttentionKernels* GetAttentionKernels(Isa isa) {
  switch (isa) {
    case Isa::kRef: return &kRefAttention;
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return &kAvx2Attention;
    case Isa::kAvx512Vnni: return &kAvx512Attention;
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
    case Isa::kNeon: return &kNeonAttention;
    case Isa::kNeonDot: return &kNeonDotAttention;
#endif
    default: return nullptr;
  }
}

AttendFn GetAttendFn(Isa isa, KvType type, size_t hd) {
  const AttentionKernels* k = GetAttentionKernels(isa);
  if (k == nullptr || hd % 8 != 0) k = &kRefAttention;
  return k->attend[static_cast<int>(type)];
}

AttendBlockFn GetAttendBlockFn(Isa isa, KvType type, size_t hd) {
  const AttentionKernels* k = GetAttentionKernels(isa);
  if (k == nullptr || hd % 8 != 0) k = &kRefAttention;
  return k->attend_block[static_cast<int>(type)];
}

}  // namespace famq
