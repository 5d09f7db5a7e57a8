// Python str helpers shared by the lexer and the filters of famq's Jinja2
// subset (line breaks, str.isspace(), str.strip()). Internal to chat_template/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace famq::jinja {

// Python's str.splitlines() boundaries (Jinja2 rejoins the source's lines
// with "\n"): \n \r \r\n \v \f \x1c \x1d \x1e U+0085 U+2028 U+2029. Then
// one trailing newline is dropped (keep_trailing_newline=False).
std::string NormalizeNewlines(std::string_view src);
// Python str.isspace() for one code point.
bool IsPySpace(uint32_t cp);
// Python str.rstrip() without arguments.
std::string_view RStripSpace(std::string_view s);
// Length of the prefix that Python str.lstrip() without arguments removes.
size_t LStripSpaceLen(std::string_view s);
// s.find(needle, from) in O(|s| + |needle|) time: a plain scan for needles of
// up to 32 bytes, Knuth-Morris-Pratt beyond (std::string::find is a naive
// O(|s| * |needle|) scan, which a hostile template could use to outrun the
// byte budget that charges the scan as |s| + |needle| bytes).
size_t FindLinear(std::string_view s, std::string_view needle, size_t from = 0);

}  // namespace famq::jinja
