// A short, safe description of an untrusted JSON value for error messages.
//
// Never dump() a value of unknown size or depth into a message: a 300,000-deep
// array overflows the stack (nlohmann's dump recurses per level) and a 60 MB
// string makes a 60 MB message. JsonExcerpt prints scalars cut to `max_chars`
// and only the type and size of arrays and objects.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

namespace famq {

template <typename JsonT>
std::string JsonExcerpt(const JsonT& v, size_t max_chars = 40) {
  if (v.is_array()) return "an array of " + std::to_string(v.size()) + " items";
  if (v.is_object()) return "an object of " + std::to_string(v.size()) + " members";
  if (v.is_string()) {
    const std::string& s = v.template get_ref<const std::string&>();
    const bool cut = s.size() > max_chars;
    // A scalar dump does not recurse; the replace handler keeps invalid UTF-8
    // from throwing, and dump() escapes control characters.
    JsonT head = cut ? JsonT(s.substr(0, max_chars)) : v;
    std::string out = head.dump(-1, ' ', false, JsonT::error_handler_t::replace);
    if (cut) out += "...";
    return out;
  }
  return v.dump();  // number, boolean, null
}

}  // namespace famq
