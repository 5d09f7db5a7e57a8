// Weight-only group-wise quantized linear kernels (W4 and W8 x dynamic int8
// activations): the numerical specification, the packed-weight ABI, and the
// kernel entry points of every ISA. Callers use WeightOnlyLinear
// (weight_only_linear.h); this header is for kernels, their tests and benches.
//
// ============================== SPECIFICATION ==============================
// Weights: a famq::QMatrix W with bits 2, 3, 4 or 8 (2- and 3-bit codes run
// on the 8-bit packing and kernels: everything below holds for any code in
// [-128, 127]), rows = n (output features),
// cols = k (input features), signed codes c[r][j], per (row, group) fp32 scale
// s[r][g] (finite, >= 0) and signed zero point z[r][g] (in the code range),
// g = j / group_size. Accepted shapes: k % 32 == 0, group_size % 32 == 0,
// k % group_size == 0 (anything else is InvalidArgument naming the sizes).
//
// Activations x[m][j] (fp32, finite; non-finite input gives unspecified but
// memory-safe output) are quantized inside the kernel, per row m and per block
// b of kQBlock = 32 consecutive input features j in [32b, 32b + 32):
//   amax      = max_j |x[m][j]|                                   (exact)
//   if amax < kQMinBlockAmax (2^-100; covers 0 and subnormals, and keeps
//   127 / amax finite):  qx[m][j] = 0, sx[m][b] = 0
//   else:     sx[m][b] = amax / 127.0f                           (fp32 division)
//             inv      = 127.0f / amax                           (fp32 division)
//             qx[m][j] = clamp(rint(x[m][j] * inv), -127, 127)   (fp32 product,
//                        round to nearest, ties to even)
//   qsum[m][b] = sum_j qx[m][j]                                  (int32)
// Every kernel's quantizer is bit-exact to this (same IEEE operations).
//
// Output, for each m and r, blocks b = 0 .. k/32 - 1 in increasing order:
//   dot[b]  = sum_{j in b} qx[m][j] * c[r][j]          (int32, exact)
//   t[b]    = dot[b] - z[r][g(b)] * qsum[m][b]         (int32, exact)
//   acc     = 0.0f; acc += (s[r][g(b)] * sx[m][b]) * float(t[b])  (fp32)
//   y[m][r] = acc + bias[r]   (bias optional; fp32)
// (qgemm_ref.cc evaluates exactly this; a compiler may contract its
// multiply-add into an FMA.)
// |t[b]| <= 32 * 127 * 255 < 2^24, so float(t[b]) is exact too. SIMD kernels
// must produce the same integers t[b]; they may order, fuse (FMA) or split
// the fp32 accumulation differently. Their tolerance against the reference
// is kQGemmMaxRelError times sum_b |s * sx * t[b]| (+ |bias|) per output.
//
// This is llama.cpp's Q4_x/Q8_0 x Q8_0 scheme. Integer dot products map onto
// AVX-512 VNNI vpdpbusd (u8 x s8: weights stored as c + 2^(bits-1) in
// [0, 2^bits), corrected by (z + 2^(bits-1)) * qsum), NEON sdot (s8 x s8),
// AVX2 vpmaddubsw (u8 x s8, non-saturating for 4-bit values; 8-bit weights
// go through |c| x sign(c)*qx, whose pair sums stay below 2^15).
//
// ============================== PACKED LAYOUT ==============================
// Each ISA's table entry says how it wants W packed (QGemmPacking), and
// PackQMatrix (qgemm_pack.h) writes, for tile_rows = R, tiles = ceil(n / R),
// blocks = k / 32, groups = k / group_size (rows past n are padding with
// code 0, zero 0, scale 0), with u = c + code_bias:
//   codes:   [tile][block][R * 32 bytes, or R * 16 with nibbles], where within
//            a block, for row i of the tile and e = 0..3:
//            unpacked: byte (q * R + i) * 4 + e holds u[i][32 b + 4 q + e],
//              q = 0..7 (the block's 8 input quads);
//            nibbles (4-bit): byte (p * R + i) * 4 + e holds u[i][32 b + 8 p + e]
//              in bits 0..3 and u[i][32 b + 8 p + 4 + e] in bits 4..7, p = 0..3
//              (quad 2p in the low nibbles, quad 2p + 1 in the high ones);
//   scales:  [tile][group][R] fp32
//   offsets: [tile][group][R] bytes holding z + code_bias (uint8 when
//            code_bias > 0, int8 bit pattern when code_bias == 0)
// So R rows x 4 consecutive inputs form one 4R-byte run: a vector of R int32
// lanes that one vpdpbusd / sdot fills against a broadcast activation quad.
// The kernel computes t[b] as sum_j u * qx - offset * qsum (the same integer).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/isa.h"

