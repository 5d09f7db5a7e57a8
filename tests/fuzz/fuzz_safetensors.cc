// libFuzzer target: the safetensors header parser on arbitrary bytes. Every
// accepted tensor must lie inside the input and have the size its shape says.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = famq::ParseSafetensors(data, size, "fuzz.safetensors");
  if (!r.ok()) return 0;
  for (const auto& [name, t] : *r) {
    if (t.data < data || t.data + t.num_bytes > data + size) std::abort();
    if (static_cast<uint64_t>(t.numel()) * famq::DTypeSize(t.dtype) != t.num_bytes) std::abort();
    volatile uint8_t sink = 0;
    if (t.num_bytes > 0) sink = static_cast<uint8_t>(t.data[0] ^ t.data[t.num_bytes - 1]);
    (void)sink;
  }
  return 0;
}
