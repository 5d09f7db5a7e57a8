// Values of famq's Jinja2 subset: see jinja_value.h.
#include "chat_template/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

namespace famq::jinja {

// ---------------------------------------------------------------- budget

RenderBudget::RenderBudget(uint64_t max_steps, uint64_t max_bytes, uint64_t max_milliseconds)
    : max_steps_(max_steps), max_bytes_(max_bytes), max_milliseconds_(max_milliseconds) {
  if (max_milliseconds_ != 0) {
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(max_milliseconds_);
  }
}

Status RenderBudget::Tick(uint64_t bytes) {
  if (max_milliseconds_ == 0) return Status::Ok();
  if (--until_clock_ != 0 && bytes_ + bytes - bytes_at_clock_ < kClockBytes) return Status::Ok();
  until_clock_ = kClockEvery;
  bytes_at_clock_ = bytes_ + bytes;
  if (std::chrono::steady_clock::now() > deadline_) {
    return InvalidArgument("chat template: render deadline exceeded: rendering took more than " +
                           std::to_string(max_milliseconds_) + " ms");
  }
  return Status::Ok();
}

Status RenderBudget::Step(uint64_t n) {
  FAMQ_RETURN_IF_ERROR(Tick(0));
  steps_ += n;
  if (steps_ > max_steps_) {
    return InvalidArgument("chat template: render budget exceeded: more than " + std::to_string(max_steps_) +
                           " evaluation steps");
  }
  return Status::Ok();
}

Status RenderBudget::Bytes(uint64_t n) {
  FAMQ_RETURN_IF_ERROR(Tick(n));
  bytes_ += n;
  if (bytes_ > max_bytes_) {
    return OutOfMemory("chat template: render budget exceeded: more than " + std::to_string(max_bytes_) +
                       " bytes produced");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- Object

const Value* Object::Find(std::string_view key) const {
  if (!index_.empty()) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &entries[it->second].second;
  }
  for (const auto& [k, v] : entries) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Object::Set(std::string key, Value value) {
  if (!index_.empty()) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      entries[it->second].second = std::move(value);
      return;
    }
  } else {
    for (auto& [k, v] : entries) {
      if (k == key) {
        v = std::move(value);
        return;
      }
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
  if (entries.size() > kIndexFrom) {
    if (index_.empty()) {
      Reindex();
    } else {
      index_.emplace(entries.back().first, entries.size() - 1);
    }
  }
}

void Object::Reindex() {
  index_.clear();
  for (size_t i = 0; i < entries.size(); ++i) index_.emplace(entries[i].first, i);
}

// ---------------------------------------------------------------- Value

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  v.i_ = b ? 1 : 0;
  v.f_ = b ? 1.0 : 0.0;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  v.f_ = static_cast<double>(i);
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Result<Value> Value::List(std::vector<Value> items) {
  auto a = std::make_shared<Array>();
  for (const Value& item : items) {
    a->depth = std::max(a->depth, item.depth() + 1);
    a->has_namespace = a->has_namespace || item.has_namespace();
  }
  if (a->depth > kMaxValueDepth) {
    return InvalidArgument("chat template: a list nests deeper than " + std::to_string(kMaxValueDepth) + " levels");
  }
  a->items = std::move(items);
  Value v;
  v.kind_ = Kind::kList;
  v.a_ = std::move(a);
  return v;
}

Result<Value> Value::Dict(std::vector<std::pair<std::string, Value>> entries) {
  auto o = std::make_shared<Object>();
  for (auto& [k, item] : entries) {
    o->depth = std::max(o->depth, item.depth() + 1);
    o->has_namespace = o->has_namespace || item.has_namespace();
    o->Set(std::move(k), std::move(item));
  }
  if (o->depth > kMaxValueDepth) {
    return InvalidArgument("chat template: a dict nests deeper than " + std::to_string(kMaxValueDepth) + " levels");
  }
  Value v;
  v.kind_ = Kind::kDict;
  v.o_ = std::move(o);
  return v;
}

Value Value::Namespace() {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.o_ = std::make_shared<Object>();
  v.o_->has_namespace = true;
  return v;
}

uint32_t Value::depth() const {
  switch (kind_) {
    case Kind::kList: return a_->depth;
    case Kind::kDict: return o_->depth;
    // A namespace holds no namespace (the interpreter refuses to store one in
    // it), so its contents are at most kMaxValueDepth deep: no cycles either.
    case Kind::kNamespace: return 1;
    default: return 0;
  }
}

bool Value::has_namespace() const {
  switch (kind_) {
    case Kind::kList: return a_->has_namespace;
    case Kind::kDict: return o_->has_namespace;
    case Kind::kNamespace: return true;
    default: return false;
  }
}

bool Value::SameStorage(const Value& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kList: return a_ == other.a_;
    case Kind::kDict:
    case Kind::kNamespace: return o_ == other.o_;
    case Kind::kString: return s_ == other.s_;
    default: return false;
  }
}

const char* Value::KindName(Kind kind) {
  switch (kind) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "none";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "namespace";
  }
  return "?";
}

bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.bool_value();
    case Value::Kind::kInt: return v.int_value() != 0;
    case Value::Kind::kFloat: return v.float_value() != 0.0;
    case Value::Kind::kString: return !v.str().empty();
    case Value::Kind::kList: return !v.items().empty();
    case Value::Kind::kDict: return !v.object().entries.empty();
    case Value::Kind::kNamespace: return true;
  }
  return false;
}

