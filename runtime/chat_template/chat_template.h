// Chat templates: renders a conversation into the prompt text a chat model was
// trained on, with the model's own Jinja template from tokenizer_config.json
// (famq's Jinja2 subset, docs/CHAT_TEMPLATE.md).
//
//   FAMQ_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(config.chat_template));
//   ChatTemplateOptions opt;
//   opt.enable_thinking = false;
//   FAMQ_ASSIGN_OR_RETURN(std::string prompt, t.Render({{"user", "Hello"}}, opt));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "chat_template/jinja.h"

namespace famq {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", "tool"
  std::string content;
};

struct ChatTemplateOptions {
  // Exposed to the template as `add_generation_prompt`: end with the header
  // of the assistant's turn.
  bool add_generation_prompt = true;
  // Exposed as `enable_thinking` (Qwen3: false pre-fills an empty <think></think>).
  bool enable_thinking = true;
  // Exposed as `bos_token` / `eos_token`; an empty token is left undefined,
  // as transformers leaves out unset special tokens.
  std::string bos_token, eos_token;
  // Render budget (hostile templates fail with OutOfMemory / InvalidArgument).
  jinja::RenderLimits limits;
};

class ChatTemplate {
 public:
  ChatTemplate() = default;

  // Parses a template source. Errors carry "line:col":
  //   InvalidFormat - syntax error; Unsupported - Jinja2 that famq does not
  //   implement; InvalidArgument - the source is too large or too deep.
  static Result<ChatTemplate> Parse(std::string_view source);

  // Renders `messages` (each exposed as a dict {role, content}) with the
  // variables messages, add_generation_prompt, enable_thinking, bos_token,
  // eos_token, tools (none) and documents (none).
  // Errors: InvalidArgument - a template runtime error, raise_exception(...)
  //   (its message is kept) or the step budget; OutOfMemory - the output or
  //   byte budget; Unsupported - a construct famq does not implement;
  //   InvalidArgument as well when Parse never succeeded on this object.
  Result<std::string> Render(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) const;

 private:
  jinja::Template template_;
  bool parsed_ = false;
};

}  // namespace famq
