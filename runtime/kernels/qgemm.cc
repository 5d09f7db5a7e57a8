// Kernel tables, QMatrix validation and packing for the weight-only kernels.
#include "kernels/qgemm.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/qgemm_pack.h"
#include "model/dtype.h"

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

// Decodes the 32 bit-stream codes at src (4 * bits bytes, code_packing.h's
// layout) into u[j] = code + bias, as two's complement bytes.
void DecodeBitStreamBlock(const uint8_t* src, int bits, int bias, uint8_t* u) {
  const unsigned mask = (1u << bits) - 1u;
  const int offset = (1 << (bits - 1)) - bias;  // stored u - 2^(bits-1) + bias
  const size_t width = static_cast<size_t>(bits);
  for (size_t j = 0; j < kQBlock; ++j) {
    const size_t bit = j * width;
    unsigned window = src[bit / 8];
    if (bit % 8 + width > 8) window |= static_cast<unsigned>(src[bit / 8 + 1]) << 8;  // stays in the block
    u[j] = static_cast<uint8_t>(static_cast<int>((window >> (bit % 8)) & mask) - offset);
  }
}

std::string Sizes(const QMatrixView& w) {
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

Status ValidateQMatrix(const QMatrix& w, const std::string& name) { return ValidateQMatrixView(ViewOf(w), name); }

QMatrixView ViewOf(const QMatrix& w) {
  QMatrixView v;
  v.bits = w.bits;
  v.rows = w.rows;
  v.cols = w.cols;
  v.group_size = w.group_size;
  v.codes = reinterpret_cast<const uint8_t*>(w.codes.data());
  v.nibbles = false;
  v.scales = w.scales.data();
  v.zeros = w.zeros.data();
  v.code_count = w.codes.size();
  v.scale_count = w.scales.size();
  v.zero_count = w.zeros.size();
  return v;
}

float QMatrixViewScale(const QMatrixView& w, size_t g) {
  return w.scales_f16 != nullptr ? F16ToF32(w.scales_f16[g]) : w.scales[g];
}

int QMatrixViewZero(const QMatrixView& w, size_t g) { return w.zeros != nullptr ? w.zeros[g] : 0; }

Status ValidateQMatrixView(const QMatrixView& w, const std::string& name) {
  if (w.bits != 2 && w.bits != 3 && w.bits != 4 && w.bits != 6 && w.bits != 8) {
    return InvalidArgument(name + ": weight-only kernels take 2-, 3-, 4-, 6- or 8-bit codes, not " +
                           std::to_string(w.bits) + " " + Sizes(w));
  }
  if (w.rows <= 0 || w.cols <= 0 || w.group_size <= 0) {
    return InvalidArgument(name + ": rows, cols and group_size must be positive " + Sizes(w));
  }
  if (w.cols % kQBlock != 0 || w.group_size % kQBlock != 0 || w.cols % w.group_size != 0) {
    return InvalidArgument(name + ": cols and group_size must be multiples of 32 and group_size must divide cols " +
                           Sizes(w));
  }
  if (w.nibbles && w.bits != 4) return InvalidArgument(name + ": only 4-bit codes can be stored two per byte");
  if (w.bitstream && (w.nibbles || (w.bits != 2 && w.bits != 3 && w.bits != 6))) {
    return InvalidArgument(name + ": only 2-, 3- and 6-bit codes are stored as a bit stream " + Sizes(w));
  }
  const size_t rows = static_cast<size_t>(w.rows);
  const size_t cols = static_cast<size_t>(w.cols);
  const size_t groups = rows * static_cast<size_t>(w.cols / w.group_size);
  // cols % 32 == 0: a bit-stream row is cols / 8 * bits whole bytes.
  const size_t code_count = w.nibbles     ? rows * cols / 2
                            : w.bitstream ? rows * (cols / 8) * static_cast<size_t>(w.bits)
                                          : rows * cols;
  const bool no_zeros = w.zeros == nullptr && w.zero_count == 0;
  if ((w.scales == nullptr) == (w.scales_f16 == nullptr)) {
    return InvalidArgument(name + ": exactly one of fp32 and fp16 scales must be given " + Sizes(w));
  }
  if (w.code_count != code_count || w.scale_count != groups || (w.zero_count != groups && !no_zeros)) {
    return InvalidArgument(name + ": expected " + std::to_string(code_count) + " code bytes and " +
                           std::to_string(groups) + " scales and zeros, got " + std::to_string(w.code_count) + ", " +
                           std::to_string(w.scale_count) + ", " + std::to_string(w.zero_count) + " " + Sizes(w));
  }
  const int lo = -(1 << (w.bits - 1));
  const int hi = (1 << (w.bits - 1)) - 1;
  if (w.bits != 8 && !w.nibbles && !w.bitstream) {
    const auto* codes = reinterpret_cast<const int8_t*>(w.codes);
    for (size_t i = 0; i < code_count; ++i) {
      if (codes[i] < lo || codes[i] > hi) {
        return InvalidArgument(name + ": code " + std::to_string(codes[i]) + " at row " + std::to_string(i / cols) +
                               ", col " + std::to_string(i % cols) + " is outside [" + std::to_string(lo) + ", " +
                               std::to_string(hi) + "]");
      }
    }
  }
  for (size_t i = 0; i < groups; ++i) {
    const int zero = QMatrixViewZero(w, i);
    if (zero < lo || zero > hi) {
      return InvalidArgument(name + ": zero point " + std::to_string(zero) + " of group " + std::to_string(i) +
                             " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    const float scale = QMatrixViewScale(w, i);
    if (!std::isfinite(scale) || scale < 0.0f) {
      return InvalidArgument(name + ": scale " + std::to_string(scale) + " of group " + std::to_string(i) +
                             " is not finite and >= 0");
    }
  }
  return Status::Ok();
}

QGemmPackedSizes PackedSizes(const QMatrixView& w, const QGemmPacking& p) {
  const size_t tile_rows = static_cast<size_t>(p.tile_rows);
  const size_t tiles = (static_cast<size_t>(w.rows) + tile_rows - 1) / tile_rows;
  const size_t blocks = static_cast<size_t>(w.cols) / kQBlock;
  const size_t groups = static_cast<size_t>(w.cols / w.group_size);
  const size_t block_bytes = tile_rows * (p.nibbles ? kQBlock / 2 : kQBlock);
  return {tiles, tiles * blocks * block_bytes, tiles * groups * tile_rows, tiles * groups * tile_rows};
}

QGemmPackedSizes PackedSizes(const QMatrix& w, const QGemmPacking& p) { return PackedSizes(ViewOf(w), p); }

void PackQMatrix(const QMatrix& w, const QGemmPacking& p, uint8_t* codes, float* scales, uint8_t* offsets) {
  const QMatrixView v = ViewOf(w);
  PackQMatrixTiles(v, p, 0, PackedSizes(v, p).tiles, codes, scales, offsets);
}

namespace {

// Four nibbles (bits 0..15 of v) spread to the low nibbles of four bytes.
inline uint32_t SpreadNibbles(uint32_t v) {
  return (v & 0xFu) | ((v & 0xF0u) << 4) | ((v & 0xF00u) << 8) | ((v & 0xF000u) << 12);
}

// Row r's block b written into its tile's block (row i of the tile) a word at
// a time, for the two common cases; returns false for the others, which the
// element-wise loop below (the definition) packs:
// - 4-bit nibbles into a nibble packing with code_bias 8: a stored signed
//   nibble n means c = n - 16 [n >= 8], so u = c + 8 = n ^ 8; source word p
//   holds columns 8p..8p+7 as its nibbles 0..7 (little-endian bytes, even
//   column low), and packed word (p, i) takes nibbles 0..3 low and 4..7 high;
// - 8-bit codes into an unpacked packing with code_bias 0 or 128 (u = c ^ 0x80).
inline bool PackRowBlockFast(const QMatrixView& w, const QGemmPacking& p, size_t r, size_t b, size_t tile_rows,
                             size_t i, uint8_t* block) {
  static_assert(std::endian::native == std::endian::little, "the word-wise packing reads little-endian words");
  const size_t cols = static_cast<size_t>(w.cols);
  if (w.bits == 4 && w.nibbles && p.nibbles && p.code_bias == 8) {
    const uint8_t* src = w.codes + (r * cols + b * kQBlock) / 2;
    for (size_t pair = 0; pair < 4; ++pair) {
      uint32_t x;
      std::memcpy(&x, src + 4 * pair, sizeof(x));
      x ^= 0x88888888u;
      const uint32_t out = SpreadNibbles(x & 0xFFFFu) | (SpreadNibbles(x >> 16) << 4);
      std::memcpy(block + (pair * tile_rows + i) * 4, &out, sizeof(out));
    }
    return true;
  }
  if (w.bits == 8 && !w.nibbles && !p.nibbles && (p.code_bias == 0 || p.code_bias == 128)) {
    const uint8_t* src = w.codes + r * cols + b * kQBlock;
    const uint32_t flip = p.code_bias == 128 ? 0x80808080u : 0u;
    for (size_t q = 0; q < 8; ++q) {
      uint32_t x;
      std::memcpy(&x, src + 4 * q, sizeof(x));
      x ^= flip;
      std::memcpy(block + (q * tile_rows + i) * 4, &x, sizeof(x));
    }
    return true;
  }
  return false;
}

}  // namespace

void PackQMatrixTiles(const QMatrixView& w, const QGemmPacking& p, size_t tile_begin, size_t tile_end, uint8_t* codes,
                      float* scales, uint8_t* offsets) {
  const size_t tile_rows = static_cast<size_t>(p.tile_rows);
  const size_t rows = static_cast<size_t>(w.rows);
  const size_t cols = static_cast<size_t>(w.cols);
  const size_t blocks = cols / kQBlock;
  const size_t groups = static_cast<size_t>(w.cols / w.group_size);
  const size_t block_bytes = tile_rows * (p.nibbles ? kQBlock / 2 : kQBlock);
  const auto bias = static_cast<uint8_t>(p.code_bias);
  for (size_t t = tile_begin; t < tile_end; ++t) {
    for (size_t b = 0; b < blocks; ++b) {
      uint8_t* block = codes + (t * blocks + b) * block_bytes;
      for (size_t i = 0; i < tile_rows; ++i) {
        const size_t r = t * tile_rows + i;
        // u[j] = code + code_bias of column 32 b + j (two's complement bytes; padding rows: code 0).
        uint8_t u[kQBlock];
        if (r < rows && PackRowBlockFast(w, p, r, b, tile_rows, i, block)) continue;
        if (r >= rows) {
          std::memset(u, bias, sizeof(u));
        } else if (w.bitstream) {
          DecodeBitStreamBlock(w.codes + (r * blocks + b) * 4 * static_cast<size_t>(w.bits), w.bits, p.code_bias, u);
        } else if (w.nibbles) {
          const uint8_t* src = w.codes + (r * cols + b * kQBlock) / 2;
          for (size_t j = 0; j < kQBlock / 2; ++j) {
            // A signed nibble n (two's complement, 4 bits) as a byte: sign-extend.
            const auto lo = static_cast<int8_t>(static_cast<uint8_t>(src[j] << 4)) >> 4;
            const auto hi = static_cast<int8_t>(src[j]) >> 4;
            u[2 * j] = static_cast<uint8_t>(lo + p.code_bias);
            u[2 * j + 1] = static_cast<uint8_t>(hi + p.code_bias);
          }
        } else {
          const uint8_t* src = w.codes + r * cols + b * kQBlock;
          for (size_t j = 0; j < kQBlock; ++j) u[j] = static_cast<uint8_t>(src[j] + bias);
        }
        for (size_t e = 0; e < 4; ++e) {
          if (p.nibbles) {
            for (size_t pair = 0; pair < 4; ++pair) {
              block[(pair * tile_rows + i) * 4 + e] =
                  static_cast<uint8_t>((u[8 * pair + e] & 0x0F) | ((u[8 * pair + 4 + e] & 0x0F) << 4));
            }
          } else {
            for (size_t q = 0; q < 8; ++q) block[(q * tile_rows + i) * 4 + e] = u[4 * q + e];
          }
        }
      }
    }
    for (size_t g = 0; g < groups; ++g) {
      for (size_t i = 0; i < tile_rows; ++i) {
        const size_t r = t * tile_rows + i;
        const size_t dst = (t * groups + g) * tile_rows + i;
        scales[dst] = r < rows ? QMatrixViewScale(w, r * groups + g) : 0.0f;
        const int zero = r < rows ? QMatrixViewZero(w, r * groups + g) : 0;
        offsets[dst] = static_cast<uint8_t>(zero + p.code_bias);
      }
    }
  }
}

void DequantPackedRow(const QGemmPackedRows& p, size_t r, float* out) {
  const size_t R = static_cast<size_t>(p.packing.tile_rows);
  const size_t cols = p.weights.cols;
  const size_t blocks = cols / kQBlock;
  const size_t t = r / R, i = r % R;
  const size_t block_bytes = R * (p.packing.nibbles ? kQBlock / 2 : kQBlock);
  const size_t bpg = p.weights.blocks_per_group;
  const int bias = p.packing.code_bias;
  // Offsets hold zero + code_bias: a uint8 when code_bias > 0, an int8 bit pattern when it is 0.
  auto zero_of = [&](size_t g) {
    const uint8_t o = p.weights.offsets[(t * p.groups + g) * R + i];
    return bias > 0 ? static_cast<int>(o) - bias : static_cast<int>(static_cast<int8_t>(o));
  };
  auto code_of = [&](uint8_t stored) {
    return bias > 0 ? static_cast<int>(stored) - bias : static_cast<int>(static_cast<int8_t>(stored));
  };
  for (size_t b = 0; b < blocks; ++b) {
    const size_t g = b / bpg;
    const float s = p.weights.scales[(t * p.groups + g) * R + i];
    const int z = zero_of(g);
    const uint8_t* block = p.weights.codes + (t * blocks + b) * block_bytes;
    float* o = out + b * kQBlock;
    for (size_t e = 0; e < 4; ++e) {
      if (p.packing.nibbles) {
        for (size_t pair = 0; pair < 4; ++pair) {
          const uint8_t byte = block[(pair * R + i) * 4 + e];
          o[8 * pair + e] = s * static_cast<float>(code_of(byte & 0x0F) - z);
          o[8 * pair + 4 + e] = s * static_cast<float>(code_of(byte >> 4) - z);
        }
      } else {
        for (size_t q = 0; q < 8; ++q) o[4 * q + e] = s * static_cast<float>(code_of(block[(q * R + i) * 4 + e]) - z);
      }
    }
  }
}

size_t PackedRowBytes(const QGemmPackedRows& p) {
  const size_t code_bytes = p.weights.cols * (p.packing.nibbles ? 1 : 2) / 2;
  return code_bytes + p.groups * (sizeof(float) + 1);
}

}  // namespace famq