// ---------------------------------------------------------------- str / repr

std::string FloatRepr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits in scientific form, then Python's repr layout:
  // fixed notation for 1e-4 <= |f| < 1e16, otherwise d.ddde+XX.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  std::string out = neg ? "-" : "";
  if (exp >= -5 + 1 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else if (static_cast<size_t>(exp) + 1 >= digits.size()) {
      out += digits;
      out.append(static_cast<size_t>(exp) + 1 - digits.size(), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp) + 1);
      out += '.';
      out += digits.substr(static_cast<size_t>(exp) + 1);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += ebuf;
  }
  return out;
}

namespace {

// Python repr() of a str: single quotes unless the text holds ' and no ".
void AppendStringRepr(const std::string& s, std::string* out) {
  char quote = '\'';
  if (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) quote = '"';
  out->push_back(quote);
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = Utf8Next(s, &pos);
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      *out += "\\n";
    } else if (cp == '\r') {
      *out += "\\r";
    } else if (cp == '\t') {
      *out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
      *out += buf;
    } else {
      AppendUtf8(cp, out);
    }
  }
  out->push_back(quote);
}

Status AppendStrImpl(const Value& v, bool repr, RenderBudget& budget, std::string* out, uint32_t level) {
  FAMQ_RETURN_IF_ERROR(budget.Step());
  if (level > 2 * kMaxValueDepth + 4) return InvalidArgument("chat template: value nests too deep to print");
  const size_t before = out->size();
  switch (v.kind()) {
    case Value::Kind::kUndefined: break;
    case Value::Kind::kNone: *out += "None"; break;
    case Value::Kind::kBool: *out += v.bool_value() ? "True" : "False"; break;
    case Value::Kind::kInt: *out += std::to_string(v.int_value()); break;
    case Value::Kind::kFloat: *out += FloatRepr(v.float_value()); break;
    case Value::Kind::kString:
      if (repr) {
        AppendStringRepr(v.str(), out);
      } else {
        *out += v.str();
      }
      break;
    case Value::Kind::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.items()) {
        if (!first) *out += ", ";
        first = false;
        FAMQ_RETURN_IF_ERROR(AppendStrImpl(item, true, budget, out, level + 1));
      }
      out->push_back(']');
      break;
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      if (v.is_namespace()) *out += "<Namespace ";
      out->push_back('{');
      bool first = true;
      for (const auto& [k, item] : v.object().entries) {
        if (!first) *out += ", ";
        first = false;
        AppendStringRepr(k, out);
        *out += ": ";
        FAMQ_RETURN_IF_ERROR(AppendStrImpl(item, true, budget, out, level + 1));
      }
      out->push_back('}');
      if (v.is_namespace()) out->push_back('>');
      break;
    }
  }
  return budget.Bytes(out->size() - before);
}

