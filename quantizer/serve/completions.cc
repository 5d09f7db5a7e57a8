#include "serve/completions.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "engine/ops.h"
#include "pipeline/regenerate.h"

namespace famq {
namespace {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

// The top `k` (id, logprob) of a row, best first (ties: lower id); `lse` is
// the row's log-sum-exp.
std::vector<std::pair<int32_t, double>> TopLogprobs(const float* row, size_t vocab, double lse, int k) {
  std::vector<int32_t> idx(vocab);
  for (size_t i = 0; i < vocab; ++i) idx[i] = static_cast<int32_t>(i);
  k = std::min<int>(k, static_cast<int>(vocab));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  std::vector<std::pair<int32_t, double>> out;
  for (int i = 0; i < k; ++i) {
    const int32_t id = idx[static_cast<size_t>(i)];
    out.push_back({id, double(row[id]) - lse});
  }
  return out;
}

template <typename T>
Result<T> Field(const Json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const Json::exception&) {
    return InvalidArgument(std::string("\"") + key + "\" has the wrong type");
  }
}

OJson Usage(size_t prompt_tokens, long long completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", static_cast<long long>(prompt_tokens) + completion_tokens}};
}

long long Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<CompletionService>> CompletionService::Create(const std::string& model_dir,
                                                                     const std::string& name,
                                                                     const EngineOptions& options,
                                                                     const ServeLimits& limits) {
  std::unique_ptr<CompletionService> s(new CompletionService());
  FAMQ_ASSIGN_OR_RETURN(ModelDir m, OpenModelDir(model_dir));
  s->model_ = std::make_unique<ModelDir>(std::move(m));
  EngineOptions eo = options;
  // Slot 0 is the decoder's scratch, the others hold candidates.
  eo.max_sequences = 1 + DecodeSlots(s->model_->checkpoint.config(), eo, limits.decode_slots);
  FAMQ_ASSIGN_OR_RETURN(s->engine_, Engine::Create(s->model_->checkpoint, eo));
  FAMQ_ASSIGN_OR_RETURN(s->decoder_, BatchDecoder::Create(s->engine_.get()));
  if (s->model_->tokenizer_config && !s->model_->tokenizer_config->chat_template.empty()) {
    FAMQ_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(s->model_->tokenizer_config->chat_template));
    s->chat_template_ = std::move(t);
  }
  s->name_ = name.empty() ? std::filesystem::path(model_dir).lexically_normal().filename().string() : name;
  if (s->name_.empty()) s->name_ = "famq";
  s->limits_ = limits;
  return s;
}

OJson CompletionService::Models() const {
  return {{"object", "list"},
          {"data", OJson::array({{{"id", name_},
                                  {"object", "model"},
                                  {"owned_by", "famq"},
                                  {"max_model_len", engine_->max_seq_len()}}})}};
}

Status CompletionService::CheckModel(const Json& req) const {
  if (!req.is_object()) return InvalidArgument("the request body must be a JSON object");
  FAMQ_ASSIGN_OR_RETURN(std::string model, Field<std::string>(req, "model", name_));
  if (model != name_) return NotFound("model '" + model + "' does not exist (this server has '" + name_ + "')");
  return Status::Ok();
}

Result<std::vector<int32_t>> CompletionService::ParseTokens(const Json& req, const char* field) const {
  std::vector<int32_t> ids;
  Json p = req.contains(field) ? req[field] : Json();
  if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array())) p = p[0];
  if (p.is_string()) {
    FAMQ_RETURN_IF_ERROR(model_->tokenizer.Encode(p.get<std::string>(), &ids));
  } else if (p.is_array() && !p.empty()) {
    for (const auto& v : p) {
      if (!v.is_number_integer()) return InvalidArgument(std::string("\"") + field + "\" arrays must hold token ids");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= engine_->vocab_size()) {
        return InvalidArgument(std::string(field) + " token id " + std::to_string(id) + " outside the vocabulary of " +
                               std::to_string(engine_->vocab_size()));
      }
      ids.push_back(static_cast<int32_t>(id));
    }
  } else {
    return InvalidArgument(std::string("\"") + field + "\" must be a string or a non-empty array of token ids " +
                           "(batches of several " + field + "s are not supported)");
  }
  if (ids.empty()) return InvalidArgument(std::string("the ") + field + " encodes to no tokens");
  return ids;
}

