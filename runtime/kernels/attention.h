// Attention of one query head over a KV cache (scores, softmax, weighted sum
// of values) for fp32, fp16 and int8 cache elements: the numerical
// specification, the element conversions that write the cache, and the
// kernel entry points of every ISA. The engine (engine/engine.cc) calls the
// per-query kernel once per (query row, head) in decode, and the block kernel
// once per (block of rows of one sequence, kv head) in prefill.
//
// ============================== SPECIFICATION ==============================
// Cache elements, written by the scalar functions below (one definition on
// every ISA, so every build stores the same bytes):
//   f32:  the value.
//   f16:  IEEE binary16, F32ToF16 (round to nearest, ties to even; overflow to
//         inf; NaN stays NaN). Read back exactly (F16ToF32).
//   int8: per (position, kv head) — finer than the per 32-position
//         block, so appending a position never changes an earlier one's
//         scale or codes (no requantization, no allocation) —
//           amax = max_d |x[d]|                                        (exact)
//           amax < kKvMinAmax (2^-100, covers 0, subnormals and keeps
//           127 / amax finite): code[d] = 0, scale = 0
//           else: scale = amax / 127.0f, inv = 127.0f / amax           (fp32)
//                 code[d] = clamp(rint(x[d] * inv), -127, 127)   (ties to even)
//         The value read back is code[d] * scale (float(code) is exact).
//         Non-finite x gives unspecified codes (never out of range).
//
// One query q[hd] against positions j < len (len >= 1), c = 1/sqrt(hd)
// given as `scale` by the caller:
//   dot(a, b):  s[l] = 0 for l < 8; for d = 0 .. hd-1 in order:
//               s[d % 8] = s[d % 8] + a[d] * b[d]     (product rounded, then sum:
//                                                     no fused multiply-add)
//               t[l] = s[l] + s[l + 4] (l < 4); u[l] = t[l] + t[l + 2] (l < 2);
//               dot = u[0] + u[1]
//   score[j] = dot(q, k_j) * c                      (f32 / f16: k_j as fp32)
//   score[j] = (dot(q, code_k_j) * kscale_j) * c    (int8)
//   softmax:   m = max_j score[j] (exact); e[j] = std::exp(score[j] - m);
//              sum = the 8-lane sum of e[j] (lane j % 8, in order of j; the
//              lanes reduced as in dot); p[j] = e[j] * (1.0f / sum)
//              (AttentionSoftmax)
//   out[d]:    two partial sums by the parity of j, each in order of j:
//              a_r[d] = 0; for j with j % 2 == r: a_r[d] = a_r[d] + w_j * v_j[d]
//              (product rounded, then sum); out[d] = a_0[d] + a_1[d];
//              w_j = p[j] (f32 / f16) or w_j = p[j] * vscale_j (int8, value
//              code_v_j[d]). (Two chains instead of one halve the latency
//              bound of the add chain; the 8 lanes of the sum likewise.)
// attention_ref.cc evaluates exactly this (compiled with -ffp-contract=off);
// every SIMD kernel must return the same bits (8 fp32 lanes reduced in the
// order above; separate multiply and add), which the tests check with
// memcmp. So a cache type gives the same greedy tokens on every ISA whose
// std::exp agrees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "kernels/isa.h"

