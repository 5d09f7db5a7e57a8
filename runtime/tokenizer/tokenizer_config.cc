// tokenizer_config.json parsing: see tokenizer_config.h.
#include "tokenizer/tokenizer_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/json_parse.h"

namespace famq {

namespace {

Status WrongType(const std::string& origin, const char* field, const char* expected, const nlohmann::json& j) {
  return InvalidFormat(origin + ": '" + field + "' must be " + expected + ", not " + j.type_name());
}

// A special token: a string, an AddedToken object {"content": ...}, or null.
Status ReadToken(const nlohmann::json& root, const std::string& origin, const char* field, std::string* out) {
  auto it = root.find(field);
  if (it == root.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (it->is_object()) {
    auto content = it->find("content");
    if (content == it->end() || !content->is_string()) {
      return InvalidFormat(origin + ": '" + field + "' is an object without a string 'content'");
    }
    *out = content->get<std::string>();
    return Status::Ok();
  }
  return WrongType(origin, field, "a string or an AddedToken object", *it);
}

Status ReadChatTemplate(const nlohmann::json& root, const std::string& origin, std::string* out) {
  auto it = root.find("chat_template");
  if (it == root.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (!it->is_array()) return WrongType(origin, "chat_template", "a string or a list of named templates", *it);
  for (const auto& entry : *it) {
    if (!entry.is_object()) {
      return InvalidFormat(origin + ": 'chat_template' list entries must be objects {\"name\", \"template\"}");
    }
    auto name = entry.find("name");
    auto tmpl = entry.find("template");
    if (name == entry.end() || !name->is_string() || tmpl == entry.end() || !tmpl->is_string()) {
      return InvalidFormat(origin + ": 'chat_template' list entries need string 'name' and 'template'");
    }
    if (name->get<std::string>() == "default") *out = tmpl->get<std::string>();
  }
  return Status::Ok();
}

}  // namespace

Result<TokenizerConfig> ParseTokenizerConfig(std::string_view json, const std::string& origin) {
  nlohmann::json root;
  FAMQ_RETURN_IF_ERROR(ParseJson(json, origin, &root));
  if (!root.is_object()) return InvalidFormat(origin + ": top level must be a JSON object");
  TokenizerConfig config;
  FAMQ_RETURN_IF_ERROR(ReadChatTemplate(root, origin, &config.chat_template));
  FAMQ_RETURN_IF_ERROR(ReadToken(root, origin, "bos_token", &config.bos_token));
  FAMQ_RETURN_IF_ERROR(ReadToken(root, origin, "eos_token", &config.eos_token));
  FAMQ_RETURN_IF_ERROR(ReadToken(root, origin, "pad_token", &config.pad_token));
  if (auto it = root.find("add_bos_token"); it != root.end() && !it->is_null()) {
    if (!it->is_boolean()) return WrongType(origin, "add_bos_token", "a boolean", *it);
    config.add_bos_token = it->get<bool>();
  }
  if (auto it = root.find("model_max_length"); it != root.end() && !it->is_null()) {
    if (!it->is_number()) return WrongType(origin, "model_max_length", "a number", *it);
    if (it->is_number_integer()) {
      // number_unsigned values above INT64_MAX are absurd anyway.
      const bool fits = it->is_number_unsigned() ? it->get<uint64_t>() <= static_cast<uint64_t>(kMaxModelMaxLength)
                                                 : it->get<int64_t>() <= kMaxModelMaxLength;
      const int64_t v = fits ? it->get<int64_t>() : 0;
      config.model_max_length = v > 0 ? v : 0;
    } else {
      const double d = it->get<double>();
      if (std::isfinite(d) && d >= 1 && d <= static_cast<double>(kMaxModelMaxLength)) {
        config.model_max_length = static_cast<int64_t>(d);
      }
    }
  }
  return config;
}

Result<TokenizerConfig> LoadTokenizerConfig(const std::string& path) {
  FAMQ_ASSIGN_OR_RETURN(std::string text, ReadFile(path, kMaxTokenizerConfigBytes));
  return ParseTokenizerConfig(text, path);
}

}  // namespace famq
