// Reader for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}}, then the tensor bytes.
// Every entry is checked (dtype known, shape sane, byte range inside the file
// and equal to numel * element size, ranges disjoint) before anyone can use it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "model/dtype.h"

namespace famq {

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapped file; unaligned in general
  uint64_t num_bytes = 0;
  std::string file;  // path of the file holding it, for messages

  int64_t numel() const;
  std::string ShapeString() const;  // "[4096, 1024]"
};

// Caps applied to hostile headers.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;
inline constexpr int kMaxTensorRank = 8;

// Parses and validates the header of a safetensors image held in memory.
// `origin` names the file in messages. Views point into `data`.
Result<std::map<std::string, TensorView>> ParseSafetensors(const uint8_t* data, uint64_t size,
                                                           const std::string& origin);

// A mapped safetensors file with its validated tensor table.
class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::string& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace famq
