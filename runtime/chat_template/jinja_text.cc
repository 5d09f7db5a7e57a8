#include "chat_template/jinja_text.h"

#include <vector>

#include "chat_template/jinja_value.h"

namespace famq::jinja {

// Python's str.splitlines() boundaries (Jinja2 rejoins the source's lines
// with "\n"): \n \r \r\n \v \f \x1c \x1d \x1e U+0085 U+2028 U+2029. Then
// one trailing newline is dropped (keep_trailing_newline=False).
std::string NormalizeNewlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  bool ended_with_break = false;
  for (size_t i = 0; i < src.size();) {
    unsigned char c = static_cast<unsigned char>(src[i]);
    size_t brk = 0;
    if (c == '\r') {
      brk = (i + 1 < src.size() && src[i + 1] == '\n') ? 2 : 1;
    } else if (c == '\n' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e) {
      brk = 1;
    } else if (c == 0xC2 && i + 1 < src.size() && static_cast<unsigned char>(src[i + 1]) == 0x85) {
      brk = 2;
    } else if (c == 0xE2 && i + 2 < src.size() && static_cast<unsigned char>(src[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(src[i + 2]) == 0xA8 || static_cast<unsigned char>(src[i + 2]) == 0xA9)) {
      brk = 3;
    }
    if (brk != 0) {
      out.push_back('\n');
      i += brk;
      ended_with_break = true;
    } else {
      out.push_back(src[i]);
      ++i;
      ended_with_break = false;
    }
  }
  if (ended_with_break) out.pop_back();
  return out;
}

// Python str.isspace() for one code point.
bool IsPySpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

// Python str.rstrip() / lstrip() without arguments.
std::string_view RStripSpace(std::string_view s) {
  auto offs = Utf8Offsets(s);
  size_t end = offs.size() - 1;  // code point count
  while (end > 0) {
    size_t p = offs[end - 1];
    if (!IsPySpace(Utf8Next(s, &p))) break;
    --end;
  }
  return s.substr(0, offs[end]);
}

size_t LStripSpaceLen(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t p = pos;
    if (!IsPySpace(Utf8Next(s, &p))) break;
    pos = p;
  }
  return pos;
}
size_t FindLinear(std::string_view s, std::string_view needle, size_t from) {
  constexpr size_t kPlainScanMax = 32;
  if (needle.size() <= kPlainScanMax || from > s.size()) return s.find(needle, from);
  const size_t m = needle.size();
  std::vector<size_t> fail(m, 0);  // longest proper border of needle[0..i]
  for (size_t i = 1, k = 0; i < m; ++i) {
    while (k > 0 && needle[i] != needle[k]) k = fail[k - 1];
    if (needle[i] == needle[k]) ++k;
    fail[i] = k;
  }
  for (size_t i = from, k = 0; i < s.size(); ++i) {
    while (k > 0 && s[i] != needle[k]) k = fail[k - 1];
    if (s[i] == needle[k]) ++k;
    if (k == m) return i + 1 - m;
  }
  return std::string_view::npos;
}

}  // namespace famq::jinja