void AppendJsonString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = Utf8Next(s, &pos);
    switch (cp) {
      case '"': *out += "\\\""; continue;
      case '\\': *out += "\\\\"; continue;
      case '\n': *out += "\\n"; continue;
      case '\r': *out += "\\r"; continue;
      case '\t': *out += "\\t"; continue;
      case '\b': *out += "\\b"; continue;
      case '\f': *out += "\\f"; continue;
      default: break;
    }
    char buf[16];
    if (cp < 0x20 || (ensure_ascii && cp > 0x7e)) {
      if (cp >= 0x10000) {
        uint32_t c = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      *out += buf;
    } else {
      AppendUtf8(cp, out);
    }
  }
  out->push_back('"');
}

Status AppendJsonImpl(const Value& v, const JsonStyle& style, RenderBudget& budget, std::string* out,
                      uint32_t level) {
  FAMQ_RETURN_IF_ERROR(budget.Step());
  if (level > kMaxValueDepth + 2) return InvalidArgument("chat template: value nests too deep for tojson");
  const size_t before = out->size();
  auto newline = [&](uint32_t indent_level) {
    if (style.indent_text == nullptr) return;
    out->push_back('\n');
    for (uint32_t i = 0; i < indent_level; ++i) *out += *style.indent_text;
  };
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNamespace:
      return InvalidArgument(std::string("chat template: tojson: object of type ") + v.kind_name() +
                             " is not JSON serializable");
    case Value::Kind::kNone: *out += "null"; break;
    case Value::Kind::kBool: *out += v.bool_value() ? "true" : "false"; break;
    case Value::Kind::kInt: *out += std::to_string(v.int_value()); break;
    case Value::Kind::kFloat: {
      double f = v.float_value();
      if (std::isnan(f)) {
        *out += "NaN";
      } else if (std::isinf(f)) {
        *out += f < 0 ? "-Infinity" : "Infinity";
      } else {
        *out += FloatRepr(f);
      }
      break;
    }
    case Value::Kind::kString: AppendJsonString(v.str(), style.ensure_ascii, out); break;
    case Value::Kind::kList: {
      if (v.items().empty()) {
        *out += "[]";
        break;
      }
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.items()) {
        if (!first) *out += style.item_separator;
        first = false;
        newline(level + 1);
        FAMQ_RETURN_IF_ERROR(AppendJsonImpl(item, style, budget, out, level + 1));
      }
      newline(level);
      out->push_back(']');
      break;
    }
    case Value::Kind::kDict: {
      if (v.object().entries.empty()) {
        *out += "{}";
        break;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.object().entries) entries.push_back(&e);
      if (style.sort_keys) {
        std::sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out->push_back('{');
      bool first = true;
      for (const auto* e : entries) {
        if (!first) *out += style.item_separator;
        first = false;
        newline(level + 1);
        AppendJsonString(e->first, style.ensure_ascii, out);
        *out += style.key_separator;
        FAMQ_RETURN_IF_ERROR(AppendJsonImpl(e->second, style, budget, out, level + 1));
      }
      newline(level);
      out->push_back('}');
      break;
    }
  }
  return budget.Bytes(out->size() - before);
}

}  // namespace

Status AppendStr(const Value& v, RenderBudget& budget, std::string* out) {
  return AppendStrImpl(v, false, budget, out, 0);
}

Status AppendRepr(const Value& v, RenderBudget& budget, std::string* out) {
  return AppendStrImpl(v, true, budget, out, 0);
}

Status AppendJson(const Value& v, const JsonStyle& style, RenderBudget& budget, std::string* out) {
  return AppendJsonImpl(v, style, budget, out, 0);
}

// ---------------------------------------------------------------- compare

