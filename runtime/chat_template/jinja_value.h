// Values of the chat-template interpreter (famq's Jinja2 subset, see
// docs/CHAT_TEMPLATE.md) and the Python-like operations on them that do not
// depend on the template: truthiness, str(), repr(), json.dumps(), ==, <.
//
// Strings, lists and dicts are immutable and shared (copying a Value is O(1)),
// as in Jinja's ImmutableSandboxedEnvironment; only namespace() objects are
// mutable. Every operation that walks or builds data charges a RenderBudget so
// that a hostile template cannot run away with time or memory.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "tokenizer/unicode.h"

namespace famq::jinja {

// Lists and dicts nest at most this deep (JSON input and values built by the
// template alike); deeper data is refused, so that walking it cannot overflow
// the stack.
inline constexpr uint32_t kMaxValueDepth = 64;

// Counts evaluation steps and bytes produced or scanned during one render, and
// watches a wall-clock deadline. Work proportional to a string's or a list's
// length is charged as that many bytes or steps *before* it is done, so that
// neither counter can be outrun by one cheap-looking operation.
class RenderBudget {
 public:
  // max_milliseconds == 0: no deadline.
  RenderBudget(uint64_t max_steps, uint64_t max_bytes, uint64_t max_milliseconds = 0);

  // One evaluation step (a node, a loop iteration, an element visited).
  Status Step(uint64_t n = 1);
  // `n` bytes produced, copied or scanned.
  Status Bytes(uint64_t n);

  uint64_t steps() const { return steps_; }
  uint64_t bytes() const { return bytes_; }

 private:
  // The clock is read every kClockEvery charges and whenever another
  // kClockBytes bytes were charged (a few ns per charge).
  static constexpr uint32_t kClockEvery = 256;
  static constexpr uint64_t kClockBytes = uint64_t{1} << 20;
  Status Tick(uint64_t bytes);

  uint64_t max_steps_;
  uint64_t max_bytes_;
  uint64_t max_milliseconds_;
  std::chrono::steady_clock::time_point deadline_;
  uint64_t steps_ = 0;
  uint64_t bytes_ = 0;
  uint32_t until_clock_ = kClockEvery;
  uint64_t bytes_at_clock_ = 0;
};

class Value;

struct Array {
  std::vector<Value> items;
  uint32_t depth = 1;          // 1 + the deepest element's depth
  bool has_namespace = false;  // a namespace() object is reachable from here
};

// An insertion-ordered string-keyed dict (Python dicts keep insertion order,
// and tojson must reproduce it). Also the storage of namespace() objects.
struct Object {
  std::vector<std::pair<std::string, Value>> entries;
  uint32_t depth = 1;
  bool has_namespace = false;

  const Value* Find(std::string_view key) const;
  // Inserts or replaces; keeps the first insertion position like Python.
  void Set(std::string key, Value value);

 private:
  void Reindex();
  std::map<std::string, size_t, std::less<>> index_;  // built once entries > kIndexFrom
  static constexpr size_t kIndexFrom = 8;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  // Lists and dicts: refused when they would nest deeper than kMaxValueDepth.
  static Result<Value> List(std::vector<Value> items);
  static Result<Value> Dict(std::vector<std::pair<std::string, Value>> entries);
  static Value Namespace();

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return i_; }  // also valid for bools (0/1)
  double float_value() const { return f_; }
  // Any number as a double (bools are 0/1, as in Python).
  double as_double() const { return is_float() ? f_ : static_cast<double>(i_); }
  const std::string& str() const { return *s_; }
  const std::vector<Value>& items() const { return a_->items; }
  const Object& object() const { return *o_; }  // dict or namespace
  Object& mutable_namespace() const { return *o_; }

  // Nesting depth: 0 for scalars.
  uint32_t depth() const;
  bool has_namespace() const;
  // True when both values share storage (Python `is` for containers).
  bool SameStorage(const Value& other) const;

  static const char* KindName(Kind kind);
  const char* kind_name() const { return KindName(kind_); }

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<const Array> a_;
  std::shared_ptr<Object> o_;
};

// Python truthiness (undefined is falsy; namespaces are truthy).
bool Truthy(const Value& v);

// Python str(): None -> "None", True -> "True", 1.5 -> "1.5", lists and dicts
// in repr() form; undefined -> "". Appends to *out.
Status AppendStr(const Value& v, RenderBudget& budget, std::string* out);
// Python repr() of a value (strings quoted, as inside a printed list).
Status AppendRepr(const Value& v, RenderBudget& budget, std::string* out);
// Python repr() of a float: shortest round-trip digits ("0.1", "1e+20", "1.0").
std::string FloatRepr(double f);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys), which is what
// Hugging Face installs as the `tojson` filter. indent_text == nullptr: one
// line; otherwise newlines and indent_text per level. Undefined and namespace
// values are not serializable (InvalidArgument).
struct JsonStyle {
  bool ensure_ascii = false;
  const std::string* indent_text = nullptr;
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
Status AppendJson(const Value& v, const JsonStyle& style, RenderBudget& budget, std::string* out);

// Python ==, deep (1 == 1.0 == True; "a" != 1).
Result<bool> Equals(const Value& a, const Value& b, RenderBudget& budget);
// Python <: numbers with numbers, strings with strings (code point order),
// lists lexicographically. Anything else is a type error (InvalidArgument).
Result<bool> Less(const Value& a, const Value& b, RenderBudget& budget);

// Converts parsed JSON (a caller's variables) into values; refuses data nested
// deeper than kMaxValueDepth. Integers beyond int64 become floats.
Result<Value> FromJson(const nlohmann::json& j);

// UTF-8 helpers. Python strings index code points; invalid bytes count as one
// code point each so that hostile input is still handled deterministically.
size_t Utf8Length(std::string_view s);
// Byte offset of every code point, plus s.size() at the end.
std::vector<size_t> Utf8Offsets(std::string_view s);
// Decodes the code point at s[*pos] and advances *pos (invalid byte: returns
// 0xFFFD and advances by one).
uint32_t Utf8Next(std::string_view s, size_t* pos);
// UTF-8 encoding of one code point: the tokenizer's (tokenizer/unicode.h).
using famq::unicode::AppendUtf8;

}  // namespace famq::jinja
