#include "export/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/file.h"

namespace famq::gguf {
namespace {

constexpr uint64_t kAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT

uint64_t AlignUp(uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; }

template <typename T>
void Put(std::string* out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian hosts only (all famq targets)
  out->append(b, sizeof(T));
}

void PutString(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

std::string ErrnoText() { return std::strerror(errno); }

}  // namespace

const char* GgmlTypeName(GgmlType t) {
  switch (t) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kQ4_0: return "Q4_0";
    case GgmlType::kQ4_1: return "Q4_1";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kBF16: return "BF16";
  }
  return "?";
}

size_t RowBytes(GgmlType t, uint64_t ne0) {
  switch (t) {
    case GgmlType::kF32: return static_cast<size_t>(ne0) * 4;
    case GgmlType::kF16:
    case GgmlType::kBF16: return static_cast<size_t>(ne0) * 2;
    case GgmlType::kQ4_0: return static_cast<size_t>(ne0 / kQK) * sizeof(BlockQ4_0);
    case GgmlType::kQ4_1: return static_cast<size_t>(ne0 / kQK) * sizeof(BlockQ4_1);
    case GgmlType::kQ8_0: return static_cast<size_t>(ne0 / kQK) * sizeof(BlockQ8_0);
  }
  return 0;
}

void PackQ4_0(const uint8_t nibbles[kQK], float d, BlockQ4_0* out) {
  out->d = F32ToF16(d);
  for (int j = 0; j < kQK / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>((nibbles[j] & 0x0f) | ((nibbles[j + kQK / 2] & 0x0f) << 4));
  }
}

void PackQ4_1(const uint8_t nibbles[kQK], float d, float m, BlockQ4_1* out) {
  out->d = F32ToF16(d);
  out->m = F32ToF16(m);
  for (int j = 0; j < kQK / 2; ++j) {
    out->qs[j] = static_cast<uint8_t>((nibbles[j] & 0x0f) | ((nibbles[j + kQK / 2] & 0x0f) << 4));
  }
}

void PackQ8_0(const int8_t codes[kQK], float d, BlockQ8_0* out) {
  out->d = F32ToF16(d);
  std::memcpy(out->qs, codes, kQK);
}

void Writer::Key(const std::string& key, ValueType type) {
  keys_.push_back(key);
  PutString(&kv_, key);
  Put<uint32_t>(&kv_, static_cast<uint32_t>(type));
  ++n_kv_;
}

void Writer::AddString(const std::string& key, const std::string& value) {
  Key(key, ValueType::kString);
  PutString(&kv_, value);
}
void Writer::AddU32(const std::string& key, uint32_t value) {
  Key(key, ValueType::kUint32);
  Put(&kv_, value);
}
void Writer::AddI32(const std::string& key, int32_t value) {
  Key(key, ValueType::kInt32);
  Put(&kv_, value);
}
void Writer::AddU64(const std::string& key, uint64_t value) {
  Key(key, ValueType::kUint64);
  Put(&kv_, value);
}
void Writer::AddF32(const std::string& key, float value) {
  Key(key, ValueType::kFloat32);
  Put(&kv_, value);
}
void Writer::AddBool(const std::string& key, bool value) {
  Key(key, ValueType::kBool);
  Put<uint8_t>(&kv_, value ? 1 : 0);
}
void Writer::AddStringArray(const std::string& key, const std::vector<std::string>& values) {
  Key(key, ValueType::kArray);
  Put<uint32_t>(&kv_, static_cast<uint32_t>(ValueType::kString));
  Put<uint64_t>(&kv_, values.size());
  for (const std::string& v : values) PutString(&kv_, v);
}
void Writer::AddI32Array(const std::string& key, const std::vector<int32_t>& values) {
  Key(key, ValueType::kArray);
  Put<uint32_t>(&kv_, static_cast<uint32_t>(ValueType::kInt32));
  Put<uint64_t>(&kv_, values.size());
  for (int32_t v : values) Put(&kv_, v);
}

Status Writer::AddTensor(const std::string& name, std::vector<uint64_t> ne, GgmlType type, Producer produce) {
  if (ne.empty() || ne.size() > 4) return Internal(name + ": a GGUF tensor has 1 to 4 dimensions");
  const bool blocks = type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0;
  if (blocks && ne[0] % kQK != 0) {
    return Internal(name + ": " + GgmlTypeName(type) + " rows must be a multiple of 32 long");
  }
  for (const TensorInfo& t : tensors_) {
    if (t.name == name) return Internal(name + ": tensor added twice");
  }
  uint64_t rows = 1;
  for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
  TensorInfo t;
  t.name = name;
  t.type = type;
  t.bytes = RowBytes(type, ne[0]) * rows;
  t.ne = std::move(ne);
  t.offset = data_bytes_;
  t.produce = std::move(produce);
  data_bytes_ = AlignUp(data_bytes_ + t.bytes);
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Result<uint64_t> Writer::WriteAtomic(const std::string& path) const {
  std::string header;
  header.append("GGUF", 4);
  Put<uint32_t>(&header, 3);
  Put<uint64_t>(&header, tensors_.size());
  Put<uint64_t>(&header, n_kv_);
  header += kv_;
  for (const TensorInfo& t : tensors_) {
    PutString(&header, t.name);
    Put<uint32_t>(&header, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t n : t.ne) Put<uint64_t>(&header, n);
    Put<uint32_t>(&header, static_cast<uint32_t>(t.type));
    Put<uint64_t>(&header, t.offset);
  }
  header.resize(static_cast<size_t>(AlignUp(header.size())), '\0');

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(tmp + ": cannot create: " + ErrnoText());
  auto fail = [&](Status s) -> Status {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (Status s = WriteAll(fd, header.data(), header.size(), tmp); !s.ok()) return fail(s);
  uint64_t written = header.size();
  std::vector<uint8_t> bytes;
  static const char kZeros[kAlignment] = {};
  for (const TensorInfo& t : tensors_) {
    bytes.clear();
    if (Status s = t.produce(&bytes); !s.ok()) return fail(s);
    if (bytes.size() != t.bytes) {
      return fail(Internal(t.name + ": produced " + std::to_string(bytes.size()) + " bytes, expected " +
                           std::to_string(t.bytes)));
    }
    if (Status s = WriteAll(fd, bytes.data(), bytes.size(), tmp); !s.ok()) return fail(s);
    const uint64_t pad = AlignUp(t.bytes) - t.bytes;
    if (Status s = WriteAll(fd, kZeros, static_cast<size_t>(pad), tmp); !s.ok()) return fail(s);
    written += t.bytes + pad;
  }
  if (::fsync(fd) != 0) return fail(IoError(tmp + ": fsync failed: " + ErrnoText()));
  if (::close(fd) != 0) {
    const std::string err = ErrnoText();
    ::unlink(tmp.c_str());
    return IoError(tmp + ": close failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = ErrnoText();
    ::unlink(tmp.c_str());
    return IoError(path + ": rename failed: " + err);
  }
  return written;
}

}  // namespace famq::gguf
