// Test helper for run_gguf_test.sh: famq's rendering of conversations with the
// chat template a quantized model carries (tokenizer_config.json's), one JSON
// string per line, to compare with llama.cpp's rendering of the same template
// from the exported GGUF.
//   gguf_render_chat Q.famq CONVERSATIONS.json
// CONVERSATIONS.json: [{"messages": [{"role", "content"}...],
//   "add_generation_prompt": bool, "enable_thinking": bool, "eos_token": str}]
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/json_parse.h"
#include "qmodel/qmodel_engine.h"
#include "chat_template/chat_template.h"

namespace {

int Run(const std::string& qmodel, const std::string& conversations) {
  auto m = famq::OpenRunnableModel("", qmodel);
  if (!m.ok()) return std::fprintf(stderr, "%s\n", m.status().ToString().c_str()), 1;
  if (!m->tokenizer_config || m->tokenizer_config->chat_template.empty()) {
    return std::fprintf(stderr, "%s: no chat template\n", qmodel.c_str()), 1;
  }
  auto tmpl = famq::ChatTemplate::Parse(m->tokenizer_config->chat_template);
  if (!tmpl.ok()) return std::fprintf(stderr, "%s\n", tmpl.status().ToString().c_str()), 1;
  auto text = famq::ReadFile(conversations);
  if (!text.ok()) return std::fprintf(stderr, "%s\n", text.status().ToString().c_str()), 1;
  nlohmann::json convs;
  if (famq::Status s = famq::ParseJson(*text, conversations, &convs); !s.ok()) {
    return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  for (const nlohmann::json& c : convs) {
    std::vector<famq::ChatMessage> messages;
    for (const nlohmann::json& msg : c.at("messages")) {
      messages.push_back({msg.at("role").get<std::string>(), msg.at("content").get<std::string>()});
    }
    famq::ChatTemplateOptions opt;
    opt.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
    opt.enable_thinking = c.at("enable_thinking").get<bool>();
    opt.eos_token = c.at("eos_token").get<std::string>();
    auto out = tmpl->Render(messages, opt);
    if (!out.ok()) return std::fprintf(stderr, "%s\n", out.status().ToString().c_str()), 1;
    std::printf("%s\n", nlohmann::json(*out).dump().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return std::fprintf(stderr, "usage: gguf_render_chat Q.famq CONVERSATIONS.json\n"), 2;
  try {
    return Run(argv[1], argv[2]);
  } catch (const std::exception& e) {  // a malformed conversations file (nlohmann::json::at)
    return std::fprintf(stderr, "%s: %s\n", argv[2], e.what()), 1;
  }
}
