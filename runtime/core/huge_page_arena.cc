#include "core/huge_page_arena.h"

namespace famq {

HugePageArena::HugePageArena(size_t chunk_bytes) : chunk_bytes_(chunk_bytes < kHugePage ? kHugePage : chunk_bytes) {}

uint8_t* HugePageArena::Allocate(size_t bytes) {
  const size_t size = (bytes + kCacheLine - 1) / kCacheLine * kCacheLine;
  std::lock_guard<std::mutex> lock(mu_);
  if (size > left_) {
    // A request larger than a chunk gets its own, and the shared chunk's rest
    // stays available; otherwise a new shared chunk (the old one's rest is
    // never touched, so it takes no memory).
    const size_t chunk = size > chunk_bytes_ ? size : chunk_bytes_;
    AlignedBuffer buffer(AllocateAligned(chunk, /*huge_pages=*/true));
    if (!buffer) return nullptr;
    uint8_t* p = buffer.get();
    chunks_.push_back(std::move(buffer));
    reserved_ += chunk;
    if (size > chunk_bytes_) return p;
    next_ = p;
    left_ = chunk;
  }
  uint8_t* p = next_;
  next_ += size;
  left_ -= size;
  return p;
}

size_t HugePageArena::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}

}  // namespace famq
