// libFuzzer target: parse arbitrary chat-template sources; render the ones that
// parse with a two-message conversation under small budgets. Any Status is
// fine; crashes, leaks, hangs and UB are not.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chat_template/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  famq::Result<famq::ChatTemplate> t = famq::ChatTemplate::Parse(source);
  if (!t.ok()) return 0;
  famq::ChatTemplateOptions options;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  options.limits.max_output_bytes = 64 << 10;
  options.limits.max_steps = 20000;
  options.limits.max_bytes = 1 << 20;
  options.limits.max_milliseconds = 1000;  // well under fuzz-smoke's -timeout
  for (bool thinking : {true, false}) {
    options.enable_thinking = thinking;
    options.add_generation_prompt = thinking;
    (void)t->Render({{"system", "Be brief."}, {"user", "<think>\nhm\n</think>\n\nHello \xC3\xA9"}}, options);
  }
  return 0;
}
