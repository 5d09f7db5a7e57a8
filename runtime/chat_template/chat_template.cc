// Chat templates over famq's Jinja2 subset: see chat_template.h.
#include "chat_template/chat_template.h"

#include <utility>

namespace famq {

Result<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  FAMQ_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::Parse(source));
  ChatTemplate ct;
  ct.template_ = std::move(t);
  ct.parsed_ = true;
  return ct;
}

Result<std::string> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                         const ChatTemplateOptions& options) const {
  using jinja::Value;
  if (!parsed_) return InvalidArgument("chat template: Render() on a template that was not parsed");
  std::vector<Value> list;
  list.reserve(messages.size());
  for (const ChatMessage& m : messages) {
    FAMQ_ASSIGN_OR_RETURN(Value msg, Value::Dict({{"role", Value::String(m.role)},
                                                  {"content", Value::String(m.content)}}));
    list.push_back(std::move(msg));
  }
  FAMQ_ASSIGN_OR_RETURN(Value messages_value, Value::List(std::move(list)));
  // What transformers' apply_chat_template passes: messages, tools=None,
  // documents=None, add_generation_prompt, the set special tokens, and the
  // extra template kwargs (enable_thinking).
  std::vector<std::pair<std::string, Value>> globals = {
      {"messages", std::move(messages_value)},
      {"tools", Value::None()},
      {"documents", Value::None()},
      {"add_generation_prompt", Value::Bool(options.add_generation_prompt)},
      {"enable_thinking", Value::Bool(options.enable_thinking)},
  };
  if (!options.bos_token.empty()) globals.emplace_back("bos_token", Value::String(options.bos_token));
  if (!options.eos_token.empty()) globals.emplace_back("eos_token", Value::String(options.eos_token));
  return template_.Render(globals, options.limits);
}

}  // namespace famq