namespace {

Result<bool> EqualsImpl(const Value& a, const Value& b, RenderBudget& budget, uint32_t level) {
  FAMQ_RETURN_IF_ERROR(budget.Step());
  if (level > 2 * kMaxValueDepth + 4) return InvalidArgument("chat template: values nest too deep to compare");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.int_value() == b.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString:
      if (a.str().size() != b.str().size()) return false;
      FAMQ_RETURN_IF_ERROR(budget.Bytes(a.str().size()));  // memcmp of the whole length
      return a.str() == b.str();
    case Value::Kind::kList: {
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        FAMQ_ASSIGN_OR_RETURN(bool eq, EqualsImpl(a.items()[i], b.items()[i], budget, level + 1));
        if (!eq) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const Object& oa = a.object();
      const Object& ob = b.object();
      if (oa.entries.size() != ob.entries.size()) return false;
      for (const auto& [k, va] : oa.entries) {
        const Value* vb = ob.Find(k);
        if (vb == nullptr) return false;
        FAMQ_ASSIGN_OR_RETURN(bool eq, EqualsImpl(va, *vb, budget, level + 1));
        if (!eq) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace: return a.SameStorage(b);
    default: return false;
  }
}

Result<bool> LessImpl(const Value& a, const Value& b, RenderBudget& budget, uint32_t level) {
  FAMQ_RETURN_IF_ERROR(budget.Step());
  if (level > kMaxValueDepth + 2) return InvalidArgument("chat template: values nest too deep to compare");
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.int_value() < b.int_value();
  }
  if (a.is_string() && b.is_string()) {  // UTF-8 byte order = code point order
    FAMQ_RETURN_IF_ERROR(budget.Bytes(std::min(a.str().size(), b.str().size())));
    return a.str() < b.str();
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      FAMQ_ASSIGN_OR_RETURN(bool eq, EqualsImpl(x[i], y[i], budget, level + 1));
      if (!eq) return LessImpl(x[i], y[i], budget, level + 1);
    }
    return x.size() < y.size();
  }
  return InvalidArgument(std::string("chat template: '<' not supported between instances of '") + a.kind_name() +
                         "' and '" + b.kind_name() + "'");
}

}  // namespace

Result<bool> Equals(const Value& a, const Value& b, RenderBudget& budget) { return EqualsImpl(a, b, budget, 0); }
Result<bool> Less(const Value& a, const Value& b, RenderBudget& budget) { return LessImpl(a, b, budget, 0); }

// ---------------------------------------------------------------- JSON in

namespace {

Result<Value> FromJsonImpl(const nlohmann::json& j, uint32_t level) {
  if (level > kMaxValueDepth) {
    return InvalidArgument("chat template: JSON value nests deeper than " + std::to_string(kMaxValueDepth) +
                           " levels");
  }
  switch (j.type()) {
    case nlohmann::json::value_t::null: return Value::None();
    case nlohmann::json::value_t::boolean: return Value::Bool(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value::Int(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value::Float(j.get<double>());
    case nlohmann::json::value_t::string: return Value::String(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) {
        FAMQ_ASSIGN_OR_RETURN(Value item, FromJsonImpl(e, level + 1));
        items.push_back(std::move(item));
      }
      return Value::List(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        FAMQ_ASSIGN_OR_RETURN(Value item, FromJsonImpl(it.value(), level + 1));
        entries.emplace_back(it.key(), std::move(item));
      }
      return Value::Dict(std::move(entries));
    }
    default: return InvalidArgument("chat template: unsupported JSON value (binary or discarded)");
  }
}

}  // namespace

Result<Value> FromJson(const nlohmann::json& j) { return FromJsonImpl(j, 0); }

// ---------------------------------------------------------------- UTF-8

uint32_t Utf8Next(std::string_view s, size_t* pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = *pos;
  const size_t n = s.size();
  unsigned char c = p[i];
  if (c < 0x80) {
    *pos = i + 1;
    return c;
  }
  size_t len = 0;
  uint32_t cp = 0;
  uint32_t min = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    *pos = i + 1;
    return 0xFFFD;
  }
  if (i + len > n) {
    *pos = i + 1;
    return 0xFFFD;
  }
  for (size_t k = 1; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) {
      *pos = i + 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (p[i + k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *pos = i + 1;
    return 0xFFFD;
  }
  *pos = i + len;
  return cp;
}

size_t Utf8Length(std::string_view s) {
  size_t pos = 0, count = 0;
  while (pos < s.size()) {
    Utf8Next(s, &pos);
    ++count;
  }
  return count;
}

std::vector<size_t> Utf8Offsets(std::string_view s) {
  std::vector<size_t> offsets;
  size_t pos = 0;
  while (pos < s.size()) {
    offsets.push_back(pos);
    Utf8Next(s, &pos);
  }
  offsets.push_back(s.size());
  return offsets;
}

}  // namespace famq::jinja
