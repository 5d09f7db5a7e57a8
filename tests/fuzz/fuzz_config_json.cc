// libFuzzer target: config.json parsing on arbitrary text. An accepted config
// must satisfy the invariants the engine relies on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)famq::ConfigSha256(text);  // parses and dumps the whole value
  auto r = famq::ParseModelConfig(text, "fuzz/config.json");
  if (!r.ok()) return 0;
  const famq::ModelConfig& c = *r;
  if (c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 || c.head_dim <= 0 ||
      c.intermediate_size <= 0 || c.vocab_size <= 0 || c.num_heads % c.num_kv_heads != 0) {
    std::abort();
  }
  (void)c.NumParameters();
  return 0;
}
