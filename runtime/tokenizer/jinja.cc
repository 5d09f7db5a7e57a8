// famq's Jinja2 subset: lexer, parser and interpreter. See jinja.h and
// docs/CHAT_TEMPLATE.md; the behaviour follows Jinja2 3.1 as configured by
// transformers for chat templates.
#include "tokenizer/jinja.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

namespace famq::jinja {

// ============================================================== syntax tree

enum class NodeKind {
  // statements
  kBody,       // children: statements
  kText,       // str: literal output
  kPrint,      // children[0]: expression
  kIf,         // children: cond0, body0, cond1, body1, ..., [else body]  (else: odd count)
  kFor,        // names: targets; children: iter, body, else body (or null), filter (or null)
  kSet,        // names: targets (or {name, attr} with attr_set); children[0]: value
  kSetBlock,   // names[0]: target; children[0]: body
  kBreak,
  kContinue,
  // expressions
  kLiteral,    // value
  kName,       // str
  kAttr,       // children[0]: object; str: attribute
  kItem,       // children[0]: object, children[1]: key
  kSlice,      // children[0]: object, children[1..3]: start, stop, step (null when absent)
  kCall,       // children[0]: callee; children[1..]: positional args; kwargs
  kFilter,     // str: name; children[0]: operand; children[1..]: args; kwargs
  kTest,       // str: name; negate; children[0]: operand; children[1..]: args
  kUnary,      // str: "-", "+", "not"
  kBinary,     // str: operator (+ - * / // % ** ~ and or)
  kCompare,    // children[0]: first operand; then (ops[i], children[i+1])
  kCondExpr,   // children: cond, then, else (null when absent)
  kList,       // children: items
  kDict,       // children: key0, value0, key1, value1, ...
};

struct Node {
  NodeKind kind;
  uint32_t line = 0;
  std::string str;
  std::vector<std::string> names;
  std::vector<std::string> ops;
  std::vector<std::shared_ptr<Node>> children;
  std::vector<std::pair<std::string, std::shared_ptr<Node>>> kwargs;
  Value value;
  bool negate = false;
  bool attr_set = false;  // kSet: names = {namespace, attribute}
};

using NodePtr = std::shared_ptr<Node>;

namespace {

NodePtr MakeNode(NodeKind kind, uint32_t line) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  n->line = line;
  return n;
}

// ============================================================== source

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

// ============================================================== lexer

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

  Status Run(std::vector<Token>* out) {
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

  // 1-based line of a source offset.
  uint32_t LineOf(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    return static_cast<uint32_t>(it - line_starts_.begin());
  }
  // "L:C" (1-based; columns count bytes).
  std::string Where(size_t offset) const {
    uint32_t line = LineOf(offset);
    return std::to_string(line) + ":" + std::to_string(offset - line_starts_[line - 1] + 1);
  }

 private:
  void Push(std::vector<Token>* out, Tok type, std::string text, size_t offset) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.offset = offset;
    out->push_back(std::move(t));
  }

  Status Error(size_t offset, const std::string& what) const {
    return InvalidFormat("chat template " + Where(offset) + ": " + what);
  }

