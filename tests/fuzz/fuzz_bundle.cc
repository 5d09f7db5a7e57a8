// libFuzzer target: the device-side bundle reader (runtime/bundle/bundle.h) on
// arbitrary bytes. The signature check is off so that mutated payloads reach
// the payload verifier and invariant checks; every field of an accepted
// bundle is then read.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bundle/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  famq::BundleVerifyOptions o;
  o.check_signature = false;
  o.allow_unsigned = true;
  auto b = famq::Bundle::FromBytes(std::vector<uint8_t>(data, data + size), "fuzz", o);
  if (!b.ok()) return 0;
  const famq::fb::Payload& p = b->payload();
  uint64_t sink = p.num_originals() + p.num_kept() + p.total_tokens();
  sink += p.family()->tokenizer_sha256()->size();
  if (p.family()->target() && p.family()->target()->name()) sink += p.family()->target()->name()->size();
  sink += p.recipe()->seq_len();
  for (const famq::fb::Sample* s : *p.samples()) {
    for (int32_t t : *s->tokens()) sink += static_cast<uint32_t>(t);
    for (uint8_t m : *s->token_mask()) sink += m;
    if (s->scores()) sink += static_cast<uint64_t>(s->scores()->generated_tokens());
    if (s->text()) sink += s->text()->size();
  }
  volatile uint64_t keep = sink;
  (void)keep;
  return 0;
}
