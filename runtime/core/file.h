// Read-only file mapping and whole-file reads, with errors that name the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/aligned_buffer.h"
#include "core/status.h"

namespace famq {

// A read-only, private mmap of a whole file. Move-only; unmaps on destruction.
// MAP_PRIVATE does not protect against the file changing underneath: pages
// not yet read show a later in-place write, and a page past a later
// truncation raises SIGBUS when touched. Open re-checks the size after
// mapping; for files that must survive changes, use ReadFileBytes (famq's
// quantized models do; model directories' safetensors are still mapped:
// docs/SECURITY.md).
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

// A whole file read into private memory: later changes to the file, even a
// truncation, cannot reach it (unlike a mapping, which dies of SIGBUS).
struct FileBytes {
  // Not zero-filled first; an AllocateAligned buffer with huge pages
  // (core/aligned_buffer.h): reading a 450 MB model faults 2 MiB at a time,
  // not 4 KiB (the read's system time about halves on the build machine).
  AlignedBuffer data;
  size_t size = 0;
};
// Reads a whole (binary) file; refuses files larger than max_bytes
// (kOutOfMemory) and files whose size or modification time changed while
// they were read (kIoError: "changed while it was being read").
Result<FileBytes> ReadFileBytes(const std::string& path, size_t max_bytes);

// Gives the whole pages inside [p, p + n) back to the system (madvise
// MADV_DONTNEED; partial pages at either end stay). Private anonymous memory
// (a file read into memory, a vector) reads as zeros afterwards; a private
// read-only file mapping (MappedFile) reads the file's bytes again, faulted
// back in from the page cache. Memory that is not mapped by this process
// must not be passed. A no-op where madvise is missing.
void ReleasePages(const void* p, size_t n);

// Hands memory the process has freed back to the system (glibc: malloc_trim,
// which also returns free chunks in the middle of the heap; large buffers
// freed there otherwise stay resident). For the ends of long phases that
// freed much (a finalized block, each record serialized); a no-op elsewhere.
void ReturnFreedMemory();

// Writes `size` bytes to `path` atomically: readers see the old file or the
// new one, never a partial one, and a crash leaves no temporary file behind
// (except after a power loss mid-write). The bytes go to a new file beside
// `path` with a random hidden name (".<name>.tmp-<16 hex digits>"), created
// with O_CREAT | O_EXCL | O_NOFOLLOW (a planted file or symlink is never
// opened or followed; a taken name is retried), given exactly `mode` with
// fchmod (umask does not widen or narrow it: 0600 for a private key even if
// a 0644 file was there), fsynced and renamed over `path`; then the directory
// is fsynced. If `path` is a symlink, the link itself is replaced by the new
// file; its old target is left untouched. On any failure before the rename
// the temporary file is removed. Errors: kInvalidArgument (no file name),
// kIoError (naming the file and the failing step).
Status WriteFileAtomic(const std::string& path, const void* data, size_t size, unsigned mode = 0644);

namespace internal {
// Tests only: when set, supplies the temporary-name suffix instead of the random source.
extern std::string (*g_temp_suffix_for_test)();
}  // namespace internal

// Writes all `size` bytes to the open descriptor `fd` (retrying short writes
// and EINTR); `path` names it in errors. No fsync.
Status WriteAll(int fd, const void* data, size_t size, const std::string& path);

// Joins a directory and a file name with exactly one '/'.
std::string JoinPath(const std::string& dir, const std::string& name);
bool FileExists(const std::string& path);

}  // namespace famq
