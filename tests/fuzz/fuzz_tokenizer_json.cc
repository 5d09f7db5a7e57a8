// libFuzzer target: tokenizer.json loading on arbitrary text. A tokenizer that
// loads must encode a fixed multilingual text (or refuse it with a status),
// produce only ids below vocab_size, and decode them to valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

constexpr std::string_view kText =
    "Hello world's 123  x\n\n y\r\n\tIt'LL caf\xC3\xA9 e\xCC\x81 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
    "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 "
    "<|im_start|>user<|im_end|><think></think> <|im_sta \xC2\xA0\xC2\x85\xEF\xBB\xBF 1,000,000.5 ";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  auto t = famq::Tokenizer::LoadJson(json, "fuzz/tokenizer.json");
  if (!t.ok()) return 0;
  const int32_t vocab = t->vocab_size();
  if (vocab < 0) std::abort();
  if (t->ContentHash().size() != 64) std::abort();
  std::vector<int32_t> ids;
  if (!t->Encode(kText, &ids).ok()) return 0;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab) std::abort();
    (void)t->TokenText(id);
    (void)t->IsSpecial(id);
  }
  const std::string text = t->Decode(ids);
  if (!famq::unicode::IsValidUtf8(text)) std::abort();
  if (ids.empty()) std::abort();  // kText is not empty and every byte must become a token
  // The input itself as text (its first 64 KiB): fuzzed Unicode (runs of
  // combining marks, invalid UTF-8) reaches normalization and pre-tokenization.
  ids.clear();
  (void)t->Encode(json.substr(0, size_t{64} << 10), &ids);
  return 0;
}
