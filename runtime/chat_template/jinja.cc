// famq's Jinja2 subset: Template::Parse (jinja_lexer, jinja_parser) and
// Template::Render (jinja_interpreter, jinja_filters). See jinja.h and
// docs/CHAT_TEMPLATE.md; the behaviour follows Jinja2 3.1 as configured by
// transformers for chat templates.
#include "chat_template/jinja.h"

#include "chat_template/jinja_interpreter.h"
#include "chat_template/jinja_lexer.h"
#include "chat_template/jinja_parser.h"
#include "chat_template/jinja_text.h"

namespace famq::jinja {

Result<Template> Template::Parse(std::string_view source) {
  if (source.size() > kMaxSourceBytes) {
    return InvalidArgument("chat template: source is " + std::to_string(source.size()) + " bytes, more than " +
                           std::to_string(kMaxSourceBytes));
  }
  const std::string src = NormalizeNewlines(source);
  Lexer lexer(src);
  std::vector<Token> tokens;
  FAMQ_RETURN_IF_ERROR(lexer.Run(&tokens));
  FAMQ_ASSIGN_OR_RETURN(NodePtr root, ParseTokens(lexer, std::move(tokens)));
  Template t;
  t.root_ = std::move(root);
  return t;
}

Result<std::string> Template::Render(const std::vector<std::pair<std::string, Value>>& globals,
                                     const RenderLimits& limits) const {
  std::string out;
  Interpreter interp(limits, &out);
  interp.PushFrame();
  for (const auto& [name, value] : globals) interp.Define(name, value);
  interp.PushFrame();  // the template's own top-level `set`s
  if (!root_) return InvalidArgument("chat template: rendering an empty (unparsed) template");
  FAMQ_ASSIGN_OR_RETURN(Flow flow, interp.Exec(*root_));
  (void)flow;
  return out;
}

}  // namespace famq::jinja
