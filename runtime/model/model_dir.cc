#include "model/model_dir.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/json_excerpt.h"
#include "core/json_parse.h"

namespace famq {

Result<Tokenizer> OpenTokenizer(const std::string& dir) {
  return Tokenizer::LoadFile(JoinPath(dir, "tokenizer.json"));
}

namespace {

void AddUnique(std::vector<int32_t>* v, int32_t id) {
  if (std::find(v->begin(), v->end(), id) == v->end()) v->push_back(id);
}

// generation_config.json's eos_token_id (an id or a list); "" (no file) is fine.
Status ParseGenerationEos(const std::string& text, const std::string& path, int vocab, std::vector<int32_t>* out) {
  if (text.empty()) return Status::Ok();
  nlohmann::json j;
  FAMQ_RETURN_IF_ERROR(ParseJson(text, path, &j));
  if (!j.is_object()) return InvalidFormat(path + ": not a JSON object");
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return Status::Ok();
  // Walked in place: the ids are not copied (a copy recurses per nesting level).
  auto check = [&](const nlohmann::json& id) -> Status {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab) {
      return InvalidFormat(path + ": eos_token_id " + JsonExcerpt(id) + " is not a token id of this model");
    }
    AddUnique(out, static_cast<int32_t>(id.get<int64_t>()));
    return Status::Ok();
  };
  if (it->is_array()) {
    for (const auto& id : *it) FAMQ_RETURN_IF_ERROR(check(id));
  } else {
    FAMQ_RETURN_IF_ERROR(check(*it));
  }
  return Status::Ok();
}

}  // namespace

Status ResolveSpecialTokens(const ModelConfig& c, const std::string& tokenizer_config_json,
                            const std::string& generation_config_json, const std::string& origin, ModelText* m) {
  if (m->tokenizer.vocab_size() > c.vocab_size) {
    return InvalidFormat(JoinPath(origin, "tokenizer.json") + ": tokenizer has ids up to " +
                         std::to_string(m->tokenizer.vocab_size() - 1) + " but config.json's vocab_size is " +
                         std::to_string(c.vocab_size));
  }
  m->stop_tokens.clear();
  m->bos_token.reset();
  m->tokenizer_config.reset();
  m->add_bos = false;
  if (!tokenizer_config_json.empty()) {
    FAMQ_ASSIGN_OR_RETURN(TokenizerConfig tc,
                          ParseTokenizerConfig(tokenizer_config_json, JoinPath(origin, "tokenizer_config.json")));
    m->add_bos = tc.add_bos_token;
    if (!tc.eos_token.empty()) {
      if (auto id = m->tokenizer.TokenId(tc.eos_token)) AddUnique(&m->stop_tokens, *id);
    }
    if (!tc.bos_token.empty()) m->bos_token = m->tokenizer.TokenId(tc.bos_token);
    m->tokenizer_config = std::move(tc);
  }
  for (int32_t id : c.eos_token_ids) AddUnique(&m->stop_tokens, id);
  FAMQ_RETURN_IF_ERROR(ParseGenerationEos(generation_config_json, JoinPath(origin, "generation_config.json"),
                                          c.vocab_size, &m->stop_tokens));
  if (!m->bos_token && !c.bos_token_ids.empty()) m->bos_token = c.bos_token_ids[0];
  return Status::Ok();
}

Result<ModelDir> OpenModelDir(const std::string& dir) {
  ModelDir m{};
  FAMQ_ASSIGN_OR_RETURN(m.checkpoint, Checkpoint::Open(dir));
  FAMQ_ASSIGN_OR_RETURN(m.tokenizer, OpenTokenizer(dir));
  std::string tc_text, gen_text;
  const std::string tc_path = JoinPath(dir, "tokenizer_config.json");
  if (FileExists(tc_path)) {
    FAMQ_ASSIGN_OR_RETURN(tc_text, ReadFile(tc_path, kMaxTokenizerConfigBytes));
  }
  const std::string gen_path = JoinPath(dir, "generation_config.json");
  if (FileExists(gen_path)) {
    FAMQ_ASSIGN_OR_RETURN(gen_text, ReadFile(gen_path, 1u << 20));
  }
  FAMQ_RETURN_IF_ERROR(ResolveSpecialTokens(m.checkpoint.config(), tc_text, gen_text, dir, &m));
  return m;
}

}  // namespace famq
