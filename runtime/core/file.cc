#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <utility>

namespace famq {
namespace {

std::string Errno() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

MappedFile::~MappedFile() {
  if (data_ != nullptr && size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr && size_ > 0) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

Result<MappedFile> MappedFile::Open(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + Errno());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError(path + ": cannot stat: " + Errno());
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + ": not a regular file");
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(st.st_size);
  if (file.size_ == 0) return file;  // nothing to map; data() stays null
  void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) {
    file.size_ = 0;
    return IoError(path + ": cannot map: " + Errno());
  }
  file.data_ = static_cast<const uint8_t*>(p);
  // A file cut between the stat and the mapping would fault on first touch: look again.
  struct stat again {};
  if (::fstat(fd.get(), &again) != 0 || again.st_size != st.st_size) {
    return IoError(path + ": changed size while it was being mapped; try again once it is complete");
  }
  return file;
}

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + Errno());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return IoError(path + ": cannot stat: " + Errno());
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return OutOfMemory(path + ": " + std::to_string(st.st_size) + " bytes is more than the " +
                       std::to_string(max_bytes) + "-byte limit for this file");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(path + ": read failed: " + Errno());
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Result<FileBytes> ReadFileBytes(const std::string& path, size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return IoError(path + ": cannot open: " + Errno());
  }
  struct stat before {};
  if (::fstat(fd.get(), &before) != 0) return IoError(path + ": cannot stat: " + Errno());
  if (!S_ISREG(before.st_mode)) return InvalidArgument(path + ": not a regular file");
  if (static_cast<uint64_t>(before.st_size) > max_bytes) {
    return OutOfMemory(path + ": " + std::to_string(before.st_size) + " bytes is more than the " +
                       std::to_string(max_bytes) + "-byte limit for this file");
  }
  FileBytes out;
  out.size = static_cast<size_t>(before.st_size);
  out.data.reset(AllocateAligned(out.size, /*huge_pages=*/true));
  if (out.data == nullptr) return OutOfMemory(path + ": cannot allocate " + std::to_string(out.size) + " bytes");
  size_t done = 0;
  while (done < out.size) {
    ssize_t n = ::read(fd.get(), out.data.get() + done, out.size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(path + ": read failed: " + Errno());
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  struct stat after {};
  if (::fstat(fd.get(), &after) != 0) return IoError(path + ": cannot stat: " + Errno());
  if (done != out.size || after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
      after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
    return IoError(path + ": changed while it was being read (" + std::to_string(before.st_size) + " bytes, then " +
                   std::to_string(after.st_size) + "); try again once it is complete");
  }
  return out;
}

Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoError(path + ": write failed: " + Errno());
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

namespace internal {
std::string (*g_temp_suffix_for_test)() = nullptr;
}  // namespace internal

namespace {

// 16 hex digits from the kernel's random source: the temporary name is not
// guessable, so nobody can plant a file or a link there in advance (and
// O_EXCL | O_NOFOLLOW refuse one anyway).
std::string RandomSuffix() {
  if (internal::g_temp_suffix_for_test != nullptr) return internal::g_temp_suffix_for_test();
  uint64_t r = 0;
  if (::getrandom(&r, sizeof(r), 0) != static_cast<ssize_t>(sizeof(r))) {
    // No entropy source (very old kernels): still unique per call; O_EXCL keeps it safe.
    static std::atomic<uint64_t> counter{0};
    r = (static_cast<uint64_t>(::getpid()) << 32) ^ static_cast<uint64_t>(::time(nullptr)) ^
        (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 0; i < 16; ++i) s[static_cast<size_t>(i)] = kHex[(r >> (4 * i)) & 0xF];
  return s;
}

// Removes the temporary file unless disarmed: every early return leaves nothing behind.
class UnlinkGuard {
 public:
  explicit UnlinkGuard(std::string path) : path_(std::move(path)) {}
  ~UnlinkGuard() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  UnlinkGuard(const UnlinkGuard&) = delete;
  UnlinkGuard& operator=(const UnlinkGuard&) = delete;
  void Disarm() { path_.clear(); }

 private:
  std::string path_;
};

}  // namespace

Status WriteFileAtomic(const std::string& path, const void* data, size_t size, unsigned mode) {
  if (path.empty() || path.back() == '/') return InvalidArgument("'" + path + "' is not a file name");
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  // Hidden, random, created exclusively and never through a link; private (0600) until fchmod.
  std::string tmp;
  int raw_fd = -1;
  for (int attempt = 0; attempt < 64 && raw_fd < 0; ++attempt) {
    tmp = JoinPath(dir, "." + base + ".tmp-" + RandomSuffix());
    raw_fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (raw_fd < 0 && errno != EEXIST) return IoError(path + ": cannot create a temporary file in " + dir + ": " + Errno());
  }
  if (raw_fd < 0) return IoError(path + ": no free temporary name in " + dir + " after 64 tries");
  Fd fd(raw_fd);
  UnlinkGuard remove_tmp(tmp);
  if (::fchmod(fd.get(), static_cast<mode_t>(mode & 07777)) != 0) return IoError(tmp + ": cannot set the mode: " + Errno());
  FAMQ_RETURN_IF_ERROR(WriteAll(fd.get(), data, size, tmp));
  if (::fsync(fd.get()) != 0) return IoError(tmp + ": fsync failed: " + Errno());
  if (::close(fd.release()) != 0) return IoError(tmp + ": close failed: " + Errno());
  // rename() replaces the directory entry: a symlink at `path` is replaced by
  // the new file, never written through.
  if (::rename(tmp.c_str(), path.c_str()) != 0) return IoError(path + ": rename failed: " + Errno());
  remove_tmp.Disarm();
  // The rename is durable only once the directory is.
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return IoError(path + ": written, but its directory cannot be opened to fsync: " + Errno());
  if (::fsync(dir_fd.get()) != 0 && errno != EINVAL) {
    return IoError(path + ": written, but fsync of its directory failed: " + Errno());
  }
  return Status::Ok();
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void ReleasePages(const void* p, size_t n) {
#if defined(MADV_DONTNEED)
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const auto end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
  if (end > begin) (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
  (void)p;
  (void)n;
#endif
}

void ReturnFreedMemory() {
#if defined(__GLIBC__)
  (void)malloc_trim(0);
#endif
}

}  // namespace famq
