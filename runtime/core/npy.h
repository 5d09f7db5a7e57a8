// Reader and writer for NumPy .npy files (format 1.0, little-endian float32,
// C order): golden logits and other float arrays exchanged with scripts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace famq {

// Serializes a float32 array of `shape` into .npy bytes.
std::string EncodeNpyF32(const float* data, const std::vector<int64_t>& shape);
// Writes it atomically (temp file, fsync, rename).
Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

struct NpyF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order
};
// Parses .npy bytes holding '<f4' data in C order; anything else (other dtype,
// Fortran order, truncated data, absurd shape) is an InvalidFormat naming `origin`.
Result<NpyF32> ParseNpyF32(std::string_view bytes, const std::string& origin);
Result<NpyF32> ReadNpyF32(const std::string& path);

}  // namespace famq