namespace famq {

// Element type of a KV cache.
enum class KvType : int {
  kF32 = 0,   // 4 bytes per value
  kF16 = 1,   // 2 bytes per value
  kInt8 = 2,  // 1 byte per value + one fp32 scale per (position, kv head)
};

// "f32", "f16", "int8".
const char* KvTypeName(KvType type);
// Parses a name KvTypeName prints; InvalidArgument naming the valid ones.
Result<KvType> ParseKvType(std::string_view name);
// Bytes of one element (4, 2, 1).
size_t KvElementSize(KvType type);
// Bytes that one position of one kv head takes (values and, for int8, its scale).
size_t KvHeadBytes(KvType type, size_t head_dim);

inline constexpr float kKvMinAmax = 0x1p-100f;

// The cache's f16 writer is F32ToF16 (model/dtype.h).

// Writes one kv head's hd values into the cache in `type` (see SPECIFICATION):
// f32: dst is float*; f16: uint16_t*; int8: int8_t*, *scale receives the
// scale (scale unused otherwise).
void StoreKv(KvType type, const float* x, size_t hd, void* dst, float* scale);

// One kv head of one sequence as the kernels read it. Position j's values
// start at element j * stride of k / v (elements of the cache type), its
// int8 scales at k_scale[j * scale_stride] / v_scale[j * scale_stride].
struct KvHeadView {
  const void* k;
  const void* v;
  const float* k_scale;  // int8 only
  const float* v_scale;  // int8 only
  size_t stride;
  size_t scale_stride;
};

// out[hd] = attention of q[hd] over positions [0, len) (SPECIFICATION);
// scores[len] is scratch (it holds the probabilities afterwards). len >= 1.
using AttendFn = void (*)(const float* q, const KvHeadView* kv, size_t hd, size_t len, float scale, float* scores,
                          float* out);

// ------------------------------ prefill blocks ------------------------------
// A block of query vectors that share one kv head: `rows` rows of one
// sequence x the `group` query heads of one GQA group. Query (r, g) reads
// q + r * q_stride + g * hd, writes out + r * out_stride + g * hd and attends
// to the positions [0, pos[r]] (pos[r] >= 0; any order). Each query's out is
// the per-query SPECIFICATION's, bit for bit (the tests check it with memcmp):
// the block only changes how often a key or value is loaded and converted to
// fp32 (once per block and not once per query), never the order of an
// operation on one query's values.
struct AttendBlock {
  const float* q;
  size_t q_stride;
  float* out;
  size_t out_stride;
  const int32_t* pos;  // [rows]
  size_t rows, group;
};

// Keys (and values) converted to fp32 together: one tile of kAttendKeyTile x hd
// floats stays in L1 while every query of the block uses it.
inline constexpr size_t kAttendKeyTile = 32;
// Query vectors per block the engine forms (rows = this / group, at least 1):
// each key is converted once per 16 queries instead of once per query.
inline constexpr size_t kAttendBlockQueries = 16;

// Floats of scratch a block of rows x group queries over at most max_len
// positions needs: scores [rows * group][max_len], a key tile
// [kAttendKeyTile][hd] and the two partial sums [rows * group][2][hd].
size_t AttendBlockScratchFloats(size_t rows, size_t group, size_t hd, size_t max_len);

// Attention of a block (see AttendBlock); scratch holds
// AttendBlockScratchFloats(rows, group, hd, max_r pos[r] + 1) floats.
using AttendBlockFn = void (*)(const AttendBlock* block, const KvHeadView* kv, size_t hd, float scale,
                               float* scratch);

// fp32 -> IEEE binary16 of n values, each exactly F32ToF16 (model/dtype.h):
// round to nearest even, overflow to inf, NaN quiet with its top payload bits.
using F32ToF16Fn = void (*)(const float* x, size_t n, uint16_t* out);

// One ISA's kernels, indexed by static_cast<int>(KvType). SIMD kernels take
// hd % 8 == 0 only; GetAttendFn / GetAttendBlockFn fall back to the
// reference otherwise.
struct AttentionKernels {
  Isa isa;
  AttendFn attend[3];
  AttendBlockFn attend_block[3];
  F32ToF16Fn f32_to_f16;  // any n
};

// The table for an ISA compiled into this build, or nullptr (the CPU is not
// consulted: check IsaAvailable first).
const AttentionKernels* GetAttentionKernels(Isa isa);
// The kernel to run for (isa, type, hd): the ISA's when it has one that takes
// hd, else the reference. isa must be available.
AttendFn GetAttendFn(Isa isa, KvType type, size_t hd);

// The block kernel to run for (isa, type, hd), like GetAttendFn.
AttendBlockFn GetAttendBlockFn(Isa isa, KvType type, size_t hd);

// StoreKv with the f16 conversion of `kernels` (the same bytes as StoreKv on
// every ISA; f32 and int8 as StoreKv).
void StoreKvWith(const AttentionKernels& kernels, KvType type, const float* x, size_t hd, void* dst, float* scale);

// The softmax step of the SPECIFICATION, in place over x[0, n). Every
// kernel calls this one (compiled once, at the baseline ISA).
void AttentionSoftmax(float* x, size_t n);

void famq_attend_f32__ref(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_f16__ref(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_i8__ref(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
// The block reference: the per-query reference for each query in turn.
void famq_attend_block_f32__ref(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_f16__ref(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_i8__ref(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_f32_to_f16__ref(const float*, size_t, uint16_t*);

#if defined(FAMQ_HAVE_X86_KERNELS)
// AVX2 + F16C (no FMA: see SPECIFICATION); also the AVX-512 level's kernels.
void famq_attend_f32__avx2(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_f16__avx2(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_i8__avx2(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_block_f32__avx2(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_f16__avx2(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_i8__avx2(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_f32_to_f16__avx2(const float*, size_t, uint16_t*);
#endif

#if defined(FAMQ_HAVE_ARM_KERNELS)
// AArch64 Advanced SIMD (fp16 conversion with fcvtl); also the neondot level's.
void famq_attend_f32__neon(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_f16__neon(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_i8__neon(const float*, const KvHeadView*, size_t, size_t, float, float*, float*);
void famq_attend_block_f32__neon(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_f16__neon(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_attend_block_i8__neon(const AttendBlock*, const KvHeadView*, size_t, float, float*);
void famq_f32_to_f16__neon(const float*, size_t, uint16_t*);
#endif

}  // namespace famq