  // Lexes the inside of a {{ }} or {% %} tag starting at `p`; returns the
  // offset after the closing delimiter (and the whitespace it strips).
  Result<size_t> LexTag(char kind, size_t tag_start, size_t p, std::vector<Token>* out) {
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
        std::string op;
        for (const char* o : kOps2) {
          if (rest.substr(0, 2) == o) op = o;
        }
        if (op.empty()) {
          if (std::strchr("+-*/%~<>=()[]{},.:|", c) == nullptr || c == 0) {
            return Error(p, std::string("unexpected character '") + c + "'");
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") {
          if (balance.size() >= kMaxNestingDepth) return Error(p, "brackets nest too deep");
          balance.push_back(op[0]);
        } else if (op == ")" || op == "]" || op == "}") {
          const char open = op == ")" ? '(' : op == "]" ? '[' : '{';
          if (balance.empty() || balance.back() != open) return Error(p, "unexpected '" + op + "'");
          balance.pop_back();
        }
        Push(out, Tok::kOp, op, p);
        p += op.size();
      }
    }
  }

  Result<size_t> LexNumber(size_t p, std::vector<Token>* out) {
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

  // Python string literal escapes (unicode-escape); unknown escapes stay as written.
  Result<size_t> LexString(size_t p, std::vector<Token>* out) {
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

  const std::string& src_;
  std::vector<size_t> line_starts_;
};

// ============================================================== parser

const char* const kFilters[] = {"tojson", "length", "count", "trim", "upper", "lower", "capitalize", "title",
                                "default", "d", "first", "last", "join", "string", "int", "float", "list",
                                "replace", "reverse", "abs", "items", "safe", "round", "unique", "sum",
                                "min", "max", "indent"};
const char* const kTests[] = {"defined", "undefined", "none", "string", "mapping", "number", "integer", "float",
                              "boolean", "true", "false", "sequence", "iterable", "odd", "even", "divisibleby",
                              "eq", "equalto", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=",
                              "in", "sameas", "lower", "upper", "callable"};
// Jinja2 statements famq refuses with Unsupported (rather than "unknown tag").
const char* const kUnsupportedTags[] = {"macro", "call", "filter", "include", "import", "from", "extends",
                                        "block", "with", "autoescape", "raw", "do", "trans", "pluralize"};

template <size_t N>
bool Contains(const char* const (&list)[N], std::string_view s) {
  for (const char* x : list) {
    if (s == x) return true;
  }
  return false;
}

class Parser {
 public:
  Parser(const Lexer& lexer, std::vector<Token> tokens) : lexer_(lexer), toks_(std::move(tokens)) {}

  Result<NodePtr> ParseTemplate() {
    FAMQ_ASSIGN_OR_RETURN(NodePtr body, ParseBody({}));
    if (Cur().type != Tok::kEof) return Fail(Cur(), "unexpected tag");
    return body;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  void Advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  uint32_t Line(const Token& t) const { return lexer_.LineOf(t.offset); }

  Status Fail(const Token& t, const std::string& what) const {
    return InvalidFormat("chat template " + lexer_.Where(t.offset) + ": " + what + Describe(t));
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return " (found end of template)";
      case Tok::kName: return " (found '" + t.text + "')";
      case Tok::kOp: return " (found '" + t.text + "')";
      case Tok::kString: return " (found a string)";
      case Tok::kInt:
      case Tok::kFloat: return " (found a number)";
      case Tok::kVarEnd: return " (found '}}')";
      case Tok::kBlockEnd: return " (found '%}')";
      default: return "";
    }
  }
  bool IsOp(const char* op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(const char* name) const { return Cur().type == Tok::kName && Cur().text == name; }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Fail(Cur(), std::string("expected '") + op + "'");
    Advance();
    return Status::Ok();
  }
  Status ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) return Fail(Cur(), "expected '%}'");
    Advance();
    return Status::Ok();
  }
  Result<std::string> ExpectName() {
    if (Cur().type != Tok::kName) return Fail(Cur(), "expected a name");
    std::string s = Cur().text;
    Advance();
    return s;
  }
  Status Enter() {
    if (++depth_ > kMaxNestingDepth) {
      return InvalidArgument("chat template " + lexer_.Where(Cur().offset) + ": nests deeper than " +
                             std::to_string(kMaxNestingDepth) + " levels");
    }
    return Status::Ok();
  }
  struct DepthGuard {
    uint32_t* d;
    ~DepthGuard() { --*d; }
  };
  // Left-deep chains (a + b + c, x.a.b, x|f|g) are built by loops, not by
  // recursion, but evaluating and freeing them recurses once per link: each
  // link counts as one nesting level.
  struct ChainGuard {
    Parser* p;
    uint32_t links = 0;
    Status Link() {
      ++links;
      return p->Enter();
    }
    ~ChainGuard() { p->depth_ -= links; }
  };

  // Parses statements until a block tag whose first name is in `ends` (the
  // parser stops on that tag's name, after '{%').
  Result<NodePtr> ParseBody(const std::vector<std::string>& ends) {
    FAMQ_RETURN_IF_ERROR(Enter());
    DepthGuard guard{&depth_};
    NodePtr body = MakeNode(NodeKind::kBody, Line(Cur()));
    while (true) {
      const Token& t = Cur();
      if (t.type == Tok::kEof) {
        if (ends.empty()) return body;
        return Fail(t, "missing '{% " + ends.back() + " %}'");
      }
      if (t.type == Tok::kData) {
        NodePtr n = MakeNode(NodeKind::kText, Line(t));
        n->str = t.text;
        body->children.push_back(n);
        Advance();
      } else if (t.type == Tok::kVarBegin) {
        Advance();
        NodePtr n = MakeNode(NodeKind::kPrint, Line(t));
        FAMQ_ASSIGN_OR_RETURN(NodePtr e, ParseTuple(true));
        n->children.push_back(e);
        if (Cur().type != Tok::kVarEnd) return Fail(Cur(), "expected '}}'");
        Advance();
        body->children.push_back(n);
      } else if (t.type == Tok::kBlockBegin) {
        const Token& name = Peek();
        if (name.type != Tok::kName) return Fail(name, "expected a statement name");
        if (std::find(ends.begin(), ends.end(), name.text) != ends.end()) {
          Advance();  // leave the parser on the end tag's name
          return body;
        }
        Advance();
        FAMQ_ASSIGN_OR_RETURN(NodePtr stmt, ParseStatement());
        body->children.push_back(stmt);
      } else {
        return Fail(t, "unexpected token");
      }
    }
  }

  Result<NodePtr> ParseStatement() {
    const Token& t = Cur();
    const std::string& name = t.text;
    const uint32_t line = Line(t);
    if (name == "if") {
      Advance();
      NodePtr n = MakeNode(NodeKind::kIf, line);
      while (true) {
        FAMQ_ASSIGN_OR_RETURN(NodePtr cond, ParseTuple(true));
        FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
        FAMQ_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"elif", "else", "endif"}));
        n->children.push_back(cond);
        n->children.push_back(body);
        std::string end = Cur().text;
        Advance();
        if (end == "elif") continue;
        if (end == "else") {
          FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
          FAMQ_ASSIGN_OR_RETURN(NodePtr else_body, ParseBody({"endif"}));
          n->children.push_back(else_body);
          Advance();
        }
        FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
        return n;
      }
    }
    if (name == "for") {
      Advance();
      NodePtr n = MakeNode(NodeKind::kFor, line);
      FAMQ_RETURN_IF_ERROR(ParseTargets(&n->names, nullptr));
      if (!IsName("in")) return Fail(Cur(), "expected 'in'");
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr iter, ParseTuple(false));
      NodePtr filter;
      if (IsName("if")) {
        Advance();
        FAMQ_ASSIGN_OR_RETURN(filter, ParseExpression(true));
      }
      if (IsName("recursive")) {
        return Unsupported("chat template " + lexer_.Where(Cur().offset) + ": recursive for loops are not supported");
      }
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      ++loop_depth_;
      FAMQ_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endfor", "else"}));
      --loop_depth_;
      NodePtr else_body;
      if (Cur().text == "else") {
        Advance();
        FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
        FAMQ_ASSIGN_OR_RETURN(else_body, ParseBody({"endfor"}));
      }
      Advance();
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      n->children = {iter, body, else_body, filter};
      return n;
    }
    if (name == "set") {
      Advance();
      std::vector<std::string> names;
      bool attr = false;
      FAMQ_RETURN_IF_ERROR(ParseTargets(&names, &attr));
      if (IsOp("=")) {
        Advance();
        NodePtr n = MakeNode(NodeKind::kSet, line);
        n->names = std::move(names);
        n->attr_set = attr;
        FAMQ_ASSIGN_OR_RETURN(NodePtr value, ParseTuple(true));
        n->children.push_back(value);
        FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
        return n;
      }
      if (attr || names.size() != 1) return Fail(Cur(), "expected '='");
      if (Cur().type == Tok::kOp && Cur().text == "|") {
        return Unsupported("chat template " + lexer_.Where(Cur().offset) + ": filtered set blocks are not supported");
      }
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      NodePtr n = MakeNode(NodeKind::kSetBlock, line);
      n->names = std::move(names);
      FAMQ_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endset"}));
      Advance();
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      n->children.push_back(body);
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) return Fail(t, "'" + name + "' outside of a for loop");
      Advance();
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      return MakeNode(name == "break" ? NodeKind::kBreak : NodeKind::kContinue, line);
    }
    if (name == "generation") {
      // transformers' AssistantTracker extension: marks assistant text for
      // return_assistant_tokens_mask; renders its body unchanged.
      Advance();
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      FAMQ_ASSIGN_OR_RETURN(NodePtr body, ParseBody({"endgeneration"}));
      Advance();
      FAMQ_RETURN_IF_ERROR(ExpectBlockEnd());
      return body;
    }
    if (Contains(kUnsupportedTags, name)) {
      return Unsupported("chat template " + lexer_.Where(t.offset) + ": the '{% " + name +
                         " %}' statement is not supported");
    }
    return Fail(t, "unknown statement '" + name + "'");
  }

  // name | name.attr (set only) | name, name ... | (name, name)
  Status ParseTargets(std::vector<std::string>* names, bool* attr) {
    bool paren = false;
    if (IsOp("(")) {
      paren = true;
      Advance();
    }
    while (true) {
      FAMQ_ASSIGN_OR_RETURN(std::string nm, ExpectName());
      names->push_back(nm);
      if (attr != nullptr && names->size() == 1 && IsOp(".")) {
        Advance();
        FAMQ_ASSIGN_OR_RETURN(std::string at, ExpectName());
        names->push_back(at);
        *attr = true;
        if (paren) return Fail(Cur(), "unexpected attribute target");
        return Status::Ok();
      }
      if (!IsOp(",")) break;
      Advance();
      if (Cur().type != Tok::kName) break;
    }
    if (paren) FAMQ_RETURN_IF_ERROR(Expect(")"));
    return Status::Ok();
  }

  // expr | expr, expr, ... (a tuple becomes a list value)
  Result<NodePtr> ParseTuple(bool with_condexpr) {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr first, ParseExpression(with_condexpr));
    if (!IsOp(",")) return first;
    NodePtr list = MakeNode(NodeKind::kList, line);
    list->children.push_back(first);
    while (IsOp(",")) {
      Advance();
      if (Cur().type == Tok::kVarEnd || Cur().type == Tok::kBlockEnd || IsOp(")") || IsName("in")) break;
      FAMQ_ASSIGN_OR_RETURN(NodePtr e, ParseExpression(with_condexpr));
      list->children.push_back(e);
    }
    return list;
  }

  Result<NodePtr> ParseExpression(bool with_condexpr) {
    FAMQ_RETURN_IF_ERROR(Enter());
    DepthGuard guard{&depth_};
    if (!with_condexpr) return ParseOr();
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr expr, ParseOr());
    ChainGuard chain{this};
    while (IsName("if")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr cond, ParseOr());
      NodePtr else_expr;
      if (IsName("else")) {
        Advance();
        FAMQ_ASSIGN_OR_RETURN(else_expr, ParseExpression(true));
      }
      NodePtr n = MakeNode(NodeKind::kCondExpr, line);
      n->children = {cond, expr, else_expr};
      expr = n;
    }
    return expr;
  }

  NodePtr Binary(const std::string& op, NodePtr a, NodePtr b, uint32_t line) {
    NodePtr n = MakeNode(NodeKind::kBinary, line);
    n->str = op;
    n->children = {std::move(a), std::move(b)};
    return n;
  }

  Result<NodePtr> ParseOr() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParseAnd());
    ChainGuard chain{this};
    while (IsName("or")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParseAnd());
      left = Binary("or", left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParseAnd() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParseNot());
    ChainGuard chain{this};
    while (IsName("and")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParseNot());
      left = Binary("and", left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParseNot() {
    if (IsName("not")) {
      FAMQ_RETURN_IF_ERROR(Enter());
      DepthGuard guard{&depth_};
      NodePtr n = MakeNode(NodeKind::kUnary, Line(Cur()));
      n->str = "not";
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr operand, ParseNot());
      n->children.push_back(operand);
      return n;
    }
    return ParseCompare();
  }

  Result<NodePtr> ParseCompare() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr first, ParseMath1());
    NodePtr n;
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == ">" ||
           Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().type == Tok::kName && Peek().text == "in") {
        op = "not in";
        Advance();
        Advance();
      } else {
        break;
      }
      if (!n) {
        n = MakeNode(NodeKind::kCompare, line);
        n->children.push_back(first);
      }
      FAMQ_ASSIGN_OR_RETURN(NodePtr operand, ParseMath1());
      n->ops.push_back(op);
      n->children.push_back(operand);
    }
    return n ? n : first;
  }

  Result<NodePtr> ParseMath1() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParseConcat());
    ChainGuard chain{this};
    while (IsOp("+") || IsOp("-")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      std::string op = Cur().text;
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParseConcat());
      left = Binary(op, left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParseConcat() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParseMath2());
    ChainGuard chain{this};
    while (IsOp("~")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParseMath2());
      left = Binary("~", left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParseMath2() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParsePow());
    ChainGuard chain{this};
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      std::string op = Cur().text;
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParsePow());
      left = Binary(op, left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParsePow() {
    const uint32_t line = Line(Cur());
    FAMQ_ASSIGN_OR_RETURN(NodePtr left, ParseUnary(true));
    ChainGuard chain{this};
    while (IsOp("**")) {
      FAMQ_RETURN_IF_ERROR(chain.Link());
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr right, ParseUnary(true));
      left = Binary("**", left, right, line);
    }
    return left;
  }

  Result<NodePtr> ParseUnary(bool with_filter) {
    FAMQ_RETURN_IF_ERROR(Enter());
    DepthGuard guard{&depth_};
    NodePtr node;
    if (IsOp("-") || IsOp("+")) {
      node = MakeNode(NodeKind::kUnary, Line(Cur()));
      node->str = Cur().text;
      Advance();
      FAMQ_ASSIGN_OR_RETURN(NodePtr operand, ParseUnary(false));
      node->children.push_back(operand);
    } else {
      FAMQ_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    FAMQ_ASSIGN_OR_RETURN(node, ParsePostfix(node));
    if (with_filter) {
      FAMQ_ASSIGN_OR_RETURN(node, ParseFilterExpr(node));
    }
    return node;
  }

  Result<NodePtr> ParsePrimary() {
    const Token& t = Cur();
    const uint32_t line = Line(t);
    NodePtr n;
    switch (t.type) {
      case Tok::kName: {
        n = MakeNode(NodeKind::kLiteral, line);
        if (t.text == "true" || t.text == "True") {
          n->value = Value::Bool(true);
        } else if (t.text == "false" || t.text == "False") {
          n->value = Value::Bool(false);
        } else if (t.text == "none" || t.text == "None") {
          n->value = Value::None();
        } else {
          n->kind = NodeKind::kName;
          n->str = t.text;
        }
        Advance();
        return n;
      }
      case Tok::kString: {
        std::string s;
        while (Cur().type == Tok::kString) {  // adjacent literals concatenate
          s += Cur().text;
          Advance();
        }
        n = MakeNode(NodeKind::kLiteral, line);
        n->value = Value::String(std::move(s));
        return n;
      }
      case Tok::kInt:
        n = MakeNode(NodeKind::kLiteral, line);
        n->value = Value::Int(t.i);
        Advance();
        return n;
      case Tok::kFloat:
        n = MakeNode(NodeKind::kLiteral, line);
        n->value = Value::Float(t.f);
        Advance();
        return n;
      case Tok::kOp:
        if (t.text == "(") {
          Advance();
          if (IsOp(")")) {  // empty tuple
            Advance();
            return MakeNode(NodeKind::kList, line);
          }
          FAMQ_ASSIGN_OR_RETURN(n, ParseTuple(true));
          FAMQ_RETURN_IF_ERROR(Expect(")"));
          return n;
        }
        if (t.text == "[") {
          Advance();
          n = MakeNode(NodeKind::kList, line);
          while (!IsOp("]")) {
            if (!n->children.empty()) FAMQ_RETURN_IF_ERROR(Expect(","));
            if (IsOp("]")) break;
            FAMQ_ASSIGN_OR_RETURN(NodePtr e, ParseExpression(true));
            n->children.push_back(e);
          }
          Advance();
          return n;
        }
        if (t.text == "{") {
          Advance();
          n = MakeNode(NodeKind::kDict, line);
          while (!IsOp("}")) {
            if (!n->children.empty()) FAMQ_RETURN_IF_ERROR(Expect(","));
            if (IsOp("}")) break;
            FAMQ_ASSIGN_OR_RETURN(NodePtr k, ParseExpression(true));
            FAMQ_RETURN_IF_ERROR(Expect(":"));
            FAMQ_ASSIGN_OR_RETURN(NodePtr v, ParseExpression(true));
            n->children.push_back(k);
            n->children.push_back(v);
          }
          Advance();
          return n;
        }
        break;
      default: break;
    }
    return Fail(t, "expected an expression");
  }

  Result<NodePtr> ParsePostfix(NodePtr node) {
    ChainGuard chain{this};
    while (true) {
      if (IsOp(".") || IsOp("[") || IsOp("(")) FAMQ_RETURN_IF_ERROR(chain.Link());
      const uint32_t line = Line(Cur());
      if (IsOp(".")) {
        Advance();
        if (Cur().type == Tok::kName) {
          NodePtr n = MakeNode(NodeKind::kAttr, line);
          n->str = Cur().text;
          n->children.push_back(node);
          Advance();
          node = n;
        } else if (Cur().type == Tok::kInt) {
          NodePtr key = MakeNode(NodeKind::kLiteral, line);
          key->value = Value::Int(Cur().i);
          NodePtr n = MakeNode(NodeKind::kItem, line);
          n->children = {node, key};
          Advance();
          node = n;
        } else {
          return Fail(Cur(), "expected an attribute name after '.'");
        }
      } else if (IsOp("[")) {
        Advance();
        FAMQ_ASSIGN_OR_RETURN(node, ParseSubscript(node, line));
      } else if (IsOp("(")) {
        FAMQ_ASSIGN_OR_RETURN(node, ParseCall(node));
      } else {
        return node;
      }
    }
  }

  // After '[': key ']' or [start]:[stop][:[step]] ']'
  Result<NodePtr> ParseSubscript(NodePtr obj, uint32_t line) {
    NodePtr parts[3];
    int part = 0;
    bool slice = false;
    while (true) {
      if (IsOp(":")) {
        slice = true;
        if (++part > 2) return Fail(Cur(), "too many ':' in a slice");
        Advance();
        continue;
      }
      if (IsOp("]")) break;
      if (parts[part]) return Fail(Cur(), "expected ']'");
      FAMQ_ASSIGN_OR_RETURN(parts[part], ParseExpression(true));
    }
    Advance();
    if (!slice) {
      if (!parts[0]) return Fail(Cur(), "empty subscript");
      NodePtr n = MakeNode(NodeKind::kItem, line);
      n->children = {obj, parts[0]};
      return n;
    }
    NodePtr n = MakeNode(NodeKind::kSlice, line);
    n->children = {obj, parts[0], parts[1], parts[2]};
    return n;
  }

  // Parses '(' args ')' into node->children (after `first`) and kwargs.
  Status ParseArgs(const NodePtr& node) {
    FAMQ_RETURN_IF_ERROR(Expect("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) FAMQ_RETURN_IF_ERROR(Expect(","));
      first = false;
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) {
        return Unsupported("chat template " + lexer_.Where(Cur().offset) + ": *args and **kwargs are not supported");
      }
      if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == "=") {
        std::string key = Cur().text;
        Advance();
        Advance();
        FAMQ_ASSIGN_OR_RETURN(NodePtr v, ParseExpression(true));
        node->kwargs.emplace_back(key, v);
      } else {
        if (!node->kwargs.empty()) return Fail(Cur(), "positional argument after a keyword argument");
        FAMQ_ASSIGN_OR_RETURN(NodePtr v, ParseExpression(true));
        node->children.push_back(v);
      }
    }
    Advance();
    return Status::Ok();
  }

  Result<NodePtr> ParseCall(NodePtr callee) {
    NodePtr n = MakeNode(NodeKind::kCall, Line(Cur()));
    n->children.push_back(callee);
    FAMQ_RETURN_IF_ERROR(ParseArgs(n));
    return n;
  }

  Result<NodePtr> ParseFilterExpr(NodePtr node) {
    ChainGuard chain{this};
    while (true) {
      if (IsOp("|") || IsName("is") || IsOp("(")) FAMQ_RETURN_IF_ERROR(chain.Link());
      if (IsOp("|")) {
        Advance();
        const Token& t = Cur();
        FAMQ_ASSIGN_OR_RETURN(std::string name, ExpectName());
        while (IsOp(".")) {  // dotted filter names
          Advance();
          FAMQ_ASSIGN_OR_RETURN(std::string part, ExpectName());
          name += "." + part;
        }
        if (!Contains(kFilters, name)) {
          return Unsupported("chat template " + lexer_.Where(t.offset) + ": filter '" + name + "' is not supported");
        }
        NodePtr n = MakeNode(NodeKind::kFilter, Line(t));
        n->str = name;
        n->children.push_back(node);
        if (IsOp("(")) FAMQ_RETURN_IF_ERROR(ParseArgs(n));
        node = n;
      } else if (IsName("is")) {
        Advance();
        NodePtr n = MakeNode(NodeKind::kTest, Line(Cur()));
        if (IsName("not")) {
          n->negate = true;
          Advance();
        }
        const Token& t = Cur();
        std::string name;
        if (t.type == Tok::kName) {
          name = t.text;
        } else if (t.type == Tok::kOp) {
          name = t.text;  // `is ==`, `is <` ...
        }
        if (!Contains(kTests, name)) {
          if (name.empty()) return Fail(t, "expected a test name after 'is'");
          return Unsupported("chat template " + lexer_.Where(t.offset) + ": test '" + name + "' is not supported");
        }
        Advance();
        n->str = name;
        n->children.push_back(node);
        if (IsOp("(")) {
          FAMQ_RETURN_IF_ERROR(ParseArgs(n));
        } else if ((Cur().type == Tok::kName || Cur().type == Tok::kString || Cur().type == Tok::kInt ||
                    Cur().type == Tok::kFloat || IsOp("[") || IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          if (IsName("is")) return Fail(Cur(), "cannot chain tests with 'is'");
          FAMQ_ASSIGN_OR_RETURN(NodePtr arg, ParsePrimary());
          FAMQ_ASSIGN_OR_RETURN(arg, ParsePostfix(arg));
          n->children.push_back(arg);
        }
        node = n;
      } else if (IsOp("(")) {
        FAMQ_ASSIGN_OR_RETURN(node, ParseCall(node));
      } else {
        return node;
      }
    }
  }

  const Lexer& lexer_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  uint32_t depth_ = 0;
  uint32_t loop_depth_ = 0;  // for-loop bodies around the current statement
};

