// Aligned heap buffers for large arrays that are streamed (packed weights, a
// model file read into memory): cache-line aligned, and from 2 MiB on placed
// on 2 MiB boundaries with transparent huge pages asked for, so that
// streaming them costs one TLB entry and one page fault per 2 MiB, not per
// 4 KiB. Freed with std::free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace famq {

inline constexpr size_t kCacheLine = 64;
inline constexpr size_t kHugePage = size_t{2} << 20;

struct FreeDeleter {
  void operator()(void* p) const;
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

// `bytes` (0 allowed) aligned to kCacheLine; with huge_pages and bytes >=
// kHugePage, rounded up to and aligned on kHugePage with MADV_HUGEPAGE advice
// (advice only: where THP is off the pages stay small). Not zero-filled.
// Returns nullptr when the allocation fails.
uint8_t* AllocateAligned(size_t bytes, bool huge_pages);

}  // namespace famq
