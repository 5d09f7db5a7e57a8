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

}  // namespace

Result<std::unique_ptr<CompletionService>> CompletionService::Create(const std::string& model_dir,
                                                                     const std::string& name,
                                                                     const EngineOptions& options,
                                                                     const ServeLimits& limits) {
  std::unique_ptr<CompletionService> s(new CompletionService());
  FAMQ_ASSIGN_OR_RETURN(ModelDir m, OpenModelDir(model_dir));
  s->model_ = std::make_unique<ModelDir>(std::move(m));
  FAMQ_ASSIGN_OR_RETURN(s->engine_, Engine::Create(s->model_->checkpoint, options));
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

Result<OJson> CompletionService::Complete(const Json& req) {
  if (!req.is_object()) return InvalidArgument("the request body must be a JSON object");
  FAMQ_ASSIGN_OR_RETURN(std::string model, Field<std::string>(req, "model", name_));
  if (model != name_) return NotFound("model '" + model + "' does not exist (this server has '" + name_ + "')");
  // prompt
  std::vector<int32_t> prompt;
  Json p = req.contains("prompt") ? req["prompt"] : Json();
  if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array())) p = p[0];
  if (p.is_string()) {
    FAMQ_RETURN_IF_ERROR(model_->tokenizer.Encode(p.get<std::string>(), &prompt));
  } else if (p.is_array() && !p.empty()) {
    for (const auto& v : p) {
      if (!v.is_number_integer()) return InvalidArgument("\"prompt\" arrays must hold token ids");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= engine_->vocab_size()) {
        return InvalidArgument("prompt token id " + std::to_string(id) + " outside the vocabulary of " +
                               std::to_string(engine_->vocab_size()));
      }
      prompt.push_back(static_cast<int32_t>(id));
    }
  } else {
    return InvalidArgument("\"prompt\" must be a string or a non-empty array of token ids (batches of several "
                           "prompts are not supported)");
  }
  if (prompt.empty()) return InvalidArgument("the prompt encodes to no tokens");
  FAMQ_ASSIGN_OR_RETURN(int n, Field<int>(req, "n", 1));
  FAMQ_ASSIGN_OR_RETURN(float temperature, Field<float>(req, "temperature", 1.0f));
  FAMQ_ASSIGN_OR_RETURN(float top_p, Field<float>(req, "top_p", 1.0f));
  FAMQ_ASSIGN_OR_RETURN(int top_k, Field<int>(req, "top_k", 0));
  FAMQ_ASSIGN_OR_RETURN(uint64_t seed, Field<uint64_t>(req, "seed", 0));
  FAMQ_ASSIGN_OR_RETURN(int max_tokens, Field<int>(req, "max_tokens", 16));
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
  std::vector<std::string> stop;
  if (req.contains("stop") && !req["stop"].is_null()) {
    if (req["stop"].is_string()) {
      stop.push_back(req["stop"].get<std::string>());
    } else if (req["stop"].is_array()) {
      for (const auto& s : req["stop"]) {
        if (!s.is_string()) return InvalidArgument("\"stop\" must be a string or an array of strings");
        stop.push_back(s.get<std::string>());
      }
    } else {
      return InvalidArgument("\"stop\" must be a string or an array of strings");
    }
  }
  std::vector<int32_t> stop_ids = model_->stop_tokens;
  if (req.contains("stop_token_ids") && req["stop_token_ids"].is_array()) {
    for (const auto& v : req["stop_token_ids"]) {
      if (v.is_number_integer()) stop_ids.push_back(v.get<int32_t>());
    }
  }
  if (n < 1 || n > limits_.max_n) return InvalidArgument("\"n\" must be in [1, " + std::to_string(limits_.max_n) + "]");
  if (max_tokens < 0 || max_tokens > limits_.max_tokens) {
    return InvalidArgument("\"max_tokens\" must be in [0, " + std::to_string(limits_.max_tokens) + "]");
  }
  if (!(temperature >= 0.0f && temperature <= 100.0f)) return InvalidArgument("\"temperature\" must be in [0, 100]");
  if (!(top_p > 0.0f && top_p <= 1.0f)) return InvalidArgument("\"top_p\" must be in (0, 1]");
  if (top_k < 0) top_k = 0;  // vLLM uses -1 for "off"
  if (static_cast<int64_t>(prompt.size()) + max_tokens > engine_->max_seq_len()) {
    return InvalidArgument("prompt (" + std::to_string(prompt.size()) + " tokens) + max_tokens (" +
                           std::to_string(max_tokens) + ") exceed the context of " +
                           std::to_string(engine_->max_seq_len()) + " tokens");
  }

  std::lock_guard<std::mutex> lock(mu_);
  const size_t V = static_cast<size_t>(engine_->vocab_size());
  // Prompt logprobs (echo with logprobs): every prompt token given its prefix.
  OJson prompt_lp;
  if (echo && logprobs >= 0) {
    std::vector<float> rows(static_cast<size_t>(engine_->max_batch()) * V);
    OJson tokens = OJson::array(), token_lps = OJson::array(), tops = OJson::array(), offsets = OJson::array();
    size_t offset = 0;
    for (size_t start = 0; start < prompt.size(); start += static_cast<size_t>(engine_->max_batch())) {
      const size_t len = std::min(prompt.size() - start, static_cast<size_t>(engine_->max_batch()));
      FAMQ_RETURN_IF_ERROR(engine_->Forward(std::span<const int32_t>(prompt).subspan(start, len),
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
  }
  const std::string prompt_text = echo ? model_->tokenizer.Decode(prompt) : std::string();

  std::vector<GeneratedCandidate> cands(static_cast<size_t>(n));
  if (max_tokens > 0) {
    GroupParams g;
    g.n = n;
    g.temperature = temperature;
    g.top_p = top_p;
    g.top_k = top_k;
    g.max_new_tokens = max_tokens;
    g.seed = seed;
    g.stop_tokens = stop_ids;
    FAMQ_ASSIGN_OR_RETURN(cands, GenerateGroup(*engine_, prompt, g));
  }
  OJson choices = OJson::array();
  long long completion_tokens = 0;
  std::vector<float> logits(V);
  for (int j = 0; j < n; ++j) {
    GeneratedCandidate& c = cands[static_cast<size_t>(j)];
    std::string finish = c.finished ? "stop" : "length";
    std::vector<int32_t> ids = c.ids;
    // Stop strings: cut at the first occurrence (the tokens after it are dropped).
    if (!stop.empty()) {
      std::string text;
      for (size_t k = 0; k < ids.size(); ++k) {
        text = model_->tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k + 1)));
        bool hit = false;
        for (const auto& s : stop) hit = hit || (!s.empty() && text.find(s) != std::string::npos);
        if (hit) {
          ids.resize(k + 1);
          finish = "stop";
          break;
        }
      }
    }
    std::string text = model_->tokenizer.Decode(ids);
    if (finish == "stop" && !stop.empty()) {
      for (const auto& s : stop) {
        const size_t at = s.empty() ? std::string::npos : text.find(s);
        if (at != std::string::npos) text.resize(at);
      }
    }
    completion_tokens += static_cast<long long>(ids.size());
    OJson choice{{"index", j}, {"text", prompt_text + text}, {"token_ids", ids}};
    if (logprobs >= 0) {
      // Logprobs of the generated tokens under the model (unscaled distribution).
      OJson lp = echo ? prompt_lp : OJson{{"tokens", OJson::array()}, {"token_logprobs", OJson::array()},
                                          {"top_logprobs", OJson::array()}, {"text_offset", OJson::array()}};
      if (!ids.empty()) {
        std::vector<float> all(static_cast<size_t>(engine_->max_batch()) * V);
        std::vector<int32_t> seq = prompt;
        seq.insert(seq.end(), ids.begin(), ids.end());
        size_t offset = prompt_text.size();
        // Re-run prompt + generation; rows prompt.size()-1 .. end-2 predict the generated tokens.
        for (size_t start = 0; start + 1 < seq.size(); start += static_cast<size_t>(engine_->max_batch())) {
          const size_t len = std::min(seq.size() - 1 - start, static_cast<size_t>(engine_->max_batch()));
          FAMQ_RETURN_IF_ERROR(engine_->Forward(std::span<const int32_t>(seq).subspan(start, len),
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
      }
      choice["logprobs"] = lp;
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = max_tokens == 0 ? "length" : finish;
    choices.push_back(std::move(choice));
  }
  const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  return OJson{{"id", "cmpl-famq-" + std::to_string(next_id_++)},
               {"object", "text_completion"},
               {"created", created},
               {"model", name_},
               {"choices", choices},
               {"usage", {{"prompt_tokens", prompt.size()},
                          {"completion_tokens", completion_tokens},
                          {"total_tokens", static_cast<long long>(prompt.size()) + completion_tokens}}}};
}

}  // namespace famq