Result<CompletionService::Sampling> CompletionService::ParseSampling(const Json& req, int default_max_tokens,
                                                                     size_t prompt_len) const {
  Sampling s;
  if (default_max_tokens < 0) {
    default_max_tokens = static_cast<int>(std::clamp<int64_t>(
        static_cast<int64_t>(engine_->max_seq_len()) - static_cast<int64_t>(prompt_len), 0, limits_.max_tokens));
  }
  FAMQ_ASSIGN_OR_RETURN(s.n, Field<int>(req, "n", 1));
  FAMQ_ASSIGN_OR_RETURN(s.temperature, Field<float>(req, "temperature", 1.0f));
  FAMQ_ASSIGN_OR_RETURN(s.top_p, Field<float>(req, "top_p", 1.0f));
  FAMQ_ASSIGN_OR_RETURN(s.top_k, Field<int>(req, "top_k", 0));
  FAMQ_ASSIGN_OR_RETURN(s.seed, Field<uint64_t>(req, "seed", 0));
  FAMQ_ASSIGN_OR_RETURN(s.max_tokens, Field<int>(req, "max_tokens", default_max_tokens));
  if (req.contains("stop") && !req["stop"].is_null()) {
    if (req["stop"].is_string()) {
      s.stop.push_back(req["stop"].get<std::string>());
    } else if (req["stop"].is_array()) {
      for (const auto& x : req["stop"]) {
        if (!x.is_string()) return InvalidArgument("\"stop\" must be a string or an array of strings");
        s.stop.push_back(x.get<std::string>());
      }
    } else {
      return InvalidArgument("\"stop\" must be a string or an array of strings");
    }
  }
  s.stop_ids = model_->stop_tokens;
  if (req.contains("stop_token_ids") && req["stop_token_ids"].is_array()) {
    for (const auto& v : req["stop_token_ids"]) {
      if (v.is_number_integer()) s.stop_ids.push_back(v.get<int32_t>());
    }
  }
  if (s.n < 1 || s.n > limits_.max_n) {
    return InvalidArgument("\"n\" must be in [1, " + std::to_string(limits_.max_n) + "]");
  }
  if (s.max_tokens < 0 || s.max_tokens > limits_.max_tokens) {
    return InvalidArgument("\"max_tokens\" must be in [0, " + std::to_string(limits_.max_tokens) + "]");
  }
  if (!(s.temperature >= 0.0f && s.temperature <= 100.0f)) return InvalidArgument("\"temperature\" must be in [0, 100]");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return InvalidArgument("\"top_p\" must be in (0, 1]");
  if (s.top_k < 0) s.top_k = 0;  // vLLM uses -1 for "off"
  if (static_cast<int64_t>(prompt_len) + s.max_tokens > engine_->max_seq_len()) {
    return InvalidArgument("prompt (" + std::to_string(prompt_len) + " tokens) + max_tokens (" +
                           std::to_string(s.max_tokens) + ") exceed the context of " +
                           std::to_string(engine_->max_seq_len()) + " tokens");
  }
  return s;
}

Result<std::vector<GeneratedCandidate>> CompletionService::Sample(std::span<const int32_t> prompt,
                                                                  const Sampling& s) {
  if (s.max_tokens == 0) return std::vector<GeneratedCandidate>(static_cast<size_t>(s.n));
  GroupParams g;
  g.n = s.n;
  g.temperature = s.temperature;
  g.top_p = s.top_p;
  g.top_k = s.top_k;
  g.max_new_tokens = s.max_tokens;
  g.seed = s.seed;
  g.stop_tokens = s.stop_ids;
  return decoder_->Generate(prompt, g);
}