// ============================================================== interpreter

enum class Flow { kNormal, kBreak, kContinue };

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Python slice.indices() followed by the index walk.
std::vector<int64_t> SliceIndices(int64_t len, std::optional<int64_t> start, std::optional<int64_t> stop,
                                  int64_t step) {
  const int64_t lower = step > 0 ? 0 : -1;
  const int64_t upper = step > 0 ? len : len - 1;
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += len;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  const int64_t b = clamp(start, step > 0 ? lower : upper);
  const int64_t e = clamp(stop, step > 0 ? upper : lower);
  std::vector<int64_t> out;
  if (step > 0) {
    for (int64_t i = b; i < e; i += step) out.push_back(i);
  } else {
    for (int64_t i = b; i > e; i += step) out.push_back(i);
  }
  return out;
}

class Interpreter {
 public:
  Interpreter(const RenderLimits& limits, std::string* out)
      : limits_(limits), budget_(limits.max_steps, limits.max_bytes), out_(out) {}

  void PushFrame() { frames_.emplace_back(); }
  void PopFrame() { frames_.pop_back(); }
  void Define(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

  Result<Flow> Exec(const Node& body) {
    for (const NodePtr& child : body.children) {
      FAMQ_RETURN_IF_ERROR(budget_.Step());
      FAMQ_ASSIGN_OR_RETURN(Flow flow, ExecOne(*child));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  // ------------------------------------------------------------ errors
  Status Err(const Node& n, const std::string& what) const {
    return InvalidArgument("chat template line " + std::to_string(n.line) + ": " + what);
  }
  Status Unsup(const Node& n, const std::string& what) const {
    return Unsupported("chat template line " + std::to_string(n.line) + ": " + what);
  }
  // Adds the line to errors raised by value helpers ("chat template: ...").
  Status At(const Node& n, Status s) const {
    static constexpr std::string_view kPrefix = "chat template: ";
    if (s.ok() || s.message().compare(0, kPrefix.size(), kPrefix) != 0) return s;
    return Status(s.code(), "chat template line " + std::to_string(n.line) + ": " + s.message().substr(kPrefix.size()));
  }
  template <typename T>
  Result<T> At(const Node& n, Result<T> r) const {
    if (r.ok()) return r;
    return At(n, r.status());
  }
  static std::string UndefinedWhat(const Node& expr) {
    switch (expr.kind) {
      case NodeKind::kName: return Quoted(expr.str) + " is undefined";
      case NodeKind::kAttr: return "attribute " + Quoted(expr.str) + " is undefined";
      case NodeKind::kItem: return "the item is undefined";
      default: return "the value is undefined";
    }
  }

  // ------------------------------------------------------------ output
  Status Emit(std::string_view s) {
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
    if (out_->size() + s.size() > limits_.max_output_bytes) {
      return OutOfMemory("chat template: render budget exceeded: output longer than " +
                         std::to_string(limits_.max_output_bytes) + " bytes");
    }
    out_->append(s);
    return Status::Ok();
  }
  Result<Value> MakeString(std::string s) {
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
    return Value::String(std::move(s));
  }
  Result<std::string> Str(const Value& v) {
    std::string s;
    FAMQ_RETURN_IF_ERROR(AppendStr(v, budget_, &s));
    return s;
  }

  // ------------------------------------------------------------ statements
  Result<Flow> ExecOne(const Node& n) {
    switch (n.kind) {
      case NodeKind::kText: FAMQ_RETURN_IF_ERROR(Emit(n.str)); return Flow::kNormal;
      case NodeKind::kPrint: {
        FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[0]));
        if (v.is_string()) {
          FAMQ_RETURN_IF_ERROR(Emit(v.str()));
        } else {
          FAMQ_ASSIGN_OR_RETURN(std::string s, At(n, Str(v)));
          FAMQ_RETURN_IF_ERROR(Emit(s));
        }
        return Flow::kNormal;
      }
      case NodeKind::kIf: {
        const size_t count = n.children.size();
        for (size_t i = 0; i + 1 < count; i += 2) {
          FAMQ_ASSIGN_OR_RETURN(Value cond, Eval(*n.children[i]));
          if (Truthy(cond)) return Exec(*n.children[i + 1]);
        }
        if (count % 2 == 1) return Exec(*n.children.back());
        return Flow::kNormal;
      }
      case NodeKind::kFor: return ExecFor(n);
      case NodeKind::kSet: {
        FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[0]));
        return Assign(n, v);
      }
      case NodeKind::kSetBlock: {
        std::string captured;
        std::string* saved = out_;
        out_ = &captured;
        Result<Flow> r = Exec(*n.children[0]);
        out_ = saved;
        if (!r.ok()) return r.status();
        Define(n.names[0], Value::String(std::move(captured)));
        return r;
      }
      case NodeKind::kBreak: return Flow::kBreak;
      case NodeKind::kContinue: return Flow::kContinue;
      case NodeKind::kBody: return Exec(n);
      default: return Err(n, "internal error: not a statement");
    }
  }

  Result<Flow> Assign(const Node& n, const Value& v) {
    if (n.attr_set) {
      const Value* target = Lookup(n.names[0]);
      if (target == nullptr || !target->is_namespace()) {
        return Err(n, "cannot assign attribute " + Quoted(n.names[1]) + " on " + Quoted(n.names[0]) +
                          ": not a namespace()");
      }
      if (v.has_namespace()) return Unsup(n, "storing a namespace() inside a namespace() is not supported");
      target->mutable_namespace().Set(n.names[1], v);
      return Flow::kNormal;
    }
    FAMQ_RETURN_IF_ERROR(Bind(n, n.names, v));
    return Flow::kNormal;
  }

  Status Bind(const Node& n, const std::vector<std::string>& names, const Value& v) {
    if (names.size() == 1) {
      Define(names[0], v);
      return Status::Ok();
    }
    if (!v.is_list()) return Err(n, std::string("cannot unpack a value of type ") + v.kind_name());
    if (v.items().size() != names.size()) {
      return Err(n, "cannot unpack " + std::to_string(v.items().size()) + " values into " +
                        std::to_string(names.size()) + " names");
    }
    for (size_t i = 0; i < names.size(); ++i) Define(names[i], v.items()[i]);
    return Status::Ok();
  }

  Result<std::vector<Value>> Iterate(const Node& n, const Value& v) {
    std::vector<Value> items;
    switch (v.kind()) {
      case Value::Kind::kUndefined: break;
      case Value::Kind::kList:
        FAMQ_RETURN_IF_ERROR(budget_.Step(v.items().size()));
        items = v.items();
        break;
      case Value::Kind::kDict:
        FAMQ_RETURN_IF_ERROR(budget_.Step(v.object().entries.size()));
        for (const auto& [k, item] : v.object().entries) items.push_back(Value::String(k));
        break;
      case Value::Kind::kString: {
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(v.str().size()));
        size_t pos = 0;
        while (pos < v.str().size()) {
          size_t start = pos;
          Utf8Next(v.str(), &pos);
          FAMQ_RETURN_IF_ERROR(budget_.Step());
          items.push_back(Value::String(v.str().substr(start, pos - start)));
        }
        break;
      }
      default: return Err(n, std::string("'") + v.kind_name() + "' object is not iterable");
    }
    return items;
  }

  Result<Flow> ExecFor(const Node& n) {
    const Node& iter_node = *n.children[0];
    const Node& body = *n.children[1];
    const Node* else_body = n.children[2].get();
    const Node* filter = n.children[3].get();
    FAMQ_ASSIGN_OR_RETURN(Value iterable, Eval(iter_node));
    FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(iter_node, iterable));
    if (filter != nullptr) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        FAMQ_RETURN_IF_ERROR(budget_.Step());
        PushFrame();
        Status s = Bind(n, n.names, item);
        Result<Value> keep = s.ok() ? Eval(*filter) : Result<Value>(s);
        PopFrame();
        if (!keep.ok()) return keep.status();
        if (Truthy(keep.value())) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (else_body == nullptr) return Flow::kNormal;
      PushFrame();
      Result<Flow> r = Exec(*else_body);
      PopFrame();
      if (!r.ok()) return r.status();
      return r;  // break/continue in the else part belong to an outer loop
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      FAMQ_RETURN_IF_ERROR(budget_.Step());
      PushFrame();
      FAMQ_RETURN_IF_ERROR(Bind(n, n.names, items[static_cast<size_t>(i)]));
      FAMQ_ASSIGN_OR_RETURN(Value loop, Value::Dict({{"index", Value::Int(i + 1)},
                                                     {"index0", Value::Int(i)},
                                                     {"revindex", Value::Int(length - i)},
                                                     {"revindex0", Value::Int(length - i - 1)},
                                                     {"first", Value::Bool(i == 0)},
                                                     {"last", Value::Bool(i == length - 1)},
                                                     {"length", Value::Int(length)},
                                                     {"depth", Value::Int(1)},
                                                     {"depth0", Value::Int(0)}}));
      Define("loop", std::move(loop));
      FAMQ_ASSIGN_OR_RETURN(Flow flow, Exec(body));
      PopFrame();
      if (flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  // ------------------------------------------------------------ lookup
  const Value* Lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return &found->second;
    }
    return nullptr;
  }

  Result<Value> GetAttr(const Node& n, const Value& obj, const std::string& name) {
    if (obj.is_undefined()) return Err(n, UndefinedWhat(*n.children[0]));
    if (obj.is_dict() || obj.is_namespace()) {
      const Value* v = obj.object().Find(name);
      return v != nullptr ? *v : Value();
    }
    return Value();
  }

  Result<Value> GetItem(const Node& n, const Value& obj, const Value& key) {
    if (obj.is_undefined()) return Err(n, UndefinedWhat(*n.children[0]));
    if (obj.is_dict() || obj.is_namespace()) {
      if (!key.is_string()) return Value();
      const Value* v = obj.object().Find(key.str());
      return v != nullptr ? *v : Value();
    }
    if (!(key.is_int() || key.is_bool())) return Value();
    int64_t i = key.int_value();
    if (obj.is_list()) {
      const int64_t len = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += len;
      if (i < 0 || i >= len) return Value();
      return obj.items()[static_cast<size_t>(i)];
    }
    if (obj.is_string()) {
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(obj.str().size()));
      std::vector<size_t> offs = Utf8Offsets(obj.str());
      const int64_t len = static_cast<int64_t>(offs.size()) - 1;
      if (i < 0) i += len;
      if (i < 0 || i >= len) return Value();
      const size_t b = offs[static_cast<size_t>(i)], e = offs[static_cast<size_t>(i) + 1];
      return Value::String(obj.str().substr(b, e - b));
    }
    return Value();
  }

  Result<std::optional<int64_t>> SliceArg(const Node* node) {
    if (node == nullptr) return std::optional<int64_t>();
    FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*node));
    if (v.is_none() || v.is_undefined()) return std::optional<int64_t>();
    if (!(v.is_int() || v.is_bool())) return Err(*node, "slice indices must be integers or none");
    return std::optional<int64_t>(v.int_value());
  }

  Result<Value> EvalSlice(const Node& n) {
    FAMQ_ASSIGN_OR_RETURN(Value obj, Eval(*n.children[0]));
    FAMQ_ASSIGN_OR_RETURN(std::optional<int64_t> start, SliceArg(n.children[1].get()));
    FAMQ_ASSIGN_OR_RETURN(std::optional<int64_t> stop, SliceArg(n.children[2].get()));
    FAMQ_ASSIGN_OR_RETURN(std::optional<int64_t> step, SliceArg(n.children[3].get()));
    if (obj.is_undefined()) return Err(n, UndefinedWhat(*n.children[0]));
    if (step && *step == 0) return Err(n, "slice step cannot be zero");
    const int64_t st = step.value_or(1);
    if (st == std::numeric_limits<int64_t>::min()) return Err(n, "slice step out of range");
    if (obj.is_list()) {
      std::vector<int64_t> idx = SliceIndices(static_cast<int64_t>(obj.items().size()), start, stop, st);
      FAMQ_RETURN_IF_ERROR(budget_.Step(idx.size()));
      std::vector<Value> items;
      items.reserve(idx.size());
      for (int64_t i : idx) items.push_back(obj.items()[static_cast<size_t>(i)]);
      return At(n, Value::List(std::move(items)));
    }
    if (obj.is_string()) {
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(obj.str().size()));
      std::vector<size_t> offs = Utf8Offsets(obj.str());
      std::vector<int64_t> idx = SliceIndices(static_cast<int64_t>(offs.size()) - 1, start, stop, st);
      std::string s;
      for (int64_t i : idx) {
        const size_t b = offs[static_cast<size_t>(i)], e = offs[static_cast<size_t>(i) + 1];
        s.append(obj.str(), b, e - b);
      }
      return MakeString(std::move(s));
    }
    return Value();
  }

  // ------------------------------------------------------------ expressions
  Result<Value> Eval(const Node& n) {
    FAMQ_RETURN_IF_ERROR(budget_.Step());
    switch (n.kind) {
      case NodeKind::kLiteral: return n.value;
      case NodeKind::kName: {
        const Value* v = Lookup(n.str);
        return v != nullptr ? *v : Value();
      }
      case NodeKind::kAttr: {
        FAMQ_ASSIGN_OR_RETURN(Value obj, Eval(*n.children[0]));
        return GetAttr(n, obj, n.str);
      }
      case NodeKind::kItem: {
        FAMQ_ASSIGN_OR_RETURN(Value obj, Eval(*n.children[0]));
        FAMQ_ASSIGN_OR_RETURN(Value key, Eval(*n.children[1]));
        return GetItem(n, obj, key);
      }
      case NodeKind::kSlice: return EvalSlice(n);
      case NodeKind::kCall: return EvalCall(n);
      case NodeKind::kFilter: {
        FAMQ_ASSIGN_OR_RETURN(Value operand, Eval(*n.children[0]));
        FAMQ_ASSIGN_OR_RETURN(Args args, EvalArgs(n, 1));
        FAMQ_ASSIGN_OR_RETURN(Kwargs kwargs, EvalKwargs(n));
        return At(n, ApplyFilter(n, operand, args, kwargs));
      }
      case NodeKind::kTest: {
        FAMQ_ASSIGN_OR_RETURN(Value operand, Eval(*n.children[0]));
        FAMQ_ASSIGN_OR_RETURN(Args args, EvalArgs(n, 1));
        FAMQ_ASSIGN_OR_RETURN(bool r, At(n, ApplyTest(n, operand, args)));
        return Value::Bool(r != n.negate);
      }
      case NodeKind::kUnary: {
        FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[0]));
        if (n.str == "not") return Value::Bool(!Truthy(v));
        if (!v.is_number()) return Err(n, "bad operand type for unary " + n.str + ": '" + v.kind_name() + "'");
        if (n.str == "+") return v.is_bool() ? Value::Int(v.int_value()) : v;
        if (v.is_float()) return Value::Float(-v.float_value());
        if (v.int_value() == std::numeric_limits<int64_t>::min()) return Err(n, "integer overflow");
        return Value::Int(-v.int_value());
      }
      case NodeKind::kBinary: return EvalBinary(n);
      case NodeKind::kCompare: {
        FAMQ_ASSIGN_OR_RETURN(Value left, Eval(*n.children[0]));
        for (size_t i = 0; i < n.ops.size(); ++i) {
          FAMQ_ASSIGN_OR_RETURN(Value right, Eval(*n.children[i + 1]));
          FAMQ_ASSIGN_OR_RETURN(bool r, Compare(n, n.ops[i], left, right));
          if (!r) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case NodeKind::kCondExpr: {
        FAMQ_ASSIGN_OR_RETURN(Value cond, Eval(*n.children[0]));
        if (Truthy(cond)) return Eval(*n.children[1]);
        if (n.children[2]) return Eval(*n.children[2]);
        return Value();
      }
      case NodeKind::kList: {
        FAMQ_ASSIGN_OR_RETURN(Args items, EvalArgs(n, 0));
        return At(n, Value::List(std::move(items)));
      }
      case NodeKind::kDict: {
        std::vector<std::pair<std::string, Value>> entries;
        for (size_t i = 0; i + 1 < n.children.size(); i += 2) {
          FAMQ_ASSIGN_OR_RETURN(Value k, Eval(*n.children[i]));
          FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[i + 1]));
          if (!k.is_string()) return Unsup(n, std::string("dict keys of type ") + k.kind_name() + " are not supported");
          entries.emplace_back(k.str(), std::move(v));
        }
        return At(n, Value::Dict(std::move(entries)));
      }
      default: return Err(n, "internal error: not an expression");
    }
  }

  Result<Args> EvalArgs(const Node& n, size_t from) {
    Args args;
    for (size_t i = from; i < n.children.size(); ++i) {
      FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[i]));
      args.push_back(std::move(v));
    }
    return args;
  }

  Result<Kwargs> EvalKwargs(const Node& n) {
    Kwargs kwargs;
    for (const auto& [k, node] : n.kwargs) {
      FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*node));
      kwargs.emplace_back(k, std::move(v));
    }
    return kwargs;
  }

  Result<bool> Compare(const Node& n, const std::string& op, const Value& a, const Value& b) {
    if (op == "==" || op == "!=") {
      FAMQ_ASSIGN_OR_RETURN(bool eq, At(n, Equals(a, b, budget_)));
      return op == "==" ? eq : !eq;
    }
    if (op == "in" || op == "not in") {
      FAMQ_ASSIGN_OR_RETURN(bool in, Contains(n, b, a));
      return op == "in" ? in : !in;
    }
    if (a.is_undefined() || b.is_undefined()) return Err(n, "cannot compare an undefined value with '" + op + "'");
    if (op == "<") return At(n, Less(a, b, budget_));
    if (op == ">") return At(n, Less(b, a, budget_));
    if (op == "<=") {
      FAMQ_ASSIGN_OR_RETURN(bool gt, At(n, Less(b, a, budget_)));
      return !gt;
    }
    FAMQ_ASSIGN_OR_RETURN(bool lt, At(n, Less(a, b, budget_)));  // ">="
    return !lt;
  }

  // Python `needle in haystack`.
  Result<bool> Contains(const Node& n, const Value& haystack, const Value& needle) {
    switch (haystack.kind()) {
      case Value::Kind::kUndefined: return false;
      case Value::Kind::kString:
        if (!needle.is_string()) {
          return Err(n, std::string("'in <string>' requires string as left operand, not ") + needle.kind_name());
        }
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(haystack.str().size()));
        return haystack.str().find(needle.str()) != std::string::npos;
      case Value::Kind::kList:
        for (const Value& item : haystack.items()) {
          FAMQ_ASSIGN_OR_RETURN(bool eq, At(n, Equals(item, needle, budget_)));
          if (eq) return true;
        }
        return false;
      case Value::Kind::kDict:
        return needle.is_string() && haystack.object().Find(needle.str()) != nullptr;
      default:
        return Err(n, std::string("argument of type '") + haystack.kind_name() + "' is not iterable");
    }
  }

  Result<Value> EvalBinary(const Node& n) {
    const std::string& op = n.str;
    FAMQ_ASSIGN_OR_RETURN(Value a, Eval(*n.children[0]));
    if (op == "and") return Truthy(a) ? Eval(*n.children[1]) : a;
    if (op == "or") return Truthy(a) ? a : Eval(*n.children[1]);
    FAMQ_ASSIGN_OR_RETURN(Value b, Eval(*n.children[1]));
    if (op == "~") {
      FAMQ_ASSIGN_OR_RETURN(std::string s, At(n, Str(a)));
      FAMQ_RETURN_IF_ERROR(At(n, AppendStr(b, budget_, &s)));
      return MakeString(std::move(s));
    }
    if (a.is_undefined()) return Err(n, UndefinedWhat(*n.children[0]));
    if (b.is_undefined()) return Err(n, UndefinedWhat(*n.children[1]));
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(a.str().size() + b.str().size()));
        return Value::String(a.str() + b.str());
      }
      if (a.is_list() && b.is_list()) {
        FAMQ_RETURN_IF_ERROR(budget_.Step(a.items().size() + b.items().size()));
        std::vector<Value> items = a.items();
        items.insert(items.end(), b.items().begin(), b.items().end());
        return At(n, Value::List(std::move(items)));
      }
    }
    if (op == "*" && ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))) return Repeat(n, a, b.int_value());
    if (op == "*" && ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))) return Repeat(n, b, a.int_value());
    if (op == "%" && a.is_string()) return Unsup(n, "printf-style string formatting ('%') is not supported");
    if (!a.is_number() || !b.is_number()) {
      return Err(n, "unsupported operand types for " + op + ": '" + a.kind_name() + "' and '" + b.kind_name() + "'");
    }
    const bool as_float = a.is_float() || b.is_float() || op == "/";
    if (as_float) {
      const double x = a.as_double(), y = b.as_double();
      if ((op == "/" || op == "//" || op == "%") && y == 0) return Err(n, "division by zero");
      if (op == "+") return Value::Float(x + y);
      if (op == "-") return Value::Float(x - y);
      if (op == "*") return Value::Float(x * y);
      if (op == "/") return Value::Float(x / y);
      if (op == "//") return Value::Float(std::floor(x / y));
      if (op == "%") {
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::Float(m);
      }
      return Value::Float(std::pow(x, y));  // "**"
    }
    const int64_t x = a.int_value(), y = b.int_value();
    int64_t r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if (op == "//" || op == "%") {
      if (y == 0) return Err(n, "integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) {
        overflow = op == "//";
        r = 0;
      } else {
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        r = op == "//" ? q : m;
      }
    } else {  // "**"
      if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
      r = 1;
      for (int64_t k = 0; k < y && !overflow; ++k) {
        FAMQ_RETURN_IF_ERROR(budget_.Step());
        overflow = __builtin_mul_overflow(r, x, &r);
        if (r == 0 || r == 1) break;  // 0**k, 1**k
        if (r == -1 && ((y - k - 1) % 2 == 0)) break;
        if (r == -1) {
          r = 1;
          break;
        }
      }
    }
    if (overflow) return Err(n, "integer overflow (famq integers are 64-bit)");
    return Value::Int(r);
  }

  Result<Value> Repeat(const Node& n, const Value& v, int64_t times) {
    if (times <= 0) return v.is_string() ? Value::String("") : At(n, Value::List({}));
    const uint64_t unit = v.is_string() ? v.str().size() : v.items().size();
    if (unit != 0 && static_cast<uint64_t>(times) > limits_.max_bytes / unit) {
      return OutOfMemory("chat template line " + std::to_string(n.line) + ": render budget exceeded by repetition");
    }
    if (v.is_string()) {
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(unit * static_cast<uint64_t>(times)));
      std::string s;
      for (int64_t i = 0; i < times; ++i) s += v.str();
      return Value::String(std::move(s));
    }
    FAMQ_RETURN_IF_ERROR(budget_.Step(unit * static_cast<uint64_t>(times)));
    std::vector<Value> items;
    for (int64_t i = 0; i < times; ++i) items.insert(items.end(), v.items().begin(), v.items().end());
    return At(n, Value::List(std::move(items)));
  }

  // ------------------------------------------------------------ calls
  // Positional-or-keyword argument `i` named `name`; nullptr when absent.
  static const Value* Arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name) {
    if (i < args.size()) return &args[i];
    for (const auto& [k, v] : kwargs) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  static bool Given(const Value* v) { return v != nullptr && !v->is_none() && !v->is_undefined(); }

  Status CheckArity(const Node& n, const std::string& what, const Args& args, const Kwargs& kwargs,
                    std::initializer_list<std::string_view> names) const {
    if (args.size() > names.size()) {
      return Err(n, what + " takes at most " + std::to_string(names.size()) + " arguments (" +
                        std::to_string(args.size()) + " given)");
    }
    for (const auto& [k, v] : kwargs) {
      if (std::find(names.begin(), names.end(), k) == names.end()) {
        return Err(n, what + " got an unexpected keyword argument " + Quoted(k));
      }
    }
    return Status::Ok();
  }

  Result<Value> EvalCall(const Node& n) {
    const Node& callee = *n.children[0];
    FAMQ_ASSIGN_OR_RETURN(Args args, EvalArgs(n, 1));
    FAMQ_ASSIGN_OR_RETURN(Kwargs kwargs, EvalKwargs(n));
    if (callee.kind == NodeKind::kAttr) {
      FAMQ_ASSIGN_OR_RETURN(Value obj, Eval(*callee.children[0]));
      if (obj.is_undefined()) return Err(n, UndefinedWhat(*callee.children[0]));
      if (obj.is_string()) return At(n, StringMethod(n, obj.str(), callee.str, args, kwargs));
      if (obj.is_dict()) return At(n, DictMethod(n, obj, callee.str, args, kwargs));
      return Unsup(n, std::string("method ") + Quoted(callee.str) + " of " + obj.kind_name() + " is not supported");
    }
    if (callee.kind == NodeKind::kName && Lookup(callee.str) == nullptr) {
      return At(n, CallGlobal(n, callee.str, args, kwargs));
    }
    FAMQ_ASSIGN_OR_RETURN(Value v, Eval(callee));
    if (v.is_undefined()) return Err(n, UndefinedWhat(callee));
    return Err(n, std::string("'") + v.kind_name() + "' object is not callable");
  }

  Result<Value> CallGlobal(const Node& n, const std::string& name, const Args& args, const Kwargs& kwargs) {
    if (name == "raise_exception") {
      std::string msg;
      if (!args.empty()) {
        FAMQ_ASSIGN_OR_RETURN(msg, Str(args[0]));
      }
      return InvalidArgument("chat template line " + std::to_string(n.line) + ": raise_exception: " + msg);
    }
    if (name == "namespace" || name == "dict") {
      Value ns = Value::Namespace();
      std::vector<std::pair<std::string, Value>> entries;
      if (args.size() > 1) return Err(n, name + "() takes at most 1 positional argument");
      if (args.size() == 1) {
        if (!args[0].is_dict()) return Err(n, name + "() positional argument must be a dict");
        entries = args[0].object().entries;
      }
      for (const auto& kv : kwargs) entries.push_back(kv);
      if (name == "dict") return Value::Dict(std::move(entries));
      for (auto& [k, v] : entries) {
        if (v.has_namespace()) return Unsup(n, "storing a namespace() inside a namespace() is not supported");
        ns.mutable_namespace().Set(std::move(k), std::move(v));
      }
      return ns;
    }
    if (name == "range") {
      if (!kwargs.empty() || args.empty() || args.size() > 3) return Err(n, "range() takes 1 to 3 integer arguments");
      for (const Value& a : args) {
        if (!(a.is_int() || a.is_bool())) return Err(n, "range() arguments must be integers");
      }
      int64_t start = 0, stop = 0, step = 1;
      if (args.size() == 1) {
        stop = args[0].int_value();
      } else {
        start = args[0].int_value();
        stop = args[1].int_value();
        if (args.size() == 3) step = args[2].int_value();
      }
      if (step == 0) return Err(n, "range() arg 3 must not be zero");
      const long double span = (static_cast<long double>(stop) - static_cast<long double>(start)) / step;
      const uint64_t count = span <= 0 ? 0 : static_cast<uint64_t>(std::ceil(span));
      if (count > limits_.max_steps) return Err(n, "range() is longer than the render step budget");
      FAMQ_RETURN_IF_ERROR(budget_.Step(count));
      std::vector<Value> items;
      items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) items.push_back(Value::Int(start + static_cast<int64_t>(i) * step));
      return Value::List(std::move(items));
    }
    return Err(n, Quoted(name) + " is undefined");
  }

  Result<Value> DictMethod(const Node& n, const Value& obj, const std::string& name, const Args& args,
                           const Kwargs& kwargs) {
    const Object& o = obj.object();
    if (name == "items" || name == "keys" || name == "values") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name + "()", args, kwargs, {}));
      FAMQ_RETURN_IF_ERROR(budget_.Step(o.entries.size()));
      std::vector<Value> items;
      for (const auto& [k, v] : o.entries) {
        if (name == "keys") {
          items.push_back(Value::String(k));
        } else if (name == "values") {
          items.push_back(v);
        } else {
          FAMQ_ASSIGN_OR_RETURN(Value pair, Value::List({Value::String(k), v}));
          items.push_back(std::move(pair));
        }
      }
      return Value::List(std::move(items));
    }
    if (name == "get") {
      if (args.empty() || args.size() > 2 || !kwargs.empty()) return Err(n, "get() takes 1 or 2 arguments");
      const Value* v = args[0].is_string() ? o.Find(args[0].str()) : nullptr;
      if (v != nullptr) return *v;
      return args.size() == 2 ? args[1] : Value::None();
    }
    if (o.Find(name) != nullptr) return Err(n, Quoted(name) + " is not callable");
    return Unsup(n, "method " + Quoted(name) + " of dict is not supported");
  }

  // Set of code points for strip(chars).
  static std::vector<uint32_t> CodePoints(std::string_view s) {
    std::vector<uint32_t> cps;
    size_t pos = 0;
    while (pos < s.size()) cps.push_back(Utf8Next(s, &pos));
    return cps;
  }

  Result<std::string> Strip(const std::string& s, const Value* chars, bool left, bool right) {
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
    std::vector<uint32_t> set;
    const bool whitespace = !Given(chars);
    if (!whitespace) {
      if (!chars->is_string()) return InvalidArgument("chat template: strip arg must be None or str");
      set = CodePoints(chars->str());
    }
    auto strip_cp = [&](uint32_t cp) {
      return whitespace ? IsPySpace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
    };
    std::vector<size_t> offs = Utf8Offsets(s);
    size_t b = 0, e = offs.size() - 1;
    if (left) {
      while (b < e) {
        size_t p = offs[b];
        if (!strip_cp(Utf8Next(s, &p))) break;
        ++b;
      }
    }
    if (right) {
      while (e > b) {
        size_t p = offs[e - 1];
        if (!strip_cp(Utf8Next(s, &p))) break;
        --e;
      }
    }
    return s.substr(offs[b], offs[e] - offs[b]);
  }

  Result<Value> Split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v) {
    int64_t maxsplit = -1;
    if (Given(maxsplit_v)) {
      if (!maxsplit_v->is_int()) return Err(n, "split() maxsplit must be an integer");
      maxsplit = maxsplit_v->int_value();
    }
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
    std::vector<Value> parts;
    if (!Given(sep)) {
      size_t pos = 0;
      while (true) {
        pos += LStripSpaceLen(std::string_view(s).substr(pos));
        if (pos >= s.size()) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
          parts.push_back(Value::String(std::string(RStripSpace(std::string_view(s).substr(pos)))));
          break;
        }
        size_t end = pos;
        while (end < s.size()) {
          size_t p = end;
          if (IsPySpace(Utf8Next(s, &p))) break;
          end = p;
        }
        parts.push_back(Value::String(s.substr(pos, end - pos)));
        FAMQ_RETURN_IF_ERROR(budget_.Step());
        pos = end;
      }
    } else {
      if (!sep->is_string()) return Err(n, std::string("split() separator must be str, not ") + sep->kind_name());
      const std::string& d = sep->str();
      if (d.empty()) return Err(n, "split(): empty separator");
      size_t pos = 0;
      while (true) {
        size_t hit = s.find(d, pos);
        if (hit == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit)) {
          parts.push_back(Value::String(s.substr(pos)));
          break;
        }
        parts.push_back(Value::String(s.substr(pos, hit - pos)));
        FAMQ_RETURN_IF_ERROR(budget_.Step());
        pos = hit + d.size();
      }
    }
    return Value::List(std::move(parts));
  }

  static std::string AsciiMap(std::string s, int (*f)(int)) {
    for (char& c : s) {
      if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(static_cast<unsigned char>(c)));
    }
    return s;
  }
  static std::string Capitalize(const std::string& s) {
    std::string r = AsciiMap(s, [](int c) { return std::tolower(c); });
    if (!r.empty() && static_cast<unsigned char>(r[0]) < 0x80) r[0] = static_cast<char>(std::toupper(r[0]));
    return r;
  }
  static std::string Title(const std::string& s) {
    std::string r = s;
    bool prev_letter = false;
    for (char& c : r) {
      const unsigned char u = static_cast<unsigned char>(c);
      const bool letter = u < 0x80 && std::isalpha(u);
      if (letter) c = static_cast<char>(prev_letter ? std::tolower(u) : std::toupper(u));
      prev_letter = letter || u >= 0x80;
    }
    return r;
  }

  Result<std::string> Replace(const Node& n, const std::string& s, const Args& args, const Kwargs& kwargs,
                              size_t first) {
    const Value* old_v = Arg(args, kwargs, first, "old");
    const Value* new_v = Arg(args, kwargs, first + 1, "new");
    const Value* count_v = Arg(args, kwargs, first + 2, "count");
    if (old_v == nullptr || new_v == nullptr || !old_v->is_string()) return Err(n, "replace() needs old and new strings");
    FAMQ_ASSIGN_OR_RETURN(std::string repl, Str(*new_v));
    int64_t count = -1;
    if (Given(count_v)) {
      if (!count_v->is_int()) return Err(n, "replace() count must be an integer");
      count = count_v->int_value();
    }
    const std::string& from = old_v->str();
    std::string out;
    if (from.empty()) {  // Python inserts `repl` around every code point
      std::vector<size_t> offs = Utf8Offsets(s);
      for (size_t i = 0; i < offs.size(); ++i) {
        if (count < 0 || static_cast<int64_t>(i) < count) out += repl;
        if (i + 1 < offs.size()) out.append(s, offs[i], offs[i + 1] - offs[i]);
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(repl.size() + 1));
      }
      return out;
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t hit = s.find(from, pos);
      if (hit == std::string::npos) break;
      out.append(s, pos, hit - pos);
      out += repl;
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(hit - pos + repl.size()));
      pos = hit + from.size();
      ++done;
    }
    out.append(s, pos, std::string::npos);
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size() - pos));
    return out;
  }

  Result<Value> StringMethod(const Node& n, const std::string& s, const std::string& name, const Args& args,
                             const Kwargs& kwargs) {
    if (name == "startswith" || name == "endswith") {
      if (args.size() != 1 || !kwargs.empty()) return Err(n, name + "() takes exactly one argument");
      std::vector<Value> prefixes;
      if (args[0].is_string()) {
        prefixes.push_back(args[0]);
      } else if (args[0].is_list()) {
        prefixes = args[0].items();
      } else {
        return Err(n, name + "() argument must be str or a tuple of str");
      }
      for (const Value& p : prefixes) {
        if (!p.is_string()) return Err(n, name + "() argument must be str or a tuple of str");
        const std::string& x = p.str();
        if (x.size() <= s.size() &&
            (name == "startswith" ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0)) {
          return Value::Bool(true);
        }
      }
      return Value::Bool(false);
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name + "()", args, kwargs, {"chars"}));
      FAMQ_ASSIGN_OR_RETURN(std::string r, Strip(s, Arg(args, kwargs, 0, "chars"), name != "rstrip", name != "lstrip"));
      return Value::String(std::move(r));
    }
    if (name == "split") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "split()", args, kwargs, {"sep", "maxsplit"}));
      return Split(n, s, Arg(args, kwargs, 0, "sep"), Arg(args, kwargs, 1, "maxsplit"));
    }
    if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name + "()", args, kwargs, {}));
      if (name == "upper") return MakeString(AsciiMap(s, [](int c) { return std::toupper(c); }));
      if (name == "lower") return MakeString(AsciiMap(s, [](int c) { return std::tolower(c); }));
      if (name == "capitalize") return MakeString(Capitalize(s));
      return MakeString(Title(s));
    }
    if (name == "replace") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "replace()", args, kwargs, {"old", "new", "count"}));
      FAMQ_ASSIGN_OR_RETURN(std::string r, Replace(n, s, args, kwargs, 0));
      return Value::String(std::move(r));
    }
    if (name == "find" || name == "count") {
      if (args.size() != 1 || !kwargs.empty() || !args[0].is_string()) {
        return Err(n, name + "() takes exactly one string argument");
      }
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
      const std::string& sub = args[0].str();
      if (name == "find") {
        size_t hit = s.find(sub);
        if (hit == std::string::npos) return Value::Int(-1);
        return Value::Int(static_cast<int64_t>(Utf8Length(std::string_view(s).substr(0, hit))));
      }
      if (sub.empty()) return Value::Int(static_cast<int64_t>(Utf8Length(s)) + 1);
      int64_t count = 0;
      for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size())) ++count;
      return Value::Int(count);
    }
    if (name == "join") {
      if (args.size() != 1 || !kwargs.empty()) return Err(n, "join() takes exactly one argument");
      FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(n, args[0]));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) {
          return Err(n, std::string("join(): expected str instance, ") + items[i].kind_name() + " found");
        }
        if (i > 0) out += s;
        out += items[i].str();
      }
      return MakeString(std::move(out));
    }
    return Unsup(n, "method " + Quoted(name) + " of str is not supported");
  }

  // ------------------------------------------------------------ filters
  Result<Value> ApplyFilter(const Node& n, const Value& v, const Args& args, const Kwargs& kwargs) {
    const std::string& name = n.str;
    if (name == "safe") return v;
    if (name == "tojson") {
      FAMQ_RETURN_IF_ERROR(
          CheckArity(n, "tojson", args, kwargs, {"ensure_ascii", "indent", "separators", "sort_keys"}));
      JsonStyle style;
      const Value* ensure_ascii = Arg(args, kwargs, 0, "ensure_ascii");
      const Value* indent = Arg(args, kwargs, 1, "indent");
      const Value* separators = Arg(args, kwargs, 2, "separators");
      const Value* sort_keys = Arg(args, kwargs, 3, "sort_keys");
      style.ensure_ascii = ensure_ascii != nullptr && Truthy(*ensure_ascii);
      style.sort_keys = sort_keys != nullptr && Truthy(*sort_keys);
      std::string indent_text;
      if (Given(indent)) {
        if (indent->is_int()) {
          indent_text.assign(static_cast<size_t>(std::clamp<int64_t>(indent->int_value(), 0, 64)), ' ');
        } else if (indent->is_string()) {
          indent_text = indent->str();
        } else {
          return Err(n, "tojson: indent must be an integer or a string");
        }
        style.indent_text = &indent_text;
        style.item_separator = ",";
      }
      if (Given(separators)) {
        if (!separators->is_list() || separators->items().size() != 2 || !separators->items()[0].is_string() ||
            !separators->items()[1].is_string()) {
          return Err(n, "tojson: separators must be a pair of strings");
        }
        style.item_separator = separators->items()[0].str();
        style.key_separator = separators->items()[1].str();
      }
      std::string out;
      FAMQ_RETURN_IF_ERROR(AppendJson(v, style, budget_, &out));
      return Value::String(std::move(out));
    }
    if (name == "length" || name == "count") {
      switch (v.kind()) {
        case Value::Kind::kUndefined: return Value::Int(0);
        case Value::Kind::kString: return Value::Int(static_cast<int64_t>(Utf8Length(v.str())));
        case Value::Kind::kList: return Value::Int(static_cast<int64_t>(v.items().size()));
        case Value::Kind::kDict: return Value::Int(static_cast<int64_t>(v.object().entries.size()));
        default: return Err(n, std::string("object of type '") + v.kind_name() + "' has no len()");
      }
    }
    if (name == "trim") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "trim", args, kwargs, {"chars"}));
      FAMQ_ASSIGN_OR_RETURN(std::string s, Str(v));
      FAMQ_ASSIGN_OR_RETURN(std::string r, Strip(s, Arg(args, kwargs, 0, "chars"), true, true));
      return Value::String(std::move(r));
    }
    if (name == "upper" || name == "lower" || name == "capitalize" || name == "title" || name == "string") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name, args, kwargs, {}));
      if (name == "string" && v.is_string()) return v;
      FAMQ_ASSIGN_OR_RETURN(std::string s, Str(v));
      if (name == "string") return Value::String(std::move(s));
      return StringMethod(n, s, name, {}, {});
    }
    if (name == "default" || name == "d") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name, args, kwargs, {"default_value", "boolean"}));
      const Value* dflt = Arg(args, kwargs, 0, "default_value");
      const Value* boolean = Arg(args, kwargs, 1, "boolean");
      const bool use_default = v.is_undefined() || (boolean != nullptr && Truthy(*boolean) && !Truthy(v));
      if (!use_default) return v;
      return dflt != nullptr ? *dflt : Value::String("");
    }
    if (name == "first" || name == "last") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name, args, kwargs, {}));
      if (v.is_list()) {
        if (v.items().empty()) return Value();
        return name == "first" ? v.items().front() : v.items().back();
      }
      FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(n, v));
      if (items.empty()) return Value();
      return name == "first" ? items.front() : items.back();
    }
    if (name == "join") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "join", args, kwargs, {"d", "attribute"}));
      if (Given(Arg(args, kwargs, 1, "attribute"))) return Unsup(n, "join(attribute=...) is not supported");
      const Value* d = Arg(args, kwargs, 0, "d");
      std::string sep;
      if (d != nullptr) {
        FAMQ_ASSIGN_OR_RETURN(sep, Str(*d));
      }
      FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(n, v));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += sep;
        FAMQ_RETURN_IF_ERROR(AppendStr(items[i], budget_, &out));
      }
      return MakeString(std::move(out));
    }
    if (name == "int" || name == "float") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, name, args, kwargs, {"default", name == "int" ? "base" : ""}));
      const Value* dflt_v = Arg(args, kwargs, 0, "default");
      Value dflt = dflt_v != nullptr ? *dflt_v : (name == "int" ? Value::Int(0) : Value::Float(0.0));
      double d = 0;
      if (v.is_number()) {
        d = v.as_double();
      } else if (v.is_string()) {
        std::string t(RStripSpace(std::string_view(v.str()).substr(LStripSpaceLen(v.str()))));
        char* end = nullptr;
        errno = 0;
        if (name == "int") {
          long long x = std::strtoll(t.c_str(), &end, 10);
          if (t.empty() || end != t.c_str() + t.size() || errno != 0) {
            d = std::strtod(t.c_str(), &end);  // Jinja falls back to int(float(s))
            if (t.empty() || end != t.c_str() + t.size() || !std::isfinite(d)) return dflt;
          } else {
            return Value::Int(x);
          }
        } else {
          d = std::strtod(t.c_str(), &end);
          if (t.empty() || end != t.c_str() + t.size()) return dflt;
        }
      } else {
        return dflt;
      }
      if (name == "float") return Value::Float(d);
      if (v.is_int() || v.is_bool()) return Value::Int(v.int_value());
      if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
      return Value::Int(static_cast<int64_t>(d));
    }
    if (name == "list") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "list", args, kwargs, {}));
      if (v.is_list()) return v;
      FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(n, v));
      return Value::List(std::move(items));
    }
    if (name == "replace") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "replace", args, kwargs, {"old", "new", "count"}));
      FAMQ_ASSIGN_OR_RETURN(std::string s, Str(v));
      FAMQ_ASSIGN_OR_RETURN(std::string r, Replace(n, s, args, kwargs, 0));
      return Value::String(std::move(r));
    }
    if (name == "reverse") {
      FAMQ_RETURN_IF_ERROR(CheckArity(n, "reverse", args, kwargs, {}));
      if (v.is_string()) {
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(v.str().size()));
        std::vector<size_t> offs = Utf8Offsets(v.str());
        std::string r;
        for (size_t i = offs.size() - 1; i > 0; --i) r.append(v.str(), offs[i - 1], offs[i] - offs[i - 1]);
        return Value::String(std::move(r));
      }
      FAMQ_ASSIGN_OR_RETURN(std::vector<Value> items, Iterate(n, v));
      std::reverse(items.begin(), items.end());
      return Value::List(std::move(items));
    }
    if (name == "abs") {
      if (v.is_float()) return Value::Float(std::fabs(v.float_value()));
      if (v.is_int() || v.is_bool()) {
        if (v.int_value() == std::numeric_limits<int64_t>::min()) return Err(n, "integer overflow");
        return Value::Int(v.int_value() < 0 ? -v.int_value() : v.int_value());
      }
      return Err(n, std::string("bad operand type for abs(): '") + v.kind_name() + "'");
    }
    if (name == "items") {
      if (v.is_undefined()) return Value::List({});
      if (!v.is_dict()) return Err(n, std::string("items: expected a mapping, got ") + v.kind_name());
      return DictMethod(n, v, "items", {}, {});
    }
    return Unsup(n, "filter " + Quoted(name) + " is not supported");
  }

  // ------------------------------------------------------------ tests
  Result<bool> ApplyTest(const Node& n, const Value& v, const Args& args) {
    const std::string& name = n.str;
    auto need_arg = [&]() -> Result<Value> {
      if (args.size() != 1) return Err(n, "test " + Quoted(name) + " takes one argument");
      return args[0];
    };
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "string") return v.is_string();
    if (name == "mapping") return v.is_dict();
    if (name == "number") return v.is_number();
    if (name == "integer") return v.is_int();
    if (name == "float") return v.is_float();
    if (name == "boolean") return v.is_bool();
    if (name == "true") return v.is_bool() && v.bool_value();
    if (name == "false") return v.is_bool() && !v.bool_value();
    if (name == "sequence") return v.is_string() || v.is_list() || v.is_dict();
    if (name == "iterable") return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    if (name == "callable") return false;
    if (name == "lower" || name == "upper") {
      if (!v.is_string()) return false;
      bool cased = false;
      for (char c : v.str()) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (!std::isalpha(u)) continue;
        cased = true;
        if (name == "lower" ? std::isupper(u) : std::islower(u)) return false;
      }
      return cased;
    }
    if (name == "odd" || name == "even" || name == "divisibleby") {
      if (!(v.is_int() || v.is_bool())) return Err(n, "test " + Quoted(name) + " needs an integer");
      int64_t d = 2;
      if (name == "divisibleby") {
        FAMQ_ASSIGN_OR_RETURN(Value a, need_arg());
        if (!(a.is_int() || a.is_bool()) || a.int_value() == 0) return Err(n, "divisibleby needs a non-zero integer");
        d = a.int_value();
        if (d == -1) return true;
        return v.int_value() % d == 0;
      }
      const bool even = v.int_value() % 2 == 0;
      return name == "even" ? even : !even;
    }
    if (name == "sameas") {
      FAMQ_ASSIGN_OR_RETURN(Value a, need_arg());
      if (v.kind() != a.kind()) return false;
      if (v.is_none() || v.is_undefined()) return true;
      if (v.is_bool()) return v.bool_value() == a.bool_value();
      if (v.is_list() || v.is_dict() || v.is_namespace()) return v.SameStorage(a);
      return Equals(v, a, budget_);
    }
    FAMQ_ASSIGN_OR_RETURN(Value a, need_arg());
    if (name == "in") return Contains(n, a, v);
    std::string op = name;
    if (op == "eq" || op == "equalto") op = "==";
    if (op == "ne") op = "!=";
    if (op == "lt") op = "<";
    if (op == "le") op = "<=";
    if (op == "gt") op = ">";
    if (op == "ge") op = ">=";
    return Compare(n, op, v, a);
  }

  const RenderLimits& limits_;
  RenderBudget budget_;
  std::string* out_;
  std::vector<std::map<std::string, Value, std::less<>>> frames_;
};

}  // namespace

