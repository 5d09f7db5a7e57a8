// The syntax tree of famq's Jinja2 subset: built by the parser (jinja_parser.h),
// walked by the interpreter (jinja_interpreter.h). Internal to chat_template/.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat_template/jinja_value.h"

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
inline NodePtr MakeNode(NodeKind kind, uint32_t line) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  n->line = line;
  return n;
}

}  // namespace famq::jinja
