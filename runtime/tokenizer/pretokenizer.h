// The pre-tokenizer split patterns famq knows, each a hand-written matcher
// over code points that reproduces the regex's leftmost-first backtracking
// result exactly (no std::regex, no ICU). A tokenizer.json naming any other
// pattern is refused with Unsupported.
//
// Semantics follow the JavaScript RegExp the reference (transformers.js) builds
// with the `u` flag, which is what the oracle test compares against:
//  - `(?i:'s|'t|...)` is rewritten by transformers.js to ASCII-only case
//    classes `'[sS]|'[tT]|...`; Oniguruma (Hugging Face tokenizers) folds case
//    per Unicode and would also match e.g. U+017F LATIN SMALL LETTER LONG S.
//  - `\s` is ECMAScript whitespace: U+FEFF counts, U+0085 does not
//    (Oniguruma: the reverse).
//  - \p{L} / \p{N} come from Unicode 15.0 tables; code points assigned later
//    are kOther here but letters/numbers for a newer ICU.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace famq {

enum class SplitPattern : uint8_t {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,
  // As kQwen2 with \p{N}{1,3}.
  kLlama3,
};

// The pattern whose regex source (as written in tokenizer.json) is `regex`.
std::optional<SplitPattern> RecognizeSplitPattern(std::string_view regex);
const char* SplitPatternName(SplitPattern pattern);
std::string_view SplitPatternRegex(SplitPattern pattern);

// A byte range [begin, end) of the text being split.
struct TextSpan {
  uint32_t begin, end;
};

// Reusable buffers of the matcher; one per Encode call.
struct SplitScratch {
  struct Char {
    char32_t cp;
    uint32_t offset;  // byte offset of the code point in the text
    uint8_t flags;    // kIsLetter | kIsNumber | kIsSpace
  };
  std::vector<Char> chars;
};

// Appends to *pieces the spans of valid UTF-8 `text` that splitting with
// `pattern` and behavior "Isolated" produces: the matches, in order, together
// with any unmatched gaps (none for the known patterns, which match every
// character). Empty text yields no pieces. Offsets are relative to `text`,
// which must be shorter than 4 GiB.
void SplitWithPattern(SplitPattern pattern, std::string_view text, SplitScratch* scratch,
                      std::vector<TextSpan>* pieces);

}  // namespace famq
