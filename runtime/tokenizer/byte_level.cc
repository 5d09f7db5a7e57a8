#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace famq::byte_level {
namespace {

constexpr char32_t kAlphabetEnd = 0x144;  // one past the largest code point used

struct Tables {
  std::array<char32_t, 256> char_of_byte{};
  std::array<int16_t, kAlphabetEnd> byte_of_char{};
  std::array<std::array<char, 2>, 256> utf8_of_byte{};  // every alphabet char is 1-2 bytes of UTF-8
  std::array<uint8_t, 256> utf8_len{};
};

constexpr bool KeepsItself(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr Tables MakeTables() {
  Tables t;
  for (auto& v : t.byte_of_char) v = -1;
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = KeepsItself(b) ? static_cast<char32_t>(b) : next++;
    t.char_of_byte[b] = c;
    t.byte_of_char[c] = static_cast<int16_t>(b);
    if (c < 0x80) {
      t.utf8_of_byte[b] = {static_cast<char>(c), 0};
      t.utf8_len[b] = 1;
    } else {
      t.utf8_of_byte[b] = {static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
      t.utf8_len[b] = 2;
    }
  }
  return t;
}

constexpr Tables kTables = MakeTables();
static_assert(kTables.char_of_byte[' '] == 0x120, "space is spelled U+0120 (Ġ)");
static_assert(kTables.char_of_byte[0xAD] == 0x143, "the alphabet ends at U+0143");

}  // namespace

char32_t CharOfByte(uint8_t b) { return kTables.char_of_byte[b]; }

int ByteOfChar(char32_t cp) { return cp < kAlphabetEnd ? kTables.byte_of_char[cp] : -1; }

void AppendEncoded(std::string_view bytes, std::string* out) {
  for (char ch : bytes) {
    const auto b = static_cast<uint8_t>(ch);
    out->append(kTables.utf8_of_byte[b].data(), kTables.utf8_len[b]);
  }
}

bool AppendDecoded(std::string_view token, std::string* out) {
  const size_t mark = out->size();
  size_t pos = 0;
  while (pos < token.size()) {
    const int b = ByteOfChar(unicode::DecodeUtf8(token, &pos));
    if (b < 0) {
      out->resize(mark);
      return false;
    }
    out->push_back(static_cast<char>(b));
  }
  return true;
}

}  // namespace famq::byte_level
