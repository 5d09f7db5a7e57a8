#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode.h"

namespace famq {
namespace {

// Regex sources exactly as they appear (after JSON unescaping) in tokenizer.json.
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr uint8_t kIsLetter = 1;
constexpr uint8_t kIsNumber = 2;
constexpr uint8_t kIsSpace = 4;  // ECMAScript \s

using Char = SplitScratch::Char;

// The matchers below return the end index (in code points) of the match that
// the regex finds at `i`, trying its alternatives in order as a backtracking
// engine does; each known pattern matches at least one character anywhere.
class Matcher {
 public:
  explicit Matcher(const std::vector<Char>& chars) : c_(chars), n_(chars.size()) {}

  size_t Gpt2(size_t i) const {
    if (size_t end = Contraction(i, /*ignore_case=*/false)) return end;
    const size_t after_space = (Cp(i) == ' ' && i + 1 < n_) ? i + 1 : i;
    if (Letter(after_space)) return RunOf(after_space, kIsLetter);                    //  ?\p{L}+
    if (Number(after_space)) return RunOf(after_space, kIsNumber);                    //  ?\p{N}+
    if (Other(after_space)) return RunWhile(after_space, [&](size_t k) { return Other(k); });
    if (Other(i)) return RunWhile(i, [&](size_t k) { return Other(k); });           //  ?[^\s\p{L}\p{N}]+
    return WhitespaceTail(i);
  }

  size_t Qwen2(size_t i, size_t max_digits) const {
    if (size_t end = Contraction(i, /*ignore_case=*/true)) return end;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (Letter(i)) return RunOf(i, kIsLetter);
    if (!Number(i) && !LineBreak(i) && Letter(i + 1)) return RunOf(i + 1, kIsLetter);
    // \p{N} or \p{N}{1,3}
    if (Number(i)) {
      size_t end = i + 1;
      while (end < n_ && end - i < max_digits && Number(end)) ++end;
      return end;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t start = (Cp(i) == ' ' && Other(i + 1)) ? i + 1 : i;
    if (Other(start)) {
      size_t end = RunWhile(start, [&](size_t k) { return Other(k); });
      return RunWhile(end, [&](size_t k) { return LineBreak(k); });
    }
    // \s*[\r\n]+ : the whitespace run, backtracked to just after its last \r or \n.
    const size_t ws_end = RunOf(i, kIsSpace);
    for (size_t k = ws_end; k > i; --k) {
      if (LineBreak(k - 1)) return k;
    }
    return WhitespaceTail(i);
  }

 private:
  char32_t Cp(size_t k) const { return k < n_ ? c_[k].cp : 0; }
  bool Has(size_t k, uint8_t flag) const { return k < n_ && (c_[k].flags & flag) != 0; }
  bool Letter(size_t k) const { return Has(k, kIsLetter); }
  bool Number(size_t k) const { return Has(k, kIsNumber); }
  bool Other(size_t k) const { return k < n_ && c_[k].flags == 0; }
  bool LineBreak(size_t k) const { return Cp(k) == '\r' || Cp(k) == '\n'; }

  template <typename Pred>
  size_t RunWhile(size_t k, Pred pred) const {
    while (k < n_ && pred(k)) ++k;
    return k;
  }
  size_t RunOf(size_t k, uint8_t flag) const {
    return RunWhile(k, [&](size_t j) { return Has(j, flag); });
  }

  // 's|'t|'re|'ve|'m|'ll|'d (ASCII case-insensitive when asked): end or 0.
  size_t Contraction(size_t i, bool ignore_case) const {
    if (Cp(i) != '\'' || i + 1 >= n_) return 0;
    auto at = [&](size_t k) -> char32_t {
      const char32_t c = Cp(k);
      return (ignore_case && c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
    };
    const char32_t a = at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    const char32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
  }

  // \s+(?!\S)|\s+ at a whitespace character: the run, less its last
  // character when a non-space follows and the run is longer than one.
  size_t WhitespaceTail(size_t i) const {
    const size_t end = RunOf(i, kIsSpace);
    if (end == i) return i + 1;  // unreachable for the known patterns; never loop
    if (end == n_ || end - i == 1) return end;
    return end - 1;
  }

  const std::vector<Char>& c_;
  const size_t n_;
};

}  // namespace

std::optional<SplitPattern> RecognizeSplitPattern(std::string_view regex) {
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  return std::nullopt;
}

const char* SplitPatternName(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2: return "gpt2";
    case SplitPattern::kQwen2: return "qwen2";
    case SplitPattern::kLlama3: return "llama3";
  }
  return "?";
}

std::string_view SplitPatternRegex(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kGpt2: return kGpt2Regex;
    case SplitPattern::kQwen2: return kQwen2Regex;
    case SplitPattern::kLlama3: return kLlama3Regex;
  }
  return {};
}

void SplitWithPattern(SplitPattern pattern, std::string_view text, SplitScratch* scratch,
                      std::vector<TextSpan>* pieces) {
  std::vector<Char>& chars = scratch->chars;
  chars.clear();
  size_t pos = 0;
  while (pos < text.size()) {
    const auto offset = static_cast<uint32_t>(pos);
    const char32_t cp = unicode::DecodeUtf8(text, &pos);
    uint8_t flags = 0;
    switch (unicode::ClassOf(cp)) {
      case unicode::CharClass::kLetter: flags = kIsLetter; break;
      case unicode::CharClass::kNumber: flags = kIsNumber; break;
      case unicode::CharClass::kOther: flags = unicode::IsJsWhitespace(cp) ? kIsSpace : 0; break;
    }
    chars.push_back({cp, offset, flags});
  }
  const Matcher matcher(chars);
  const size_t n = chars.size();
  auto offset_of = [&](size_t k) {
    return k < n ? chars[k].offset : static_cast<uint32_t>(text.size());
  };
  size_t i = 0;
  while (i < n) {
    size_t end = 0;
    switch (pattern) {
      case SplitPattern::kGpt2: end = matcher.Gpt2(i); break;
      case SplitPattern::kQwen2: end = matcher.Qwen2(i, 1); break;
      case SplitPattern::kLlama3: end = matcher.Qwen2(i, 3); break;
    }
    if (end <= i) end = i + 1;  // defensive: always progress
    pieces->push_back({offset_of(i), offset_of(end)});
    i = end;
  }
}

}  // namespace famq
