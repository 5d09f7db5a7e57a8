// One engine's many packed weight arrays in a few large huge-page chunks.
//
// A Qwen3-0.6B-shaped model has 196 block linears of 0.5-1.7 MiB packed:
// each below the 2 MiB that AllocateAligned places on huge pages, so each
// was faulted in 4 KiB at a time when packed (about a third of building the
// engine, measured with perf on the build machine) and read through 4 KiB
// TLB entries by every decoded token. Carved from shared chunks, they fault
// and stream 2 MiB at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/aligned_buffer.h"

namespace famq {

class HugePageArena {
 public:
  // chunk_bytes: the size of each chunk (AllocateAligned with huge pages);
  // a larger request gets a chunk of its own.
  explicit HugePageArena(size_t chunk_bytes = size_t{32} << 20);
  HugePageArena(const HugePageArena&) = delete;
  HugePageArena& operator=(const HugePageArena&) = delete;

  // `bytes` (rounded up to kCacheLine) aligned to kCacheLine, valid as long
  // as the arena lives; not zero-filled. Thread-safe. Returns nullptr when
  // a chunk cannot be allocated.
  uint8_t* Allocate(size_t bytes);

  // Bytes of all chunks (address space; pages never touched take no memory).
  size_t reserved_bytes() const;

 private:
  const size_t chunk_bytes_;
  mutable std::mutex mu_;
  std::vector<AlignedBuffer> chunks_;
  uint8_t* next_ = nullptr;  // in the last shared chunk
  size_t left_ = 0;          // bytes after next_ in it
  size_t reserved_ = 0;
};

}  // namespace famq
