// GGUF (version 3) files as llama.cpp / ggml read them, written by famq-rt
// export (docs/GGUF.md). The container and the three block formats famq's
// weight-only schemes map onto exactly, as a scalar spec:
//
//   file   = "GGUF" u32 version=3, u64 n_tensors, u64 n_kv,
//            n_kv x (string key, u32 type, value),
//            n_tensors x (string name, u32 n_dims, u64 ne[n_dims] (ne[0] innermost),
//                         u32 ggml_type, u64 offset into the data section),
//            zero padding to general.alignment (32), data section (each tensor
//            at its offset, a multiple of 32, zero padded between).
//   string = u64 length + bytes (no terminator); everything little-endian.
//
//   Q4_0 block (32 weights): fp16 d, 16 bytes qs; weight j (< 16) is the low
//        nibble of qs[j], weight j + 16 its high nibble; w = d * (nibble - 8).
//   Q4_1 block (32 weights): fp16 d, fp16 m, 16 bytes qs (same nibble order);
//        w = d * nibble + m.
//   Q8_0 block (32 weights): fp16 d, 32 int8 qs; w = d * qs[j].
//
// Writing streams: the header is written from the tensor list (names, shapes,
// types: sizes are known up front), then each tensor's bytes are produced one
// at a time by its callback, so peak memory is one tensor, not the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/dtype.h"

namespace famq::gguf {

// ggml tensor types famq writes (ggml.h `enum ggml_type`).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kBF16 = 30 };
const char* GgmlTypeName(GgmlType t);

inline constexpr int kQK = 32;  // weights per Q4_0 / Q4_1 / Q8_0 block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ4_0) == 2 + 16, "Q4_0 block: fp16 d + 16 bytes");
static_assert(sizeof(BlockQ4_1) == 2 + 2 + 16, "Q4_1 block: fp16 d, fp16 m + 16 bytes");
static_assert(sizeof(BlockQ8_0) == 2 + 32, "Q8_0 block: fp16 d + 32 int8");

// IEEE binary16 of `f`, rounded to nearest even (overflow: infinity): model/dtype.h's.
using ::famq::F32ToF16;

// Bytes of a row of `ne0` elements of type t (ne0 a multiple of 32 for the
// block types).
size_t RowBytes(GgmlType t, uint64_t ne0);

// Blocks of one row: `codes` holds 32 unsigned-range codes per block.
// Q4_0: nibbles in [0, 15] (famq's signed code + 8), scale d.
void PackQ4_0(const uint8_t nibbles[kQK], float d, BlockQ4_0* out);
// Q4_1: nibbles in [0, 15], w = d * nibble + m.
void PackQ4_1(const uint8_t nibbles[kQK], float d, float m, BlockQ4_1* out);
// Q8_0: signed codes, scale d.
void PackQ8_0(const int8_t codes[kQK], float d, BlockQ8_0* out);

// GGUF metadata value types (gguf.h `enum gguf_type`).
enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

class Writer {
 public:
  // Metadata, written in the order added. Keys must be unique.
  void AddString(const std::string& key, const std::string& value);
  void AddU32(const std::string& key, uint32_t value);
  void AddI32(const std::string& key, int32_t value);
  void AddU64(const std::string& key, uint64_t value);
  void AddF32(const std::string& key, float value);
  void AddBool(const std::string& key, bool value);
  void AddStringArray(const std::string& key, const std::vector<std::string>& values);
  void AddI32Array(const std::string& key, const std::vector<int32_t>& values);

  // A tensor of shape ne (ne[0] innermost, i.e. the columns of a matrix).
  // `produce` fills exactly the tensor's byte size when the data is written.
  using Producer = std::function<Status(std::vector<uint8_t>* bytes)>;
  Status AddTensor(const std::string& name, std::vector<uint64_t> ne, GgmlType type, Producer produce);

  // Writes the file: a temporary file beside `path`, fsync, rename. On any
  // error (a producer's included) the temporary file is removed and `path` is
  // untouched. Returns the bytes written.
  Result<uint64_t> WriteAtomic(const std::string& path) const;

  size_t tensor_count() const { return tensors_.size(); }

 private:
  struct TensorInfo {
    std::string name;
    std::vector<uint64_t> ne;
    GgmlType type;
    uint64_t bytes = 0;
    uint64_t offset = 0;
    Producer produce;
  };
  void Key(const std::string& key, ValueType type);
  std::string kv_;  // serialized key/value pairs
  uint64_t n_kv_ = 0;
  std::vector<std::string> keys_;
  std::vector<TensorInfo> tensors_;
  uint64_t data_bytes_ = 0;
};

}  // namespace famq::gguf
