#include "chat_template/jinja_interpreter.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "chat_template/jinja_text.h"

namespace famq::jinja {

namespace {

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

}  // namespace

Result<Flow> Interpreter::Exec(const Node& body) {
  for (const NodePtr& child : body.children) {
    FAMQ_RETURN_IF_ERROR(budget_.Step());
    FAMQ_ASSIGN_OR_RETURN(Flow flow, ExecOne(*child));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Status Interpreter::At(const Node& n, Status s) const {
  static constexpr std::string_view kPrefix = "chat template: ";
  if (s.ok() || s.message().compare(0, kPrefix.size(), kPrefix) != 0) return s;
  return Status(s.code(), "chat template line " + std::to_string(n.line) + ": " + s.message().substr(kPrefix.size()));
}

std::string Interpreter::UndefinedWhat(const Node& expr) {
  switch (expr.kind) {
    case NodeKind::kName: return Quoted(expr.str) + " is undefined";
    case NodeKind::kAttr: return "attribute " + Quoted(expr.str) + " is undefined";
    case NodeKind::kItem: return "the item is undefined";
    default: return "the value is undefined";
  }
}

Status Interpreter::Emit(std::string_view s) {
  FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
  if (out_->size() + s.size() > limits_.max_output_bytes) {
    return OutOfMemory("chat template: render budget exceeded: output longer than " +
                       std::to_string(limits_.max_output_bytes) + " bytes");
  }
  out_->append(s);
  return Status::Ok();
}

Result<Value> Interpreter::MakeString(std::string s) {
  FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size()));
  return Value::String(std::move(s));
}

Result<std::string> Interpreter::Str(const Value& v) {
  std::string s;
  FAMQ_RETURN_IF_ERROR(AppendStr(v, budget_, &s));
  return s;
}

Result<Flow> Interpreter::ExecOne(const Node& n) {
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

Result<Flow> Interpreter::Assign(const Node& n, const Value& v) {
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

Status Interpreter::Bind(const Node& n, const std::vector<std::string>& names, const Value& v) {
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

Result<std::vector<Value>> Interpreter::Iterate(const Node& n, const Value& v) {
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

Result<Flow> Interpreter::ExecFor(const Node& n) {
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

const Value* Interpreter::Lookup(const std::string& name) const {
  for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
    auto found = it->find(name);
    if (found != it->end()) return &found->second;
  }
  return nullptr;
}

Result<Value> Interpreter::GetAttr(const Node& n, const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return Err(n, UndefinedWhat(*n.children[0]));
  if (obj.is_dict() || obj.is_namespace()) {
    const Value* v = obj.object().Find(name);
    return v != nullptr ? *v : Value();
  }
  return Value();
}

Result<Value> Interpreter::GetItem(const Node& n, const Value& obj, const Value& key) {
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
    FAMQ_RETURN_IF_ERROR(ChargeOffsets(obj.str()));
    std::vector<size_t> offs = Utf8Offsets(obj.str());
    const int64_t len = static_cast<int64_t>(offs.size()) - 1;
    if (i < 0) i += len;
    if (i < 0 || i >= len) return Value();
    const size_t b = offs[static_cast<size_t>(i)], e = offs[static_cast<size_t>(i) + 1];
    return Value::String(obj.str().substr(b, e - b));
  }
  return Value();
}

Result<std::optional<int64_t>> Interpreter::SliceArg(const Node* node) {
  if (node == nullptr) return std::optional<int64_t>();
  FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*node));
  if (v.is_none() || v.is_undefined()) return std::optional<int64_t>();
  if (!(v.is_int() || v.is_bool())) return Err(*node, "slice indices must be integers or none");
  return std::optional<int64_t>(v.int_value());
}

Result<Value> Interpreter::EvalSlice(const Node& n) {
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
    FAMQ_RETURN_IF_ERROR(ChargeOffsets(obj.str()));
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

Result<Value> Interpreter::Eval(const Node& n) {
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

Result<Args> Interpreter::EvalArgs(const Node& n, size_t from) {
  Args args;
  for (size_t i = from; i < n.children.size(); ++i) {
    FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*n.children[i]));
    args.push_back(std::move(v));
  }
  return args;
}

Result<Kwargs> Interpreter::EvalKwargs(const Node& n) {
  Kwargs kwargs;
  for (const auto& [k, node] : n.kwargs) {
    FAMQ_ASSIGN_OR_RETURN(Value v, Eval(*node));
    kwargs.emplace_back(k, std::move(v));
  }
  return kwargs;
}

Result<bool> Interpreter::Compare(const Node& n, const std::string& op, const Value& a, const Value& b) {
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

Result<bool> Interpreter::Contains(const Node& n, const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!needle.is_string()) {
        return Err(n, std::string("'in <string>' requires string as left operand, not ") + needle.kind_name());
      }
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(haystack.str().size() + needle.str().size()));
      return FindLinear(haystack.str(), needle.str()) != std::string::npos;
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

Result<Value> Interpreter::EvalBinary(const Node& n) {
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

Result<Value> Interpreter::Repeat(const Node& n, const Value& v, int64_t times) {
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

}  // namespace famq::jinja
