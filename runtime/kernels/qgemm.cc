// Kernel tables, QMatrix validation and packing for the weight-only kernels.
#include "kernels/qgemm.h"

#include <cmath>
#include <string>

#include "kernels/qgemm_pack.h"

namespace famq {
namespace {

// The reference reads the canonical QMatrix layout: row-major int8 codes,
// int8 zero points as offsets.
constexpr QGemmKernels kRefKernels = {
    Isa::kRef,
    /*w4_packing=*/{/*tile_rows=*/1, /*nibbles=*/false, /*code_bias=*/0},
    /*w8_packing=*/{/*tile_rows=*/1, /*nibbles=*/false, /*code_bias=*/0},
    famq_qd8_f32_quantize__ref,
    famq_q4w_f32_gemm__ref,
    famq_q8w_f32_gemm__ref,
};

#if defined(FAMQ_HAVE_X86_KERNELS)
// AVX2: 8 rows = 8 int32 lanes of a ymm. 4-bit codes as unsigned nibbles
// (vpmaddubsw's u8 operand); 8-bit codes stay signed for the |c| x sign trick.
constexpr QGemmKernels kAvx2Kernels = {
    Isa::kAvx2,
    {8, true, 8},
    {8, false, 0},
    famq_qd8_f32_quantize__avx2,
    famq_q4w_f32_gemm__avx2,
    famq_q8w_f32_gemm__avx2,
};
// AVX-512 VNNI: 16 rows = 16 int32 lanes of a zmm; vpdpbusd takes the weights
// as its unsigned operand, so both widths are stored biased to [0, 2^bits).
constexpr QGemmKernels kAvx512VnniKernels = {
    Isa::kAvx512Vnni,
    {16, true, 8},
    {16, false, 128},
    famq_qd8_f32_quantize__avx512vnni,
    famq_q4w_f32_gemm__avx512vnni,
    famq_q8w_f32_gemm__avx512vnni,
};
#endif

#if defined(FAMQ_HAVE_ARM_KERNELS)
// NEON: 8 rows = two int32x4 lanes sets; sdot/smull are signed x signed, so
// nibbles in [0, 15] and signed 8-bit codes both serve directly.
constexpr QGemmKernels kNeonKernels = {
    Isa::kNeon,
    {8, true, 8},
    {8, false, 0},
    famq_qd8_f32_quantize__neon,
    famq_q4w_f32_gemm__neon,
    famq_q8w_f32_gemm__neon,
};
constexpr QGemmKernels kNeonDotKernels = {
    Isa::kNeonDot,
    {8, true, 8},
    {8, false, 0},
    famq_qd8_f32_quantize__neon,
    famq_q4w_f32_gemm__neondot,
    famq_q8w_f32_gemm__neondot,
};
#endif

std::string Sizes(const QMatrix& w) {
  std::string sizes = "(bits ";
  sizes += std::to_string(w.bits) + ", rows " + std::to_string(w.rows) + ", cols " + std::to_string(w.cols) +
           ", group_size " + std::to_string(w.group_size) + ")";
  return sizes;
}

}  // namespace

const QGemmKernels* GetQGemmKernels(Isa isa) {
  switch (isa) {
    case Isa::kRef: return &kRefKernels;
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return &kAvx2Kernels;
    case Isa::kAvx512Vnni: return &kAvx512VnniKernels;
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
    case Isa::kNeon: return &kNeonKernels;
    case Isa::kNeonDot: return &kNeonDotKernels;
#endif
    default: return nullptr;
  }
}

Status ValidateQMatrix(const QMatrix& w, const std::string& name) {
  if (w.bits != 2 && w.bits != 3 && w.bits != 4 && w.bits != 8) {
    return InvalidArgument(name + ": weight-only kernels take 2-, 3-, 4- or 8-bit codes, not " + std::to_string(w.bits) + " " +
                           Sizes(w));
  }
  if (w.rows <= 0 || w.cols <= 0 || w.group_size <= 0) {
    return InvalidArgument(name + ": rows, cols and group_size must be positive " + Sizes(w));
  }
  if (w.cols % kQBlock != 0 || w.group_size % kQBlock != 0 || w.cols % w.group_size != 0) {
    return InvalidArgument(name + ": cols and group_size must be multiples of 32 and group_size must divide cols " +
                           Sizes(w));
  }
  const size_t rows = static_cast<size_t>(w.rows);
  const size_t cols = static_cast<size_t>(w.cols);
  const size_t groups = rows * static_cast<size_t>(w.groups_per_row());
  if (w.codes.size() != rows * cols || w.scales.size() != groups || w.zeros.size() != groups) {
    return InvalidArgument(name + ": expected " + std::to_string(rows * cols) + " codes and " + std::to_string(groups) +
                           " scales and zeros, got " + std::to_string(w.codes.size()) + ", " +
                           std::to_string(w.scales.size()) + ", " + std::to_string(w.zeros.size()) + " " + Sizes(w));
  }
  const int lo = w.CodeMin();
  const int hi = w.CodeMax();
  for (size_t i = 0; i < w.codes.size(); ++i) {
    if (w.codes[i] < lo || w.codes[i] > hi) {
      return InvalidArgument(name + ": code " + std::to_string(w.codes[i]) + " at row " + std::to_string(i / cols) +
                             ", col " + std::to_string(i % cols) + " is outside [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "]");
    }
  }
  for (size_t i = 0; i < groups; ++i) {
    if (w.zeros[i] < lo || w.zeros[i] > hi) {
      return InvalidArgument(name + ": zero point " + std::to_string(w.zeros[i]) + " of group " + std::to_string(i) +
                             " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    if (!std::isfinite(w.scales[i]) || w.scales[i] < 0.0f) {
      return InvalidArgument(name + ": scale " + std::to_string(w.scales[i]) + " of group " + std::to_string(i) +
                             " is not finite and >= 0");
    }
  }
  return Status::Ok();
}

QGemmPackedSizes PackedSizes(const QMatrix& w, const QGemmPacking& p) {
  const size_t tile_rows = static_cast<size_t>(p.tile_rows);
  const size_t tiles = (static_cast<size_t>(w.rows) + tile_rows - 1) / tile_rows;
  const size_t blocks = static_cast<size_t>(w.cols) / kQBlock;
  const size_t groups = static_cast<size_t>(w.groups_per_row());
  const size_t block_bytes = tile_rows * (p.nibbles ? kQBlock / 2 : kQBlock);
  return {tiles, tiles * blocks * block_bytes, tiles * groups * tile_rows, tiles * groups * tile_rows};
}

void PackQMatrix(const QMatrix& w, const QGemmPacking& p, uint8_t* codes, float* scales, uint8_t* offsets) {
  const QGemmPackedSizes sizes = PackedSizes(w, p);
  const size_t tile_rows = static_cast<size_t>(p.tile_rows);
  const size_t rows = static_cast<size_t>(w.rows);
  const size_t cols = static_cast<size_t>(w.cols);
  const size_t blocks = cols / kQBlock;
  const size_t groups = static_cast<size_t>(w.groups_per_row());
  const size_t block_bytes = tile_rows * (p.nibbles ? kQBlock / 2 : kQBlock);
  // Stored byte of (row, col); padding rows store code 0.
  auto stored = [&](size_t r, size_t c) -> uint8_t {
    const int code = r < rows ? w.codes[r * cols + c] : 0;
    return static_cast<uint8_t>(code + p.code_bias);
  };
  for (size_t t = 0; t < sizes.tiles; ++t) {
    for (size_t b = 0; b < blocks; ++b) {
      uint8_t* block = codes + (t * blocks + b) * block_bytes;
      for (size_t i = 0; i < tile_rows; ++i) {
        const size_t r = t * tile_rows + i;
        for (size_t e = 0; e < 4; ++e) {
          if (p.nibbles) {
            for (size_t pair = 0; pair < 4; ++pair) {
              const size_t c = b * kQBlock + 8 * pair + e;
              block[(pair * tile_rows + i) * 4 + e] =
                  static_cast<uint8_t>((stored(r, c) & 0x0F) | ((stored(r, c + 4) & 0x0F) << 4));
            }
          } else {
            for (size_t q = 0; q < 8; ++q) block[(q * tile_rows + i) * 4 + e] = stored(r, b * kQBlock + 4 * q + e);
          }
        }
      }
    }
    for (size_t g = 0; g < groups; ++g) {
      for (size_t i = 0; i < tile_rows; ++i) {
        const size_t r = t * tile_rows + i;
        const size_t dst = (t * groups + g) * tile_rows + i;
        scales[dst] = r < rows ? w.scales[r * groups + g] : 0.0f;
        const int zero = r < rows ? w.zeros[r * groups + g] : 0;
        offsets[dst] = static_cast<uint8_t>(zero + p.code_bias);
      }
    }
  }
}

}  // namespace famq
