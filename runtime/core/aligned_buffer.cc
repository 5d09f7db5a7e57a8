#include "core/aligned_buffer.h"

#include <algorithm>
#include <cstdlib>

#if defined(__linux__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

namespace famq {

void FreeDeleter::operator()(void* p) const { std::free(p); }

// posix_memalign rather than std::aligned_alloc: the latter needs Android API 28.
uint8_t* AllocateAligned(size_t bytes, bool huge_pages) {
  const bool huge = huge_pages && bytes >= kHugePage;
  const size_t size = huge ? (bytes + kHugePage - 1) / kHugePage * kHugePage : std::max<size_t>(bytes, 1);
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePage : kCacheLine, size) != 0) return nullptr;
#if defined(MADV_HUGEPAGE)
  if (huge) (void)madvise(p, size, MADV_HUGEPAGE);
#endif
  return static_cast<uint8_t*>(p);
}

}  // namespace famq