// ============================================================== Parse

Result<Template> Template::Parse(std::string_view source) {
  if (source.size() > kMaxSourceBytes) {
    return InvalidArgument("chat template: source is " + std::to_string(source.size()) + " bytes, more than " +
                           std::to_string(kMaxSourceBytes));
  }
  const std::string src = NormalizeNewlines(source);
  Lexer lexer(src);
  std::vector<Token> tokens;
  FAMQ_RETURN_IF_ERROR(lexer.Run(&tokens));
  Parser parser(lexer, std::move(tokens));
  FAMQ_ASSIGN_OR_RETURN(NodePtr root, parser.ParseTemplate());
  Template t;
  t.root_ = std::move(root);
  return t;
}


Result<std::string> Template::Render(const std::vector<std::pair<std::string, Value>>& globals,
                                     const RenderLimits& limits) const {
  std::string out;
  Interpreter interp(limits, &out);
  interp.PushFrame();
  for (const auto& [name, value] : globals) interp.Define(name, value);
  interp.PushFrame();  // the template's own top-level `set`s
  if (!root_) return InvalidArgument("chat template: rendering an empty (unparsed) template");
  FAMQ_ASSIGN_OR_RETURN(Flow flow, interp.Exec(*root_));
  (void)flow;
  return out;
}

}  // namespace famq::jinja
