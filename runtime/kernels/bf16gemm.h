// y = x W^T (+ b) with W in BF16 read in place (a mapped checkpoint), x, y
// and b in fp32: the kernels of Bf16Linear (linear/bf16_linear.h).
//
// ============================== SPECIFICATION ==============================
// W: `rows` rows of `in` BF16 values, row r at byte r * in * 2 of `w` (any
// alignment: the kernels read it with unaligned loads or memcpy). A BF16
// value h is the fp32 value with bits h << 16 (exact).
// For r in [r0, r1) and t in [0, batch):
//   y[t * y_stride + r] = (sum over k of x[t * in + k] * W[r][k]) + bias[r]
// with the sum taken in fp32 (bias null: + 0 omitted). The reference
// (famq_bf16w_f32_gemm__ref) sums k = 0 .. in-1 in order, one rounding per
// product and one per addition; the SIMD kernels sum in 8 / 16 / 4 lanes with
// fused multiply-adds and reduce the lanes at the end, so their results
// differ from the reference's by rounding only: both are within
// in * 2^-24 * sum_k |x[t][k] * W[r][k]| (+ one rounding of the bias add) of
// the exact sum (the usual bound for a recursive fp32 sum; the lanes only
// shorten the chains), which is the tolerance the tests use.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"

namespace famq {

// w: the block's row 0; y: column 0 of this block's outputs (the caller adds
// the block's column offset); bias: the block's bias (index r) or nullptr.
using Bf16GemmFn = void (*)(const uint8_t* w, size_t in, size_t r0, size_t r1, const float* x, size_t batch,
                            const float* bias, float* y, size_t y_stride);

// The kernel of an ISA compiled into this build (AVX-512 and neondot levels
// use their own or their base level's), else the reference. The CPU is not
// consulted: check IsaAvailable first.
Bf16GemmFn GetBf16GemmFn(Isa isa);

void famq_bf16w_f32_gemm__ref(const uint8_t*, size_t, size_t, size_t, const float*, size_t, const float*, float*,
                              size_t);
#if defined(FAMQ_HAVE_X86_KERNELS)
void famq_bf16w_f32_gemm__avx2(const uint8_t*, size_t, size_t, size_t, const float*, size_t, const float*, float*,
                               size_t);
void famq_bf16w_f32_gemm__avx512(const uint8_t*, size_t, size_t, size_t, const float*, size_t, const float*, float*,
                                 size_t);
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
void famq_bf16w_f32_gemm__neon(const uint8_t*, size_t, size_t, size_t, const float*, size_t, const float*, float*,
                               size_t);
#endif

}  // namespace famq
