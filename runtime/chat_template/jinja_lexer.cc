#include "chat_template/jinja_lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>

#include "chat_template/jinja.h"
#include "chat_template/jinja_text.h"
#include "chat_template/jinja_value.h"

namespace famq::jinja {

Status Lexer::Run(std::vector<Token>* out) {
  size_t pos = 0;
  bool line_starting = true;
  const size_t n = src_.size();
  while (pos < n) {
    size_t tag = pos;
    while (true) {
      tag = src_.find('{', tag);
      if (tag == std::string::npos || tag + 1 >= n) {
        tag = std::string::npos;
        break;
      }
      char k = src_[tag + 1];
      if (k == '{' || k == '%' || k == '#') break;
      ++tag;
    }
    if (tag == std::string::npos) {
      Push(out, Tok::kData, src_.substr(pos), pos);
      break;
    }
    std::string_view text(src_.data() + pos, tag - pos);
    const char kind = src_[tag + 1];
    size_t p = tag + 2;
    char sign = 0;
    if (p < n && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
    if (sign == '-') {
      text = RStripSpace(text);
    } else if (sign != '+' && kind != '{') {
      // lstrip_blocks: drop spaces and tabs between the line start and a
      // block or comment tag.
      size_t l_pos = text.rfind('\n');
      l_pos = l_pos == std::string_view::npos ? 0 : l_pos + 1;
      if (l_pos > 0 || line_starting) {
        if (text.find_first_not_of(" \t", l_pos) == std::string_view::npos) text = text.substr(0, l_pos);
      }
    }
    if (!text.empty()) Push(out, Tok::kData, std::string(text), pos);
    if (kind == '#') {
      size_t close = src_.find("#}", p);
      if (close == std::string::npos) return Error(tag, "unterminated comment: missing '#}'");
      size_t after = close + 2;
      if (close > p && src_[close - 1] == '-') {
        after += LStripSpaceLen(std::string_view(src_).substr(after));
      } else if (!(close > p && src_[close - 1] == '+') && after < n && src_[after] == '\n') {
        ++after;  // trim_blocks
      }
      line_starting = after > 0 && src_[after - 1] == '\n';
      pos = after;
      continue;
    }
    Push(out, kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "", tag);
    FAMQ_ASSIGN_OR_RETURN(size_t after, LexTag(kind, tag, p, out));
    line_starting = after > 0 && src_[after - 1] == '\n';
    pos = after;
  }
  Push(out, Tok::kEof, "", n);
  return Status::Ok();
}

uint32_t Lexer::LineOf(size_t offset) const {
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  return static_cast<uint32_t>(it - line_starts_.begin());
}

std::string Lexer::Where(size_t offset) const {
  uint32_t line = LineOf(offset);
  return std::to_string(line) + ":" + std::to_string(offset - line_starts_[line - 1] + 1);
}

void Lexer::Push(std::vector<Token>* out, Tok type, std::string text, size_t offset) {
  Token t;
  t.type = type;
  t.text = std::move(text);
  t.offset = offset;
  out->push_back(std::move(t));
}

Result<size_t> Lexer::LexTag(char kind, size_t tag_start, size_t p, std::vector<Token>* out) {
  const size_t n = src_.size();
  std::vector<char> balance;
  while (true) {
    while (p < n && (src_[p] == ' ' || src_[p] == '\t' || src_[p] == '\n' || src_[p] == '\r' ||
                     src_[p] == '\v' || src_[p] == '\f')) {
      ++p;
    }
    if (p >= n) {
      return Error(tag_start, kind == '{' ? "unterminated '{{': missing '}}'" : "unterminated '{%': missing '%}'");
    }
    std::string_view rest(src_.data() + p, n - p);
    if (balance.empty()) {
      const char* close = kind == '{' ? "}}" : "%}";
      if (rest.size() >= 3 && rest[0] == '-' && rest.substr(1, 2) == close) {
        Push(out, kind == '{' ? Tok::kVarEnd : Tok::kBlockEnd, "", p);
        size_t after = p + 3;
        return after + LStripSpaceLen(std::string_view(src_).substr(after));
      }
      if (kind == '%' && rest.size() >= 3 && rest.substr(0, 3) == "+%}") {
        Push(out, Tok::kBlockEnd, "", p);
        return p + 3;
      }
      if (rest.substr(0, 2) == close) {
        Push(out, kind == '{' ? Tok::kVarEnd : Tok::kBlockEnd, "", p);
        size_t after = p + 2;
        if (kind == '%' && after < n && src_[after] == '\n') ++after;  // trim_blocks
        return after;
      }
    }
    const char c = src_[p];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t e = p;
      while (e < n && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      Push(out, Tok::kName, src_.substr(p, e - p), p);
      p = e;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      FAMQ_ASSIGN_OR_RETURN(p, LexNumber(p, out));
    } else if (c == '\'' || c == '"') {
      FAMQ_ASSIGN_OR_RETURN(p, LexString(p, out));
    } else {
      static const char* kOps2[] = {"//", "**", "==", "!=", "<=", ">="};
      size_t op_len = 0;
      for (const char* o : kOps2) {
        if (rest.substr(0, 2) == o) op_len = 2;
      }
      if (op_len == 0) {
        if (std::strchr("+-*/%~<>=()[]{},.:|", c) == nullptr || c == 0) {
          std::string what = "unexpected character '";
          what.push_back(c);
          what.push_back('\'');
          return Error(p, what);
        }
        op_len = 1;
      }
      const std::string op(rest.substr(0, op_len));
      if (op == "(" || op == "[" || op == "{") {
        if (balance.size() >= kMaxNestingDepth) return Error(p, "brackets nest too deep");
        balance.push_back(op[0]);
      } else if (op == ")" || op == "]" || op == "}") {
        const char open = op == ")" ? '(' : op == "]" ? '[' : '{';
        if (balance.empty() || balance.back() != open) {
          std::string what = "unexpected '";
          what.append(op).push_back('\'');
          return Error(p, what);
        }
        balance.pop_back();
      }
      Push(out, Tok::kOp, op, p);
      p += op.size();
    }
  }
}

Result<size_t> Lexer::LexNumber(size_t p, std::vector<Token>* out) {
  const size_t n = src_.size();
  const size_t start = p;
  std::string digits;
  auto take_digits = [&] {
    while (p < n && (std::isdigit(static_cast<unsigned char>(src_[p])) ||
                     (src_[p] == '_' && p + 1 < n && std::isdigit(static_cast<unsigned char>(src_[p + 1]))))) {
      if (src_[p] != '_') digits.push_back(src_[p]);
      ++p;
    }
  };
  take_digits();
  bool is_float = false;
  if (p + 1 < n && src_[p] == '.' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) {
    is_float = true;
    digits.push_back('.');
    ++p;
    take_digits();
  }
  if (p < n && (src_[p] == 'e' || src_[p] == 'E')) {
    size_t q = p + 1;
    if (q < n && (src_[q] == '+' || src_[q] == '-')) ++q;
    if (q < n && std::isdigit(static_cast<unsigned char>(src_[q]))) {
      is_float = true;
      digits.push_back('e');
      if (src_[p + 1] == '-') digits.push_back('-');
      p = q;
      take_digits();
    }
  }
  Token t;
  t.offset = start;
  if (is_float) {
    t.type = Tok::kFloat;
    t.f = std::strtod(digits.c_str(), nullptr);
  } else {
    t.type = Tok::kInt;
    errno = 0;
    unsigned long long v = std::strtoull(digits.c_str(), nullptr, 10);
    if (errno != 0 || v > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
      return Error(start, "integer literal out of range");
    }
    t.i = static_cast<int64_t>(v);
  }
  out->push_back(std::move(t));
  return p;
}

Result<size_t> Lexer::LexString(size_t p, std::vector<Token>* out) {
  const size_t n = src_.size();
  const size_t start = p;
  const char quote = src_[p++];
  std::string value;
  while (true) {
    if (p >= n) return Error(start, "unterminated string literal");
    char c = src_[p];
    if (c == quote) {
      ++p;
      break;
    }
    if (c != '\\') {
      value.push_back(c);
      ++p;
      continue;
    }
    if (p + 1 >= n) return Error(start, "unterminated string literal");
    char e = src_[p + 1];
    p += 2;
    auto hex = [&](size_t count) -> std::optional<uint32_t> {
      if (p + count > n) return std::nullopt;
      uint32_t v = 0;
      for (size_t i = 0; i < count; ++i) {
        char h = src_[p + i];
        if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
        v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                     : (std::tolower(h) - 'a' + 10));
      }
      p += count;
      return v;
    };
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': value.push_back('\\'); break;
      case '\'': value.push_back('\''); break;
      case '"': value.push_back('"'); break;
      case 'a': value.push_back('\a'); break;
      case 'b': value.push_back('\b'); break;
      case 'f': value.push_back('\f'); break;
      case 'n': value.push_back('\n'); break;
      case 'r': value.push_back('\r'); break;
      case 't': value.push_back('\t'); break;
      case 'v': value.push_back('\v'); break;
      case 'x':
      case 'u':
      case 'U': {
        auto v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
        if (!v || *v > 0x10FFFF) return Error(p - 2, std::string("invalid \\") + e + " escape in string literal");
        if (*v >= 0xD800 && *v <= 0xDFFF) return Error(p - 2, "surrogate escape in string literal");
        AppendUtf8(*v, &value);
        break;
      }
      case 'N': return Error(p - 2, "\\N{...} escapes are not supported");
      default:
        if (e >= '0' && e <= '7') {
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && p < n && src_[p] >= '0' && src_[p] <= '7'; ++k) {
            v = v * 8 + static_cast<uint32_t>(src_[p++] - '0');
          }
          AppendUtf8(v, &value);
        } else {
          value.push_back('\\');
          value.push_back(e);
        }
    }
  }
  Token t;
  t.type = Tok::kString;
  t.text = std::move(value);
  t.offset = start;
  out->push_back(std::move(t));
  return p;
}

}  // namespace famq::jinja
