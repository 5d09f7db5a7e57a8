// Fast non-cryptographic checksums for integrity data (corruption and
// accidental tampering; authenticity needs a signature). XXH64 is Yann
// Collet's xxHash64, written out here from its specification
// (github.com/Cyan4973/xxHash, doc/xxhash_spec.md): a scalar loop of 64-bit
// multiply-rotate rounds over four lanes (docs/BENCHMARKS.md has its speed).
// The tests hold it to the reference library's values.
#pragma once

#include <cstddef>
#include <cstdint>

namespace famq {

// XXH64 of `size` bytes (little-endian reads on every platform).
uint64_t Xxh64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace famq
