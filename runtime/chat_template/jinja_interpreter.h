// The interpreter of famq's Jinja2 subset: walks the syntax tree with a
// RenderBudget. Statements and expressions are in jinja_interpreter.cc; calls,
// string and dict methods, filters and tests in jinja_filters.cc.
// Internal to chat_template/.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_template/jinja.h"
#include "chat_template/jinja_ast.h"
#include "chat_template/jinja_value.h"
#include "core/status.h"

namespace famq::jinja {

enum class Flow { kNormal, kBreak, kContinue };

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

// 'text' (appended piece by piece: gcc 12 -O3 warns -Wrestrict on "'" + s).
inline std::string Quoted(std::string_view s) {
  std::string q(1, '\'');
  q.append(s).push_back('\'');
  return q;
}

class Interpreter {
 public:
  Interpreter(const RenderLimits& limits, std::string* out)
      : limits_(limits), budget_(limits.max_steps, limits.max_bytes, limits.max_milliseconds), out_(out) {}

  void PushFrame() { frames_.emplace_back(); }
  void PopFrame() { frames_.pop_back(); }
  void Define(const std::string& name, Value v) { frames_.back()[name] = std::move(v); }

  Result<Flow> Exec(const Node& body);
 private:
  // ------------------------------------------------------------ errors
  Status Err(const Node& n, const std::string& what) const {
    return InvalidArgument("chat template line " + std::to_string(n.line) + ": " + what);
  }
  Status Unsup(const Node& n, const std::string& what) const {
    return Unsupported("chat template line " + std::to_string(n.line) + ": " + what);
  }
  // Adds the line to errors raised by value helpers ("chat template: ...").
  Status At(const Node& n, Status s) const;
  template <typename T>
  Result<T> At(const Node& n, Result<T> r) const {
    if (r.ok()) return r;
    return At(n, r.status());
  }
  static std::string UndefinedWhat(const Node& expr);

  // ------------------------------------------------------------ output
  Status Emit(std::string_view s);
  Result<Value> MakeString(std::string s);
  Result<std::string> Str(const Value& v);
  // Utf8Offsets(s) scans s and builds 8 bytes per code point: charged so.
  Status ChargeOffsets(const std::string& s) { return budget_.Bytes(s.size() * (1 + sizeof(size_t))); }

  // ------------------------------------------------------------ statements
  Result<Flow> ExecOne(const Node& n);
  Result<Flow> Assign(const Node& n, const Value& v);
  Status Bind(const Node& n, const std::vector<std::string>& names, const Value& v);
  Result<std::vector<Value>> Iterate(const Node& n, const Value& v);
  Result<Flow> ExecFor(const Node& n);

  // ------------------------------------------------------------ lookup
  const Value* Lookup(const std::string& name) const;
  Result<Value> GetAttr(const Node& n, const Value& obj, const std::string& name);
  Result<Value> GetItem(const Node& n, const Value& obj, const Value& key);
  Result<std::optional<int64_t>> SliceArg(const Node* node);
  Result<Value> EvalSlice(const Node& n);

  // ------------------------------------------------------------ expressions
  Result<Value> Eval(const Node& n);
  Result<Args> EvalArgs(const Node& n, size_t from);
  Result<Kwargs> EvalKwargs(const Node& n);
  Result<bool> Compare(const Node& n, const std::string& op, const Value& a, const Value& b);

  // Python `needle in haystack`.
  Result<bool> Contains(const Node& n, const Value& haystack, const Value& needle);
  Result<Value> EvalBinary(const Node& n);
  Result<Value> Repeat(const Node& n, const Value& v, int64_t times);

  // ------------------------------------------------------------ calls
  // Positional-or-keyword argument `i` named `name`; nullptr when absent.
  static const Value* Arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name);
  static bool Given(const Value* v) { return v != nullptr && !v->is_none() && !v->is_undefined(); }

  Status CheckArity(const Node& n, const std::string& what, const Args& args, const Kwargs& kwargs,
                    std::initializer_list<std::string_view> names) const;
  Result<Value> EvalCall(const Node& n);
  Result<Value> CallGlobal(const Node& n, const std::string& name, const Args& args, const Kwargs& kwargs);
  Result<Value> DictMethod(const Node& n, const Value& obj, const std::string& name, const Args& args,
                           const Kwargs& kwargs);

  // Set of code points for strip(chars).
  static std::vector<uint32_t> CodePoints(std::string_view s);
  Result<std::string> Strip(const std::string& s, const Value* chars, bool left, bool right);
  Result<Value> Split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v);
  static std::string AsciiMap(std::string s, int (*f)(int));
  static std::string Capitalize(const std::string& s);
  static std::string Title(const std::string& s);
  Result<std::string> Replace(const Node& n, const std::string& s, const Args& args, const Kwargs& kwargs,
                              size_t first);
  Result<Value> StringMethod(const Node& n, const std::string& s, const std::string& name, const Args& args,
                             const Kwargs& kwargs);

  // ------------------------------------------------------------ filters
  Result<Value> ApplyFilter(const Node& n, const Value& v, const Args& args, const Kwargs& kwargs);

  // ------------------------------------------------------------ tests
  Result<bool> ApplyTest(const Node& n, const Value& v, const Args& args);

  const RenderLimits& limits_;
  RenderBudget budget_;
  std::string* out_;
  std::vector<std::map<std::string, Value, std::less<>>> frames_;
};

}  // namespace famq::jinja
