#include "qmodel/code_packing.h"

#include <cstring>

namespace famq {

bool StoredCodeBitsSupported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 6 || bits == 8; }

size_t PackedCodeBytes(int bits, size_t count) {
  return (count * static_cast<size_t>(bits) + 7) / 8;
}

void PackCodes(int bits, const int8_t* codes, size_t count, uint8_t* out) {
  const size_t bytes = PackedCodeBytes(bits, count);
  if (bits == 8) {
    if (count > 0) std::memcpy(out, codes, count);
    return;
  }
  std::memset(out, 0, bytes);
  if (bits == 4) {
    for (size_t i = 0; i < count; ++i) {
      const auto nib = static_cast<uint8_t>(static_cast<uint8_t>(codes[i]) & 0x0F);
      out[i / 2] |= static_cast<uint8_t>(i % 2 == 0 ? nib : nib << 4);
    }
    return;
  }
  const unsigned mask = (1u << bits) - 1u;
  const int offset = 1 << (bits - 1);
  for (size_t i = 0; i < count; ++i) {
    const unsigned u = static_cast<unsigned>(codes[i] + offset) & mask;
    const size_t bit = i * static_cast<size_t>(bits);
    const unsigned shifted = u << (bit % 8);  // at most 6 + 7 bits: spans two bytes
    out[bit / 8] |= static_cast<uint8_t>(shifted & 0xFFu);
    if ((shifted >> 8) != 0) out[bit / 8 + 1] |= static_cast<uint8_t>(shifted >> 8);
  }
}

void UnpackCodes(int bits, const uint8_t* in, size_t count, int8_t* codes) {
  if (bits == 8) {
    if (count > 0) std::memcpy(codes, in, count);
    return;
  }
  if (bits == 4) {
    for (size_t i = 0; i < count; ++i) {
      const int nib = (i % 2 == 0) ? (in[i / 2] & 0x0F) : (in[i / 2] >> 4);
      codes[i] = static_cast<int8_t>(nib >= 8 ? nib - 16 : nib);
    }
    return;
  }
  const size_t bytes = PackedCodeBytes(bits, count);
  const unsigned mask = (1u << bits) - 1u;
  const int offset = 1 << (bits - 1);
  for (size_t i = 0; i < count; ++i) {
    const size_t bit = i * static_cast<size_t>(bits);
    unsigned window = in[bit / 8];
    if (bit / 8 + 1 < bytes) window |= static_cast<unsigned>(in[bit / 8 + 1]) << 8;
    const unsigned u = (window >> (bit % 8)) & mask;
    codes[i] = static_cast<int8_t>(static_cast<int>(u) - offset);
  }
}

}  // namespace famq
