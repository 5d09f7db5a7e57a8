// The lexer of famq's Jinja2 subset: template source -> tokens (data, tag
// delimiters, names, literals, operators), with transformers' whitespace
// control (trim_blocks, lstrip_blocks). Internal to chat_template/.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace famq::jinja {

enum class Tok { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type;
  std::string text;  // data, name, string value or operator
  int64_t i = 0;
  double f = 0;
  size_t offset = 0;
};

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  Status Run(std::vector<Token>* out);

  // 1-based line of a source offset.
  uint32_t LineOf(size_t offset) const;
  // "L:C" (1-based; columns count bytes).
  std::string Where(size_t offset) const;
 private:
  void Push(std::vector<Token>* out, Tok type, std::string text, size_t offset);
  Status Error(size_t offset, const std::string& what) const {
    return InvalidFormat("chat template " + Where(offset) + ": " + what);
  }

  // Lexes the inside of a {{ }} or {% %} tag starting at `p`; returns the
  // offset after the closing delimiter (and the whitespace it strips).
  Result<size_t> LexTag(char kind, size_t tag_start, size_t p, std::vector<Token>* out);
  Result<size_t> LexNumber(size_t p, std::vector<Token>* out);

  // Python string literal escapes (unicode-escape); unknown escapes stay as written.
  Result<size_t> LexString(size_t p, std::vector<Token>* out);
  const std::string& src_;
  std::vector<size_t> line_starts_;
};

}  // namespace famq::jinja