void CompletionService::ApplyStops(const Sampling& s, std::vector<int32_t>* ids, std::string* text,
                                   std::string* finish) const {
  // Stop strings: cut at the first occurrence (the tokens after it are dropped).
  if (!s.stop.empty()) {
    for (size_t k = 0; k < ids->size(); ++k) {
      const std::string prefix = model_->tokenizer.Decode(
          std::vector<int32_t>(ids->begin(), ids->begin() + static_cast<std::ptrdiff_t>(k + 1)));
      bool hit = false;
      for (const auto& x : s.stop) hit = hit || (!x.empty() && prefix.find(x) != std::string::npos);
      if (hit) {
        ids->resize(k + 1);
        *finish = "stop";
        break;
      }
    }
  }
  *text = model_->tokenizer.Decode(*ids);
  if (*finish == "stop" && !s.stop.empty()) {
    for (const auto& x : s.stop) {
      const size_t at = x.empty() ? std::string::npos : text->find(x);
      if (at != std::string::npos) text->resize(at);
    }
  }
}

Result<OJson> CompletionService::Complete(const Json& req) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, ParseTokens(req, "prompt"));
  FAMQ_ASSIGN_OR_RETURN(Sampling sp, ParseSampling(req, 16, prompt.size()));
  FAMQ_ASSIGN_OR_RETURN(bool echo, Field<bool>(req, "echo", false));
  int logprobs = -1;
  if (req.contains("logprobs") && !req["logprobs"].is_null()) {
    if (req["logprobs"].is_boolean()) {
      logprobs = req["logprobs"].get<bool>() ? 0 : -1;
    } else {
      FAMQ_ASSIGN_OR_RETURN(logprobs, Field<int>(req, "logprobs", -1));
      if (logprobs < 0 || logprobs > 20) return InvalidArgument("\"logprobs\" must be in [0, 20]");
    }
  }
  const int n = sp.n;
  const int max_tokens = sp.max_tokens;

  const size_t V = static_cast<size_t>(engine_->vocab_size());
  // Prompt logprobs (echo with logprobs): every prompt token given its prefix,
  // chunked like RunExpertPass (max_batch from position 0) so that the mean
  // equals the expert's fidelity bit for bit.
  OJson prompt_lp;
  if (echo && logprobs >= 0) {
    const Status st = decoder_->RunExclusive([&](Engine& engine) -> Status {
      std::vector<float> rows(static_cast<size_t>(engine.max_batch()) * V);
      OJson tokens = OJson::array(), token_lps = OJson::array(), tops = OJson::array(), offsets = OJson::array();
      size_t offset = 0;
      for (size_t start = 0; start < prompt.size(); start += static_cast<size_t>(engine.max_batch())) {
        const size_t len = std::min(prompt.size() - start, static_cast<size_t>(engine.max_batch()));
        FAMQ_RETURN_IF_ERROR(engine.Forward(std::span<const int32_t>(prompt).subspan(start, len),
                                            static_cast<int>(start), rows.data(), true));
        for (size_t t = 0; t < len; ++t) {
          const size_t pos = start + t;
          if (pos == 0) {
            token_lps.push_back(nullptr);
            tops.push_back(nullptr);
          }
          if (pos + 1 < prompt.size()) {
            const float* row = &rows[t * V];
            const double lse = ops::LogSumExp(row, V);
            token_lps.push_back(double(row[prompt[pos + 1]]) - lse);
            OJson top = OJson::object();
            for (const auto& [id, lp] : TopLogprobs(row, V, lse, logprobs)) top[model_->tokenizer.Decode({id})] = lp;
            tops.push_back(top);
          }
        }
      }
      for (int32_t id : prompt) {
        const std::string piece = model_->tokenizer.Decode({id});
        tokens.push_back(piece);
        offsets.push_back(offset);
        offset += piece.size();
      }
      prompt_lp = {{"tokens", tokens}, {"token_logprobs", token_lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
      return Status::Ok();
    });
    if (!st.ok()) return st;
  }
  const std::string prompt_text = echo ? model_->tokenizer.Decode(prompt) : std::string();

  FAMQ_ASSIGN_OR_RETURN(std::vector<GeneratedCandidate> cands, Sample(prompt, sp));
  OJson choices = OJson::array();
  long long completion_tokens = 0;
  for (int j = 0; j < n; ++j) {
    GeneratedCandidate& c = cands[static_cast<size_t>(j)];
    std::string finish = c.finished ? "stop" : "length";
    std::vector<int32_t> ids = c.ids;
    std::string text;
    ApplyStops(sp, &ids, &text, &finish);
    completion_tokens += static_cast<long long>(ids.size());
    OJson choice{{"index", j}, {"text", prompt_text + text}, {"token_ids", ids}};
    if (logprobs >= 0) {
      // Logprobs of the generated tokens under the model (unscaled distribution).
      OJson lp = echo ? prompt_lp : OJson{{"tokens", OJson::array()}, {"token_logprobs", OJson::array()},
                                          {"top_logprobs", OJson::array()}, {"text_offset", OJson::array()}};
      // Re-run prompt + generation on the decoder's thread.
      const Status st = ids.empty() ? Status::Ok() : decoder_->RunExclusive([&](Engine& engine) -> Status {
        std::vector<float> all(static_cast<size_t>(engine.max_batch()) * V);
        std::vector<int32_t> seq = prompt;
        seq.insert(seq.end(), ids.begin(), ids.end());
        size_t offset = prompt_text.size();
        // Re-run prompt + generation; rows prompt.size()-1 .. end-2 predict the generated tokens.
        for (size_t start = 0; start + 1 < seq.size(); start += static_cast<size_t>(engine.max_batch())) {
          const size_t len = std::min(seq.size() - 1 - start, static_cast<size_t>(engine.max_batch()));
          FAMQ_RETURN_IF_ERROR(engine.Forward(std::span<const int32_t>(seq).subspan(start, len),
                                              static_cast<int>(start), all.data(), true));
          for (size_t t = 0; t < len; ++t) {
            const size_t pos = start + t;
            if (pos + 1 < prompt.size()) continue;
            const int32_t id = seq[pos + 1];
            const std::string piece = model_->tokenizer.Decode({id});
            lp["tokens"].push_back(piece);
            const double lse = ops::LogSumExp(&all[t * V], V);
            lp["token_logprobs"].push_back(double(all[t * V + static_cast<size_t>(id)]) - lse);
            OJson top = OJson::object();
            for (const auto& [tid, l] : TopLogprobs(&all[t * V], V, lse, logprobs)) top[model_->tokenizer.Decode({tid})] = l;
            lp["top_logprobs"].push_back(top);
            lp["text_offset"].push_back(offset);
            offset += piece.size();
          }
        }
        return Status::Ok();
      });
      if (!st.ok()) return st;
      choice["logprobs"] = lp;
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = max_tokens == 0 ? "length" : finish;
    choices.push_back(std::move(choice));
  }
  return OJson{{"id", "cmpl-famq-" + std::to_string(next_id_++)},
               {"object", "text_completion"},
               {"created", Now()},
               {"model", name_},
               {"choices", choices},
               {"usage", Usage(prompt.size(), completion_tokens)}};
}

Result<std::vector<int32_t>> CompletionService::RenderChat(const Json& req) const {
  if (!chat_template_) return InvalidArgument("model '" + name_ + "' has no chat template (use /v1/completions)");
  if (!req.contains("messages") || !req["messages"].is_array() || req["messages"].empty()) {
    return InvalidArgument("\"messages\" must be a non-empty array of {role, content}");
  }
  std::vector<ChatMessage> messages;
  for (const auto& m : req["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return InvalidArgument("every message needs a string \"role\"");
    }
    if (!m.contains("content") || !m["content"].is_string()) {
      return InvalidArgument("every message needs a string \"content\" (content parts are not supported)");
    }
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  ChatTemplateOptions opt;
  opt.add_generation_prompt = true;
  opt.bos_token = model_->tokenizer_config->bos_token;
  opt.eos_token = model_->tokenizer_config->eos_token;
  if (req.contains("chat_template_kwargs") && !req["chat_template_kwargs"].is_null()) {
    const Json& kw = req["chat_template_kwargs"];
    if (!kw.is_object()) return InvalidArgument("\"chat_template_kwargs\" must be an object");
    FAMQ_ASSIGN_OR_RETURN(opt.enable_thinking, Field<bool>(kw, "enable_thinking", true));
  }
  FAMQ_ASSIGN_OR_RETURN(std::string rendered, chat_template_->Render(messages, opt));
  std::vector<int32_t> ids;
  FAMQ_RETURN_IF_ERROR(model_->tokenizer.Encode(rendered, &ids));
  if (ids.empty()) return InvalidArgument("the messages render to no tokens");
  return ids;
}

Result<OJson> CompletionService::ChatComplete(const Json& req) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, RenderChat(req));
  Json fields = req;
  if (req.contains("max_completion_tokens") && !req["max_completion_tokens"].is_null()) {
    fields["max_tokens"] = req["max_completion_tokens"];
  }
  FAMQ_ASSIGN_OR_RETURN(Sampling sp, ParseSampling(fields, -1, prompt.size()));
  if (limits_.api == ServeApi::kChatOnly && sp.n != 1) {
    return InvalidArgument("\"n\" must be 1 on this server (famq serve --api chat-only)");
  }
  FAMQ_ASSIGN_OR_RETURN(std::vector<GeneratedCandidate> cands, Sample(prompt, sp));
  OJson choices = OJson::array();
  long long completion_tokens = 0;
  for (int j = 0; j < sp.n; ++j) {
    GeneratedCandidate& c = cands[static_cast<size_t>(j)];
    std::string finish = sp.max_tokens == 0 || !c.finished ? "length" : "stop";
    std::vector<int32_t> ids = c.ids;
    std::string text;
    ApplyStops(sp, &ids, &text, &finish);
    completion_tokens += static_cast<long long>(ids.size());
    choices.push_back(OJson{{"index", j},
                            {"message", {{"role", "assistant"}, {"content", text}}},
                            {"finish_reason", finish},
                            {"token_ids", ids}});
  }
  return OJson{{"id", "chatcmpl-famq-" + std::to_string(next_id_++)},
               {"object", "chat.completion"},
               {"created", Now()},
               {"model", name_},
               {"choices", choices},
               {"usage", Usage(prompt.size(), completion_tokens)}};
}

