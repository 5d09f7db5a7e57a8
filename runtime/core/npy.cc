#include "core/npy.h"

#include <cstring>
#include <limits>

#include "core/file.h"

namespace famq {

std::string EncodeNpyF32(const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  size_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
    count *= static_cast<size_t>(shape[i]);
  }
  dict += "), }";
  // Magic (6) + version (2) + header length (2) + dict + padding + '\n', total a multiple of 64.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  const uint16_t hlen = static_cast<uint16_t>(dict.size());
  out += static_cast<char>(hlen & 0xff);
  out += static_cast<char>(hlen >> 8);
  out += dict;
  const size_t header = out.size();
  out.resize(header + count * sizeof(float));
  // .npy is little-endian; famq's targets (x86-64, AArch64, ARMv7) all are.
  if (count > 0) std::memcpy(out.data() + header, data, count * sizeof(float));
  return out;
}

Status WriteNpyF32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  const std::string bytes = EncodeNpyF32(data, shape);
  return WriteFileAtomic(path, bytes.data(), bytes.size());
}

Result<NpyF32> ParseNpyF32(std::string_view bytes, const std::string& origin) {
  auto bad = [&](const std::string& why) { return InvalidFormat(origin + ": not a float32 .npy file: " + why); };
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6)) return bad("no NUMPY magic");
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (size_t{static_cast<uint8_t>(bytes[9])} << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    for (int i = 0; i < 4; ++i) header_len |= size_t{static_cast<uint8_t>(bytes[8 + i])} << (8 * i);
    offset = 12;
  } else {
    return bad("format version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) return bad("truncated header");
  const std::string_view dict = bytes.substr(offset, header_len);
  if (dict.find("'descr': '<f4'") == std::string_view::npos) return bad("dtype is not '<f4'");
  if (dict.find("'fortran_order': False") == std::string_view::npos) return bad("not C order");
  const size_t open = dict.find("'shape': (");
  if (open == std::string_view::npos) return bad("no shape");
  size_t pos = open + 10;
  NpyF32 out;
  uint64_t count = 1;
  while (pos < dict.size() && dict[pos] != ')') {
    if (dict[pos] == ' ' || dict[pos] == ',') {
      ++pos;
      continue;
    }
    uint64_t dim = 0;
    size_t digits = 0;
    while (pos < dict.size() && dict[pos] >= '0' && dict[pos] <= '9' && digits < 12) {
      dim = dim * 10 + static_cast<uint64_t>(dict[pos] - '0');
      ++pos;
      ++digits;
    }
    if (digits == 0 || digits == 12 || out.shape.size() == 8) return bad("malformed shape");
    count *= dim;
    if (count > (uint64_t{1} << 34) || count > std::numeric_limits<size_t>::max() / sizeof(float)) {
      return bad("absurd shape");
    }
    out.shape.push_back(static_cast<int64_t>(dim));
  }
  if (pos >= dict.size()) return bad("unterminated shape");
  const size_t data_begin = offset + header_len;
  if (bytes.size() - data_begin != count * sizeof(float)) {
    return bad("holds " + std::to_string(bytes.size() - data_begin) + " data bytes, shape needs " +
               std::to_string(count * sizeof(float)));
  }
  out.data.resize(count);
  if (count > 0) std::memcpy(out.data.data(), bytes.data() + data_begin, count * sizeof(float));
  return out;
}

Result<NpyF32> ReadNpyF32(const std::string& path) {
  FAMQ_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, std::numeric_limits<size_t>::max() / 2));
  return ParseNpyF32(bytes, path);
}

}  // namespace famq
