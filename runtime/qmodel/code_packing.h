// How a .famq file stores the signed codes of a quantized linear
// (QuantLinear.codes, schema/qmodel.fbs), at their true size:
//   8 bits: one per byte, two's complement;
//   4 bits: two per byte, even index in the low nibble (two's complement nibble);
//   6, 3 and 2 bits: a little-endian bit stream of unsigned codes u = c + 2^(bits-1)
//     in [0, 2^bits): code i occupies stream bits [i*bits, (i+1)*bits), stream
//     bit j is bit (j % 8) of byte j / 8, the code's least significant bit
//     first; unused bits of the last byte are 0. So 6 bits: 4 codes per 3
//     bytes, 3 bits: 8 codes per 3 bytes, 2 bits: 4 codes per byte. A run of
//     32 codes starting at a multiple of 32 is 4 * bits whole bytes (the
//     kernels' packing decodes a 32-column block from there).
//   6 bits is for the embedding / head only (qmodel.cc refuses 6-bit block
//   linears); 2 and 3 bits for block linears only.
#pragma once

#include <cstddef>
#include <cstdint>

namespace famq {

// Whether a file may hold codes of this width (2, 3, 4, 6 or 8).
bool StoredCodeBitsSupported(int bits);

// Bytes that `count` codes of `bits` (supported) take: ceil(count * bits / 8).
size_t PackedCodeBytes(int bits, size_t count);

// Whether `bits` is stored as the bit stream above (2, 3 or 6).
inline bool IsBitStreamWidth(int bits) { return bits == 2 || bits == 3 || bits == 6; }

// Packs `count` codes (each in [-2^(bits-1), 2^(bits-1) - 1]; out-of-range codes
// are reduced modulo 2^bits) into out[PackedCodeBytes(bits, count)].
void PackCodes(int bits, const int8_t* codes, size_t count, uint8_t* out);

// The inverse: reads PackedCodeBytes(bits, count) bytes of `in` into
// codes[count]. Every bit pattern decodes to a code in range.
void UnpackCodes(int bits, const uint8_t* in, size_t count, int8_t* codes);

}  // namespace famq
