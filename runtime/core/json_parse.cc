#include "core/json_parse.h"

#include <string>

#include <nlohmann/json.hpp>

namespace famq {

int JsonNestingDepth(std::string_view text, int max_depth) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > max_depth) return deepest;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

namespace {

template <typename JsonT>
Status ParseJsonImpl(std::string_view text, std::string_view what, JsonT* out, int max_depth) {
  if (JsonNestingDepth(text, max_depth) > max_depth) {
    return InvalidFormat(std::string(what) + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
  }
  JsonT parsed = JsonT::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidFormat(std::string(what) + ": not valid JSON");
  *out = std::move(parsed);
  return Status::Ok();
}

}  // namespace

Status ParseJson(std::string_view text, std::string_view what, nlohmann::json* out, int max_depth) {
  return ParseJsonImpl(text, what, out, max_depth);
}

Status ParseJson(std::string_view text, std::string_view what, nlohmann::ordered_json* out, int max_depth) {
  return ParseJsonImpl(text, what, out, max_depth);
}

}  // namespace famq