namespace famq {

inline constexpr int kQBlock = 32;                  // activation block (inputs)
inline constexpr float kQMinBlockAmax = 0x1p-100f;  // smaller amax: zero block
inline constexpr float kQGemmMaxRelError = 1e-5f;   // SIMD vs reference, see above

// How one ISA wants a QMatrix of a given bit width packed (see PACKED LAYOUT).
struct QGemmPacking {
  int tile_rows;  // R: rows interleaved per tile (1 = row-major)
  bool nibbles;   // 4-bit codes stored two per byte
  int code_bias;  // added to codes and zero points before storing
};

// Packed weights, as the kernels read them (all pointers owned elsewhere).
struct QGemmWeights {
  const uint8_t* codes;     // [tiles][blocks][block_bytes]
  const float* scales;      // [tiles][groups][tile_rows]
  const uint8_t* offsets;   // [tiles][groups][tile_rows]
  size_t rows;              // n (unpadded)
  size_t cols;              // k
  size_t blocks_per_group;  // group_size / 32
};

// Quantized activations for m rows (qx, sx, qsum of the specification).
struct QGemmActivations {
  const int8_t* qx;     // [m][qx_stride], first k bytes of each row used
  const float* sx;      // [m][k / 32]
  const int32_t* qsum;  // [m][k / 32]
  size_t qx_stride;     // bytes between rows of qx (>= k)
};

// Quantizes one row of k floats (k % 32 == 0) per the specification:
// x [k] -> qx [k], sx [k/32], qsum [k/32].
using QuantizeRowFn = void (*)(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum);

// y[i][r] for i < m and r in rows of tiles [tile_begin, tile_end) (clipped to
// w->rows); y row i starts at y + i * y_stride. bias: padded to
// tiles * tile_rows floats, or nullptr. m >= 1.
using QGemmFn = void (*)(const QGemmWeights* w, const QGemmActivations* a, size_t m, size_t tile_begin, size_t tile_end,
                         const float* bias, float* y, size_t y_stride);

// One ISA's kernels and packings, filled once (static tables in qgemm.cc).
struct QGemmKernels {
  Isa isa;
  QGemmPacking w4_packing;
  QGemmPacking w8_packing;
  QuantizeRowFn quantize_row;
  QGemmFn gemm_w4;
  QGemmFn gemm_w8;
};

// The table for an ISA compiled into this build, or nullptr (the CPU is not
// consulted: check IsaAvailable before running anything from it).
const QGemmKernels* GetQGemmKernels(Isa isa);

// Kernel entry points. "q4w"/"q8w": 4/8-bit group-wise weights; "qd8":
// dynamic int8 activations; "f32": float in and out.
void famq_qd8_f32_quantize__ref(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum);
void famq_q4w_f32_gemm__ref(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                            size_t);
void famq_q8w_f32_gemm__ref(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                            size_t);

#if defined(FAMQ_HAVE_X86_KERNELS)
void famq_qd8_f32_quantize__avx2(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum);
void famq_q4w_f32_gemm__avx2(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                             size_t);
void famq_q8w_f32_gemm__avx2(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                             size_t);
void famq_qd8_f32_quantize__avx512vnni(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum);
void famq_q4w_f32_gemm__avx512vnni(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*,
                                   float*, size_t);
void famq_q8w_f32_gemm__avx512vnni(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*,
                                   float*, size_t);
#endif

#if defined(FAMQ_HAVE_ARM_KERNELS)
void famq_qd8_f32_quantize__neon(size_t k, const float* x, int8_t* qx, float* sx, int32_t* qsum);
void famq_q4w_f32_gemm__neon(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                             size_t);
void famq_q8w_f32_gemm__neon(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*, float*,
                             size_t);
void famq_q4w_f32_gemm__neondot(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*,
                                float*, size_t);
void famq_q8w_f32_gemm__neondot(const QGemmWeights*, const QGemmActivations*, size_t, size_t, size_t, const float*,
                                float*, size_t);
#endif

}  // namespace famq
