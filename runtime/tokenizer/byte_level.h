// GPT-2's byte-level alphabet: every byte 0..255 maps to one printable code
// point (U+0021..U+0143) so that BPE vocabularies can be stored as text.
// Printable Latin-1 bytes map to themselves; the rest (controls, space, DEL,
// NBSP, soft hyphen) to U+0100 upwards in byte order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace famq::byte_level {

// The code point byte `b` is written as.
char32_t CharOfByte(uint8_t b);

// The byte that code point `cp` stands for, or -1 if cp is not in the alphabet.
int ByteOfChar(char32_t cp);

// Appends the byte-level spelling of raw `bytes` (UTF-8) to *out.
void AppendEncoded(std::string_view bytes, std::string* out);

// Appends the raw bytes that byte-level text `token` (valid UTF-8) spells.
// Returns false (appending nothing) if a character is outside the alphabet.
bool AppendDecoded(std::string_view token, std::string* out);

}  // namespace famq::byte_level