Result<OJson> CompletionService::Embed(const Json& req) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokens(req, "input"));
  FAMQ_ASSIGN_OR_RETURN(std::string format, Field<std::string>(req, "encoding_format", "float"));
  if (format != "float") return InvalidArgument("\"encoding_format\" must be \"float\" (famq serve has no base64)");
  FAMQ_ASSIGN_OR_RETURN(int64_t pool_from, Field<int64_t>(req, "pool_from", 0));
  if (pool_from < 0) return InvalidArgument("\"pool_from\" must be >= 0");
  const int n = static_cast<int>(ids.size());
  const int used = static_cast<int>(std::min<int64_t>(pool_from, n - 1));  // RunExpertPass's clamp
  std::vector<float> pooled;
  FAMQ_RETURN_IF_ERROR(decoder_->RunExclusive([&](Engine& engine) {
    return RunExpertPass(engine, ids, n, used, nullptr, &pooled, &expert_buffers_);
  }));
  return OJson{{"object", "list"},
               {"data", OJson::array({{{"object", "embedding"}, {"index", 0}, {"embedding", pooled},
                                       {"pool_from", used}}})},
               {"model", name_},
               {"usage", {{"prompt_tokens", ids.size()}, {"total_tokens", ids.size()}}}};
}

}  // namespace famq
