#include "model/safetensors.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/json_parse.h"

namespace famq {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

namespace {

Status Bad(const std::string& origin, const std::string& what) {
  return InvalidFormat(origin + ": " + what);
}

// Validates one header entry; the view's data points at base + begin.
Result<TensorView> ParseEntry(const std::string& origin, const std::string& name,
                              const nlohmann::json& entry, const uint8_t* base, uint64_t data_size,
                              uint64_t* begin_out) {
  const std::string where = "tensor '" + name + "'";
  if (!entry.is_object()) return Bad(origin, where + ": header entry is not an object");
  auto dt = entry.find("dtype");
  auto sh = entry.find("shape");
  auto off = entry.find("data_offsets");
  if (dt == entry.end() || !dt->is_string()) return Bad(origin, where + ": missing string 'dtype'");
  if (sh == entry.end() || !sh->is_array()) return Bad(origin, where + ": missing array 'shape'");
  if (off == entry.end() || !off->is_array() || off->size() != 2) {
    return Bad(origin, where + ": 'data_offsets' must be [begin, end]");
  }
  TensorView t;
  t.name = name;
  t.file = origin;
  auto dtype = ParseSafetensorsDType(dt->get<std::string>());
  if (!dtype) {
    return Unsupported(origin + ": " + where + " has dtype '" + dt->get<std::string>() +
                       "'; famq reads F32, F16 and BF16");
  }
  t.dtype = *dtype;
  if (sh->size() > static_cast<size_t>(kMaxTensorRank)) {
    return Bad(origin, where + ": rank " + std::to_string(sh->size()) + " is absurd");
  }
  // numel must fit comfortably: bound it by the data size before multiplying.
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) return Bad(origin, where + ": shape entries must be non-negative integers");
    uint64_t v = d.get<uint64_t>();
    if (v > data_size && v != 0) {
      return Bad(origin, where + ": dimension " + std::to_string(v) + " exceeds the file's data size");
    }
    t.shape.push_back(static_cast<int64_t>(v));
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v) {
      return Bad(origin, where + ": shape overflows");
    }
    numel *= v;
  }
  for (const auto& o : *off) {
    if (!o.is_number_unsigned()) return Bad(origin, where + ": data_offsets must be non-negative integers");
  }
  uint64_t begin = (*off)[0].get<uint64_t>();
  uint64_t end = (*off)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    return Bad(origin, where + ": bytes [" + std::to_string(begin) + ", " + std::to_string(end) +
                           ") lie outside the data section of " + std::to_string(data_size) + " bytes");
  }
  if (numel > std::numeric_limits<uint64_t>::max() / DTypeSize(t.dtype) ||
      numel * DTypeSize(t.dtype) != end - begin) {
    return Bad(origin, where + ": shape " + t.ShapeString() + " of " + DTypeName(t.dtype) + " needs " +
                           std::to_string(numel) + " elements but the byte range holds " +
                           std::to_string(end - begin) + " bytes");
  }
  t.data = base + begin;
  t.num_bytes = end - begin;
  *begin_out = begin;
  return t;
}

}  // namespace

Result<std::map<std::string, TensorView>> ParseSafetensors(const uint8_t* data, uint64_t size,
                                                           const std::string& origin) {
  if (size < 8) return Bad(origin, "file is " + std::to_string(size) + " bytes, too short for a safetensors header");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return Bad(origin, "header length " + std::to_string(header_len) + " is absurd (limit " +
                           std::to_string(kMaxSafetensorsHeaderBytes) + ")");
  }
  if (header_len > size - 8) {
    return Bad(origin, "header length " + std::to_string(header_len) + " runs past the end of the " +
                           std::to_string(size) + "-byte file (truncated?)");
  }
  const char* h = reinterpret_cast<const char*>(data + 8);
  nlohmann::json header;
  if (Status s = ParseJson(std::string_view(h, header_len), "header", &header); !s.ok()) {
    return Bad(origin, s.message());
  }
  if (!header.is_object()) return Bad(origin, "header is not a JSON object");

  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::map<std::string, TensorView> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    uint64_t begin = 0;
    FAMQ_ASSIGN_OR_RETURN(TensorView t, ParseEntry(origin, it.key(), it.value(), base, data_size, &begin));
    if (t.num_bytes > 0) ranges.emplace_back(begin, begin + t.num_bytes);
    tensors.emplace(it.key(), std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return Bad(origin, "two tensors share bytes at offset " + std::to_string(ranges[i].first));
    }
  }
  return tensors;
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  FAMQ_ASSIGN_OR_RETURN(f.file_, MappedFile::Open(path));
  FAMQ_ASSIGN_OR_RETURN(f.tensors_, ParseSafetensors(f.file_.data(), f.file_.size(), path));
  return f;
}

}  // namespace famq
