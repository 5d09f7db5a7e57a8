// famq's Jinja2 subset: the template language of Hugging Face chat templates
// (docs/CHAT_TEMPLATE.md lists what is supported and what is refused).
//
// Templates are compiled the way transformers compiles chat templates:
// trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, the
// loopcontrols extension (break/continue) and its `tojson` filter. Rendering is
// deterministic and bounded by a RenderLimits budget, so that a hostile
// template fails with a Status instead of running away with time or memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "chat_template/jinja_value.h"

namespace famq::jinja {

// Blocks, brackets and expressions nest at most this deep in a template
// source, and left-deep chains (a + b + c, x.a.b, x|f|g) count one level per
// link: this bounds the recursion of the parser, the interpreter and the
// syntax tree's destructor.
inline constexpr uint32_t kMaxNestingDepth = 128;
// Template sources larger than this are refused.
inline constexpr size_t kMaxSourceBytes = size_t{4} << 20;

// Operations whose work grows with a string's or a list's length (len, ==, <,
// in, find, startswith, strip, split, replace, join, slicing, ~, +, loops,
// tojson, ...) charge that length to max_bytes or max_steps before doing it;
// the deadline bounds whatever is left (docs/CHAT_TEMPLATE.md, "Render budget").
struct RenderLimits {
  uint64_t max_output_bytes = uint64_t{4} << 20;  // the rendered text
  uint64_t max_steps = 10'000'000;                // nodes evaluated, loop iterations, elements visited
  uint64_t max_bytes = uint64_t{256} << 20;       // every string built, copied or scanned, output included
  uint64_t max_milliseconds = 2000;               // wall clock of one render; 0: none
};

struct Node;

// A parsed template. Immutable; copies share the syntax tree.
class Template {
 public:
  // Parses `source`. Errors (with "line:col" of the offending token):
  //   InvalidFormat - a syntax error (unterminated tag or string, unexpected
  //                   token, missing end tag, unknown tag);
  //   Unsupported   - valid Jinja2 that famq does not implement (macro,
  //                   include, an unknown filter or test, ...);
  //   InvalidArgument - the source is larger than kMaxSourceBytes or nests
  //                   deeper than kMaxNestingDepth.
  static Result<Template> Parse(std::string_view source);

  // Renders with `globals` as the template's variables (later entries win).
  // Errors name the template line:
  //   InvalidArgument - a runtime error of the template (undefined attribute
  //                     access, type error, raise_exception(...) with its
  //                     message), or the step budget is exceeded;
  //   OutOfMemory     - the output or byte budget is exceeded;
  //   Unsupported     - a method or operation famq does not implement.
  Result<std::string> Render(const std::vector<std::pair<std::string, Value>>& globals,
                             const RenderLimits& limits) const;

 private:
  std::shared_ptr<const Node> root_;
};

}  // namespace famq::jinja
