// Calls, string and dict methods, filters and tests of the interpreter of
// famq's Jinja2 subset (the Interpreter class is in jinja_interpreter.h).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "chat_template/jinja_interpreter.h"
#include "chat_template/jinja_text.h"

namespace famq::jinja {

const Value* Interpreter::Arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name) {
  if (i < args.size()) return &args[i];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

Status Interpreter::CheckArity(const Node& n, const std::string& what, const Args& args, const Kwargs& kwargs,
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

Result<Value> Interpreter::EvalCall(const Node& n) {
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

Result<Value> Interpreter::CallGlobal(const Node& n, const std::string& name, const Args& args, const Kwargs& kwargs) {
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
      FAMQ_RETURN_IF_ERROR(budget_.Step(args[0].object().entries.size()));
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

Result<Value> Interpreter::DictMethod(const Node& n, const Value& obj, const std::string& name, const Args& args,
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

std::vector<uint32_t> Interpreter::CodePoints(std::string_view s) {
  std::vector<uint32_t> cps;
  size_t pos = 0;
  while (pos < s.size()) cps.push_back(Utf8Next(s, &pos));
  return cps;
}

Result<std::string> Interpreter::Strip(const std::string& s, const Value* chars, bool left, bool right) {
  FAMQ_RETURN_IF_ERROR(ChargeOffsets(s));
  std::vector<uint32_t> set;
  const bool whitespace = !Given(chars);
  if (!whitespace) {
    if (!chars->is_string()) return InvalidArgument("chat template: strip arg must be None or str");
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(chars->str().size() * (1 + sizeof(uint32_t))));
    set = CodePoints(chars->str());
    std::sort(set.begin(), set.end());  // a lookup per code point of s: log |chars|, not |chars|
  }
  auto strip_cp = [&](uint32_t cp) {
    return whitespace ? IsPySpace(cp) : std::binary_search(set.begin(), set.end(), cp);
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

Result<Value> Interpreter::Split(const Node& n, const std::string& s, const Value* sep, const Value* maxsplit_v) {
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
        FAMQ_RETURN_IF_ERROR(budget_.Bytes((s.size() - pos) * sizeof(size_t)));  // RStripSpace's offsets
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
      size_t hit = FindLinear(s, d, pos);
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

std::string Interpreter::AsciiMap(std::string s, int (*f)(int)) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string Interpreter::Capitalize(const std::string& s) {
  std::string r = AsciiMap(s, [](int c) { return std::tolower(c); });
  if (!r.empty() && static_cast<unsigned char>(r[0]) < 0x80) r[0] = static_cast<char>(std::toupper(r[0]));
  return r;
}

std::string Interpreter::Title(const std::string& s) {
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

Result<std::string> Interpreter::Replace(const Node& n, const std::string& s, const Args& args, const Kwargs& kwargs,
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
    FAMQ_RETURN_IF_ERROR(ChargeOffsets(s));
    std::vector<size_t> offs = Utf8Offsets(s);
    for (size_t i = 0; i < offs.size(); ++i) {
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(repl.size() + 1));
      if (count < 0 || static_cast<int64_t>(i) < count) out += repl;
      if (i + 1 < offs.size()) out.append(s, offs[i], offs[i + 1] - offs[i]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size() + from.size()));  // the scans
  while (count < 0 || done < count) {
    size_t hit = FindLinear(s, from, pos);
    if (hit == std::string::npos) break;
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(hit - pos + repl.size()));
    out.append(s, pos, hit - pos);
    out += repl;
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos, std::string::npos);
  FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size() - pos));
  return out;
}

Result<Value> Interpreter::StringMethod(const Node& n, const std::string& s, const std::string& name, const Args& args,
                           const Kwargs& kwargs) {
  if (name == "startswith" || name == "endswith") {
    if (args.size() != 1 || !kwargs.empty()) return Err(n, name + "() takes exactly one argument");
    if (!args[0].is_string() && !args[0].is_list()) {
      return Err(n, name + "() argument must be str or a tuple of str");
    }
    const std::vector<Value> one = args[0].is_string() ? std::vector<Value>{args[0]} : std::vector<Value>{};
    const std::vector<Value>& prefixes = args[0].is_string() ? one : args[0].items();
    for (const Value& p : prefixes) {
      FAMQ_RETURN_IF_ERROR(budget_.Step());
      if (!p.is_string()) return Err(n, name + "() argument must be str or a tuple of str");
      const std::string& x = p.str();
      FAMQ_RETURN_IF_ERROR(budget_.Bytes(std::min(x.size(), s.size())));  // the compare
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
    const std::string& sub = args[0].str();
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(s.size() + sub.size()));
    if (name == "find") {
      size_t hit = FindLinear(s, sub);
      if (hit == std::string::npos) return Value::Int(-1);
      return Value::Int(static_cast<int64_t>(Utf8Length(std::string_view(s).substr(0, hit))));
    }
    if (sub.empty()) return Value::Int(static_cast<int64_t>(Utf8Length(s)) + 1);
    int64_t count = 0;
    for (size_t pos = FindLinear(s, sub); pos != std::string::npos; pos = FindLinear(s, sub, pos + sub.size())) {
      ++count;
    }
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
      FAMQ_RETURN_IF_ERROR(budget_.Bytes((i > 0 ? s.size() : 0) + items[i].str().size()));
      if (i > 0) out += s;
      out += items[i].str();
    }
    return Value::String(std::move(out));  // charged while built
  }
  return Unsup(n, "method " + Quoted(name) + " of str is not supported");
}

Result<Value> Interpreter::ApplyFilter(const Node& n, const Value& v, const Args& args, const Kwargs& kwargs) {
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
      case Value::Kind::kString:
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(v.str().size()));  // counting code points scans the string
        return Value::Int(static_cast<int64_t>(Utf8Length(v.str())));
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
      if (i > 0) {
        FAMQ_RETURN_IF_ERROR(budget_.Bytes(sep.size()));
        out += sep;
      }
      FAMQ_RETURN_IF_ERROR(AppendStr(items[i], budget_, &out));  // charges what it appends
    }
    return Value::String(std::move(out));
  }
  if (name == "int" || name == "float") {
    FAMQ_RETURN_IF_ERROR(CheckArity(n, name, args, kwargs, {"default", name == "int" ? "base" : ""}));
    const Value* dflt_v = Arg(args, kwargs, 0, "default");
    Value dflt = dflt_v != nullptr ? *dflt_v : (name == "int" ? Value::Int(0) : Value::Float(0.0));
    double d = 0;
    if (v.is_number()) {
      d = v.as_double();
    } else if (v.is_string()) {
      FAMQ_RETURN_IF_ERROR(ChargeOffsets(v.str()));  // RStripSpace builds the offsets
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
      FAMQ_RETURN_IF_ERROR(ChargeOffsets(v.str()));
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

Result<bool> Interpreter::ApplyTest(const Node& n, const Value& v, const Args& args) {
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
    FAMQ_RETURN_IF_ERROR(budget_.Bytes(v.str().size()));
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

}  // namespace famq::jinja
