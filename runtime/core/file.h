// Read-only file mapping and whole-file reads, with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace famq {

// A read-only, private mmap of a whole file. Move-only; unmaps on destruction.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  static Result<MappedFile> Open(const std::string& path);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (text) file; refuses files larger than max_bytes.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes = size_t{1} << 30);

// Writes `size` bytes to `path` atomically: a temporary file beside it
// (created with `mode`, e.g. 0600 for a private key), fsync, rename. Readers
// see the old file or the new one, never a partial one.
Status WriteFileAtomic(const std::string& path, const void* data, size_t size, unsigned mode = 0644);

// Writes all `size` bytes to the open descriptor `fd` (retrying short writes
// and EINTR); `path` names it in errors. No fsync.
Status WriteAll(int fd, const void* data, size_t size, const std::string& path);

// Joins a directory and a file name with exactly one '/'.
std::string JoinPath(const std::string& dir, const std::string& name);
bool FileExists(const std::string& path);

}  // namespace famq
