#include "chat_template/jinja_parser.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "chat_template/jinja.h"

namespace famq::jinja {

namespace {

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

}  // namespace

Result<NodePtr> ParseTokens(const Lexer& lexer, std::vector<Token> tokens) {
  Parser parser(lexer, std::move(tokens));
  return parser.ParseTemplate();
}

}  // namespace famq::jinja
