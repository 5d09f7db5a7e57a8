#include "pipeline/openai_backend.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/json_parse.h"

namespace famq {
namespace {

using Json = nlohmann::json;

std::string Snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s + (body.size() > 200 ? "..." : "");
}

// JSON over HTTP with timeouts and retries, and the model id of the server.
class OpenAIClient {
 public:
  explicit OpenAIClient(const OpenAIBackendOptions& o) : o_(o) {
    base_ = o_.url;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    if (base_.size() >= 3 && base_.compare(base_.size() - 3, 3, "/v1") == 0) base_.resize(base_.size() - 3);
  }

  // GET /v1/models: the model id (options.model or the first served) and its max_model_len (0: not said).
  Status Connect() {
    if (base_.rfind("http://", 0) != 0 && base_.rfind("https://", 0) != 0) {
      return InvalidArgument("backend URL '" + o_.url + "' must start with http:// or https://");
    }
    FAMQ_ASSIGN_OR_RETURN(Json models, Call("GET", "/v1/models", ""));
    const bool listed = models.contains("data") && models["data"].is_array() && !models["data"].empty() &&
                        models["data"][0].is_object();
    if (o_.model.empty()) {
      if (!listed || !models["data"][0].contains("id") || !models["data"][0]["id"].is_string()) {
        return InvalidFormat(base_ + "/v1/models answered without a model id: " + Snippet(models.dump()));
      }
      model_ = models["data"][0]["id"].get<std::string>();
    } else {
      model_ = o_.model;
    }
    if (listed) {
      for (const auto& m : models["data"]) {
        if (m.is_object() && m.contains("id") && m["id"].is_string() && m["id"].get<std::string>() == model_ &&
            m.contains("max_model_len") && m["max_model_len"].is_number_integer() &&
            m["max_model_len"].get<int64_t>() > 0 && m["max_model_len"].get<int64_t>() <= INT32_MAX) {
          max_model_len_ = static_cast<int>(m["max_model_len"].get<int64_t>());
        }
      }
    }
    return Status::Ok();
  }

  // One request; retries (default: options.retries) on connection errors,
  // 429 and 5xx. *http_status: the last HTTP status (0: none came).
  Result<Json> Call(const std::string& method, const std::string& path, const std::string& body,
                    int* http_status = nullptr, int retries = -1) const {
    if (retries < 0) retries = o_.retries;
    httplib::Client cli(base_);
    const auto secs = static_cast<time_t>(o_.timeout_s);
    const auto usecs = static_cast<time_t>((o_.timeout_s - static_cast<double>(secs)) * 1e6);
    cli.set_connection_timeout(10, 0);
    cli.set_read_timeout(secs, usecs);
    cli.set_write_timeout(secs, usecs);
    if (!o_.api_key.empty()) cli.set_bearer_token_auth(o_.api_key);
    std::string last_error;
    double delay = o_.backoff_s;
    if (http_status) *http_status = 0;
    for (int attempt = 0; attempt <= retries; ++attempt) {
      if (attempt > 0) {
        std::fprintf(stderr, "[famq] %s %s%s: %s; retry %d/%d in %.1fs\n", method.c_str(), base_.c_str(), path.c_str(),
                     Redact(last_error).c_str(), attempt, retries, delay);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        delay *= 2;
      }
      auto res = method == "GET" ? cli.Get(path) : cli.Post(path, body, "application/json");
      if (!res) {
        last_error = "cannot reach the server (" + httplib::to_string(res.error()) + ")";
        continue;
      }
      if (http_status) *http_status = res->status;
      if (res->status == 429 || res->status >= 500) {
        last_error = "HTTP " + std::to_string(res->status) + ": " + Snippet(res->body);
        continue;
      }
      if (res->status == 401 || res->status == 403) {
        return InvalidArgument(Redact(
            base_ + path + " refused the request: HTTP " + std::to_string(res->status) +
            (o_.api_key.empty() ? " (the server wants an API key: give --api-key KEY or set FAMQ_BACKEND_API_KEY)"
                                : " (the server does not accept the API key famq sent)") +
            ": " + Snippet(res->body)));
      }
      if (res->status != 200) {
        return InvalidArgument(Redact(base_ + path + " refused the request: HTTP " + std::to_string(res->status) +
                                      ": " + Snippet(res->body)));
      }
      // The server is not trusted: depth-limited, so that the value can be copied and dumped.
      Json j;
      if (Status s = ParseJson(res->body, "reply", &j); !s.ok() || !j.is_object()) {
        return InvalidFormat(Redact(base_ + path + " answered garbage (" +
                                    (s.ok() ? "not a JSON object" : s.message()) + "): " + Snippet(res->body)));
      }
      return j;
    }
    return IoError(Redact(base_ + path + ": " + last_error + " (gave up after " + std::to_string(retries) +
                          " retries)"));
  }

  // `text` with the API key replaced by "***": a server may echo request
  // headers in an error body, and nothing famq prints may hold the key.
  std::string Redact(std::string text) const {
    if (o_.api_key.empty()) return text;
    for (size_t at = text.find(o_.api_key); at != std::string::npos; at = text.find(o_.api_key, at + 3)) {
      text.replace(at, o_.api_key.size(), "***");
    }
    return text;
  }

  const std::string& base() const { return base_; }
  const std::string& model() const { return model_; }
  // `s` with the API key redacted from its message.
  Status Redacted(const Status& s) const { return s.ok() ? s : Status(s.code(), Redact(s.message())); }
  int max_model_len() const { return max_model_len_; }

 private:
  OpenAIBackendOptions o_;
  std::string base_, model_;
  int max_model_len_ = 0;
};

class OpenAIBackend : public GroupBackend {
 public:
  OpenAIBackend(const OpenAIBackendOptions& o, const Tokenizer* tok) : client_(o), tok_(tok), chat_(o.chat) {}

  // Connects; without options.chat, a server whose /v1/completions answers a
  // one-token request with 404 or 405 regenerates through chat completions,
  // and one that refuses n = 2 (400) but answers n = 1 (llama-server builds
  // with "Only one completion choice is allowed") gets one completions
  // request per candidate.
  Status Connect() {
    FAMQ_RETURN_IF_ERROR(client_.Connect());
    if (chat_) return Status::Ok();
    Json probe{{"model", client_.model()},
               {"prompt", std::vector<int32_t>{0}},
               {"max_tokens", 1},
               {"n", 2},
               {"return_token_ids", true}};
    int http_status = 0;
    auto r = client_.Call("POST", "/v1/completions", probe.dump(), &http_status, 0);
    if (http_status == 401 || http_status == 403) return r.status();
    if (http_status == 400) {
      probe["n"] = 1;
      int single_status = 0;
      auto single = client_.Call("POST", "/v1/completions", probe.dump(), &single_status, 0);
      if (single.ok()) {
        std::fprintf(stderr, "[famq regenerate] %s refuses n > 1 (%s): one /v1/completions request per candidate "
                             "(seed CandidateSeed(group seed, j); candidates differ from the n path)\n",
                     client_.base().c_str(), r.status().message().c_str());
        one_per_candidate_ = true;
        r = std::move(single);
        http_status = single_status;
      }
    }
    // A server that returns token_ids (famq serve, vLLM >= 0.10.2 with
    // return_token_ids) needs no logprobs to name the sampled tokens: asking
    // for them would only cost it work.
    ids_in_choices_ = r.ok() && r->contains("choices") && (*r)["choices"].is_array() && !(*r)["choices"].empty() &&
                      (*r)["choices"][0].contains("token_ids") && (*r)["choices"][0]["token_ids"].is_array();
    if (http_status == 404 || http_status == 405) {
      chat_ = true;
      std::fprintf(stderr, "[famq regenerate] %s has no /v1/completions: regenerating through "
                           "/v1/chat/completions, one request per candidate (candidates differ from the "
                           "completions path)\n", client_.base().c_str());
    }
    return Status::Ok();
  }

  Status ConnectRedacted() { return client_.Redacted(Connect()); }

  std::string Describe() const override {
    return (chat_ ? "openai-chat:" : "openai:") + client_.base() + (one_per_candidate_ ? " (n = 1 per candidate)" : "");
  }

  Result<std::vector<GeneratedCandidate>> Generate(const GroupRequest& request, const GroupParams& p) override {
    auto r = chat_ ? GenerateChat(request, p) : GenerateCompletions(request, p);
    if (!r.ok()) return client_.Redacted(r.status());  // replies are quoted in errors
    return r;
  }

 private:
  Result<std::vector<GeneratedCandidate>> GenerateCompletions(const GroupRequest& request, const GroupParams& p) {
    if (!one_per_candidate_) return CompletionsRequest(request, p, p.n, p.seed);
    std::vector<GeneratedCandidate> out;
    for (int j = 0; j < p.n; ++j) {
      FAMQ_ASSIGN_OR_RETURN(std::vector<GeneratedCandidate> one,
                            CompletionsRequest(request, p, 1, CandidateSeed(p.seed, static_cast<uint64_t>(j))));
      out.push_back(std::move(one[0]));
    }
    return out;
  }

  // One /v1/completions request for `n` candidates sampled with `seed`.
  Result<std::vector<GeneratedCandidate>> CompletionsRequest(const GroupRequest& request, GroupParams p, int n,
                                                             uint64_t seed) {
    p.n = n;
    Json req{{"model", client_.model()},
             {"prompt", request.prompt},
             {"n", p.n},
             {"temperature", p.temperature},
             {"top_p", p.top_p},
             {"seed", seed},
             {"max_tokens", p.max_new_tokens},
             {"return_token_ids", true}};  // vLLM >= 0.10.2: choices[].token_ids
    if (!ids_in_choices_) {
      // llama-server names each sampled token's id in logprobs.content[].id,
      // but only for logprobs >= 1 (0 gives none); vLLM before
      // return_token_ids writes them as logprobs.tokens "token_id:N".
      req["logprobs"] = 1;
      req["return_tokens_as_token_ids"] = true;
    }
    if (p.top_k > 0) req["top_k"] = p.top_k;
    if (!p.stop_tokens.empty()) req["stop_token_ids"] = p.stop_tokens;
    FAMQ_ASSIGN_OR_RETURN(Json r, client_.Call("POST", "/v1/completions", req.dump()));
    if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].size() != static_cast<size_t>(p.n)) {
      return InvalidFormat(client_.base() + ": expected " + std::to_string(p.n) + " choices, got: " + Snippet(r.dump()));
    }
    std::vector<GeneratedCandidate> out(static_cast<size_t>(p.n));
    for (const auto& ch : r["choices"]) {
      // Range-checked before any conversion: a float index (1e30) converted to int is undefined behaviour.
      const bool valid = ch.is_object() && ch.contains("index") && ch["index"].is_number_integer() &&
                         ch["index"].get<int64_t>() >= 0 && ch["index"].get<int64_t>() < p.n;
      if (!valid) return InvalidFormat(client_.base() + ": choice index out of range: " + Snippet(ch.dump()));
      FAMQ_RETURN_IF_ERROR(ToCandidate(ch, "text", p, &out[static_cast<size_t>(ch["index"].get<int64_t>())]));
    }
    FAMQ_RETURN_IF_ERROR(CheckUsage(r, out));
    return out;
  }

  // One request per candidate: chat servers may have no `n`.
  Result<std::vector<GeneratedCandidate>> GenerateChat(const GroupRequest& request, const GroupParams& p) {
    std::vector<GeneratedCandidate> out(static_cast<size_t>(p.n));
    for (int j = 0; j < p.n; ++j) {
      Json req{{"model", client_.model()},
               {"messages", Json::array({{{"role", "user"}, {"content", request.original}}})},
               {"n", 1},
               {"temperature", p.temperature},
               {"top_p", p.top_p},
               {"seed", CandidateSeed(p.seed, static_cast<uint64_t>(j))},
               {"max_tokens", p.max_new_tokens},
               {"chat_template_kwargs", {{"enable_thinking", !request.no_cot}}},
               {"return_token_ids", true}};
      if (!chat_ids_in_choices_) {
        // llama-server: logprobs.content[].id (top_logprobs >= 1, else it sends
        // no logprobs); vLLM: content[].token "token_id:N".
        req["logprobs"] = true;
        req["top_logprobs"] = 1;
        req["return_tokens_as_token_ids"] = true;
      }
      if (p.top_k > 0) req["top_k"] = p.top_k;
      FAMQ_ASSIGN_OR_RETURN(Json r, client_.Call("POST", "/v1/chat/completions", req.dump()));
      if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() ||
          !r["choices"][0].is_object() || !r["choices"][0].contains("message") ||
          !r["choices"][0]["message"].is_object()) {
        return InvalidFormat(client_.base() + "/v1/chat/completions: expected a choice with a message, got: " +
                             Snippet(r.dump()));
      }
      Json ch = r["choices"][0];
      ch["content"] = ch["message"].value("content", Json());
      // vLLM's reasoning parsers split the thinking off into reasoning_content:
      // put it back the way the family's template writes it.
      const Json& reasoning = ch["message"].contains("reasoning_content") ? ch["message"]["reasoning_content"] : Json();
      if (reasoning.is_string() && !reasoning.get<std::string>().empty() && ch["content"].is_string() &&
          !ch.contains("token_ids")) {
        ch["content"] = "<think>\n" + reasoning.get<std::string>() + "\n</think>\n\n" + ch["content"].get<std::string>();
      }
      FAMQ_RETURN_IF_ERROR(ToCandidate(ch, "content", p, &out[static_cast<size_t>(j)]));
      FAMQ_RETURN_IF_ERROR(CheckUsage(r, {out[static_cast<size_t>(j)]}));
      if (out[static_cast<size_t>(j)].ids_from == "token_ids") chat_ids_in_choices_ = true;
    }
    return out;
  }

  Status ToCandidate(const Json& ch, const char* text_field, const GroupParams& p, GeneratedCandidate* c) {
    FAMQ_ASSIGN_OR_RETURN(c->ids_from, TokenIds(ch, text_field, &c->ids));
    if (c->ids_from != "retokenized") c->logprobs = SampledLogprobs(ch, c->ids.size());
    c->finished = ch.contains("finish_reason") && ch["finish_reason"].is_string() &&
                  ch["finish_reason"].get<std::string>() == "stop";
    // Servers leave the stop token out of the ids; the candidate record keeps it like the engine does.
    if (c->finished && !p.stop_tokens.empty() &&
        (c->ids.empty() ||
         std::find(p.stop_tokens.begin(), p.stop_tokens.end(), c->ids.back()) == p.stop_tokens.end())) {
      c->ids.push_back(p.stop_tokens.front());
    }
    return Status::Ok();
  }

  // The server's usage.completion_tokens (when it says) cannot be fewer than
  // the ids it sent, less two per choice (the stop token famq adds back, and
  // one some servers leave out of the count): more ids than that is a server
  // that contradicts itself.
  Status CheckUsage(const Json& r, const std::vector<GeneratedCandidate>& cands) const {
    if (!r.contains("usage") || !r["usage"].is_object() || !r["usage"].contains("completion_tokens")) {
      return Status::Ok();
    }
    const Json& ct = r["usage"]["completion_tokens"];
    if (!ct.is_number_integer() || ct.get<int64_t>() < 0) {
      return InvalidFormat(client_.base() + ": usage.completion_tokens is not a count: " + Snippet(ct.dump()));
    }
    int64_t sent = 0;
    for (const auto& c : cands) {
      if (c.ids_from == "retokenized") return Status::Ok();  // not the server's ids
      sent += static_cast<int64_t>(c.ids.size());
    }
    const int64_t counted = ct.is_number_unsigned() && ct.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                                ? INT64_MAX
                                : ct.get<int64_t>();
    if (sent > counted + 2 * static_cast<int64_t>(cands.size())) {
      return InvalidFormat(client_.base() + " sent " + std::to_string(sent) + " token ids but counts " +
                           std::to_string(counted) + " completion tokens");
    }
    return Status::Ok();
  }

  // The logprobs the server reported for the `n` sampled tokens it named:
  // llama-server's logprobs.content[].logprob, vLLM's logprobs.token_logprobs.
  // All or none: a missing, non-number or positive value, or another count,
  // gives none (select then cannot use them and says so).
  static std::vector<double> SampledLogprobs(const Json& ch, size_t n) {
    std::vector<double> out;
    if (!ch.contains("logprobs") || !ch["logprobs"].is_object() || n == 0) return out;
    const Json& lp = ch["logprobs"];
    const auto take = [&](const Json& v) {
      if (!v.is_number() || !(v.get<double>() <= 0.0)) return false;
      out.push_back(v.get<double>());
      return true;
    };
    bool good = false;
    if (lp.contains("content") && lp["content"].is_array() && lp["content"].size() == n) {
      good = true;
      for (const auto& e : lp["content"]) good = good && e.is_object() && e.contains("logprob") && take(e["logprob"]);
    } else if (lp.contains("token_logprobs") && lp["token_logprobs"].is_array() && lp["token_logprobs"].size() == n) {
      good = true;
      for (const auto& v : lp["token_logprobs"]) good = good && take(v);
    }
    if (!good) out.clear();
    return out;
  }

  // A token id of the server's: in [0, the tokenizer's vocabulary), else a clear error.
  Result<int32_t> CheckedId(int64_t id, bool in_range, const std::string& shown) const {
    if (!in_range || id < 0 || id >= tok_->vocab_size()) {
      return InvalidFormat(client_.base() + " returned token id " + shown + ", outside the vocabulary of " +
                           std::to_string(tok_->vocab_size()) + " (is it serving another model?)");
    }
    return static_cast<int32_t>(id);
  }

  // A JSON integer as a checked id; `what` names the field in errors.
  Result<int32_t> JsonId(const Json& v, const char* what) const {
    if (!v.is_number_integer()) {
      return InvalidFormat(client_.base() + ": " + what + " holds a non-integer: " + Snippet(v.dump()));
    }
    const bool fits = !v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
    return CheckedId(fits ? v.get<int64_t>() : -1, fits, v.dump());
  }

  // vLLM's "token_id:N" (return_tokens_as_token_ids): N must be a whole decimal number.
  Result<std::optional<int32_t>> PrefixedId(const Json& t) const {
    const std::string s = t.is_string() ? t.get<std::string>() : "";
    if (s.rfind("token_id:", 0) != 0) return std::optional<int32_t>();
    int64_t id = -1;
    const char* first = s.data() + 9;
    const char* last = s.data() + s.size();
    const auto [end, ec] = std::from_chars(first, last, id);
    const bool number = ec == std::errc() && end == last && first != last;
    FAMQ_ASSIGN_OR_RETURN(const int32_t checked, CheckedId(id, number, "'" + Snippet(s) + "'"));
    return std::optional<int32_t>(checked);
  }

  // The sampled ids a choice's logprobs name, in the order of the sources
  // documented in openai_backend.h; nullopt when they name none.
  Result<std::optional<std::vector<int32_t>>> LogprobIds(const Json& ch, std::string* source) const {
    if (!ch.contains("logprobs") || !ch["logprobs"].is_object()) return std::optional<std::vector<int32_t>>();
    const Json& lp = ch["logprobs"];
    std::vector<int32_t> ids;
    // llama-server (both endpoints): logprobs.content[].id; vLLM chat: content[].token "token_id:N".
    if (lp.contains("content") && lp["content"].is_array()) {
      bool all_id = true, all_prefixed = true;
      for (const auto& e : lp["content"]) {
        all_id = all_id && e.is_object() && e.contains("id");
        all_prefixed = all_prefixed && e.is_object() && e.contains("token") && e["token"].is_string() &&
                       e["token"].get_ref<const std::string&>().rfind("token_id:", 0) == 0;
      }
      if (all_id) {
        for (const auto& e : lp["content"]) {
          FAMQ_ASSIGN_OR_RETURN(const int32_t id, JsonId(e["id"], "logprobs.content[].id"));
          ids.push_back(id);
        }
        *source = "logprobs.content.id";
        return std::optional<std::vector<int32_t>>(std::move(ids));
      }
      if (all_prefixed) {
        for (const auto& e : lp["content"]) {
          FAMQ_ASSIGN_OR_RETURN(const std::optional<int32_t> id, PrefixedId(e["token"]));
          ids.push_back(*id);
        }
        *source = "logprobs.content.token";
        return std::optional<std::vector<int32_t>>(std::move(ids));
      }
    }
    // vLLM completions with return_tokens_as_token_ids: logprobs.tokens[] "token_id:N".
    if (lp.contains("tokens") && lp["tokens"].is_array() && !lp["tokens"].empty()) {
      for (const auto& t : lp["tokens"]) {
        FAMQ_ASSIGN_OR_RETURN(const std::optional<int32_t> id, PrefixedId(t));
        if (!id) return std::optional<std::vector<int32_t>>();
        ids.push_back(*id);
      }
      *source = "logprobs.tokens";
      return std::optional<std::vector<int32_t>>(std::move(ids));
    }
    return std::optional<std::vector<int32_t>>();
  }

  // The ids of a choice and their source: "token_ids" (famq serve, vLLM with
  // return_token_ids), the logprobs' ids, else "retokenized" (a warning once).
  Result<std::string> TokenIds(const Json& ch, const char* text_field, std::vector<int32_t>* ids) {
    std::string lp_source;
    FAMQ_ASSIGN_OR_RETURN(std::optional<std::vector<int32_t>> lp_ids, LogprobIds(ch, &lp_source));
    if (ch.contains("token_ids") && !ch["token_ids"].is_null()) {
      if (!ch["token_ids"].is_array()) {
        return InvalidFormat(client_.base() + ": token_ids is not an array: " + Snippet(ch["token_ids"].dump()));
      }
      for (const auto& v : ch["token_ids"]) {
        FAMQ_ASSIGN_OR_RETURN(const int32_t id, JsonId(v, "token_ids"));
        ids->push_back(id);
      }
      // Both sources name the same sampled tokens: a server whose two lists disagree is not trusted.
      if (lp_ids && *lp_ids != *ids) {
        return InvalidFormat(client_.base() + ": token_ids (" + std::to_string(ids->size()) + " ids) and " +
                             lp_source + " (" + std::to_string(lp_ids->size()) + " ids) disagree");
      }
      return std::string("token_ids");
    }
    if (lp_ids) {
      *ids = std::move(*lp_ids);
      return lp_source;
    }
    if (!ch.contains(text_field) || !ch[text_field].is_string()) {
      return InvalidFormat(client_.base() + ": a choice has no " + text_field);
    }
    if (!warned_.exchange(true)) {
      std::fprintf(stderr, "[famq] warning: %s returns no token ids; re-tokenizing the text (ids may differ from "
                           "those sampled; the stage file marks these candidates \"ids_from\": \"retokenized\")\n",
                   client_.base().c_str());
    }
    FAMQ_RETURN_IF_ERROR(tok_->Encode(ch[text_field].get<std::string>(), ids));
    return std::string("retokenized");
  }

  OpenAIClient client_;
  const Tokenizer* tok_;
  bool chat_;
  bool ids_in_choices_ = false;                 // the probe's choice carried token_ids
  bool one_per_candidate_ = false;              // the server refuses n > 1: a request per candidate
  std::atomic<bool> chat_ids_in_choices_{false};  // a chat answer carried token_ids
  std::atomic<bool> warned_{false};
};

// token_logprobs of an echo response (one per prompt token, the first null), or an error naming what is wrong.
Result<Json> PromptLogprobs(const Json& r, size_t n, const std::string& where) {
  if (r.contains("choices") && r["choices"].is_array() && !r["choices"].empty() && r["choices"][0].is_object() &&
      r["choices"][0].contains("logprobs") && r["choices"][0]["logprobs"].is_object() &&
      r["choices"][0]["logprobs"].contains("token_logprobs") &&
      r["choices"][0]["logprobs"]["token_logprobs"].is_array()) {
    const Json& lp = r["choices"][0]["logprobs"]["token_logprobs"];
    bool numbers = lp.size() >= n;
    for (size_t t = 1; numbers && t < n; ++t) numbers = lp[t].is_number();
    if (numbers) return lp;
  }
  return InvalidFormat(where + " answered without the prompt's token_logprobs: " + Snippet(r.dump()));
}

// The numbers of an embedding array (finite, within float's range, at least one).
Status EmbeddingNumbers(const Json& e, const std::string& where, std::vector<float>* out) {
  if (!e.is_array() || e.empty()) return InvalidFormat(where + ": the embedding is not a non-empty array of numbers");
  out->clear();
  for (const auto& v : e) {
    // A double past float's range converted to float is undefined behaviour: refuse it.
    if (!v.is_number() || !(std::abs(v.get<double>()) <= FLT_MAX)) {
      return InvalidFormat(where + ": the embedding holds a non-number or one outside float's range");
    }
    out->push_back(static_cast<float>(v.get<double>()));
  }
  return Status::Ok();
}

// data[0].embedding of an embeddings response with the pool_from it echoes.
Status PooledEmbedding(const Json& r, int pool_from, const std::string& where, std::vector<float>* out) {
  if (r.contains("data") && r["data"].is_array() && !r["data"].empty() && r["data"][0].is_object()) {
    const Json& d = r["data"][0];
    const bool echoed = d.contains("pool_from") && d["pool_from"].is_number_integer() &&
                        d["pool_from"].get<int64_t>() == pool_from;
    if (echoed && d.contains("embedding")) return EmbeddingNumbers(d["embedding"], where, out);
  }
  return InvalidFormat(where + " answered without an embedding pooled from " + std::to_string(pool_from) + ": " +
                       Snippet(r.dump()));
}

// data[0].embedding of a standard embeddings response (one input).
Status PlainEmbedding(const Json& r, const std::string& where, std::vector<float>* out) {
  if (r.contains("data") && r["data"].is_array() && r["data"].size() == 1 && r["data"][0].is_object() &&
      r["data"][0].contains("embedding")) {
    return EmbeddingNumbers(r["data"][0]["embedding"], where, out);
  }
  return InvalidFormat(where + " answered without one embedding: " + Snippet(r.dump()));
}

// vLLM's choices[0].prompt_logprobs: [null, {"<id>": {"logprob": x, ...}, ...}, ...];
// out[t] = log p(prompt[t] | prompt[..t)) for t >= 1.
Result<std::vector<double>> VllmPromptLogprobs(const Json& r, const std::vector<int32_t>& prompt,
                                               const std::string& where) {
  const auto bad = [&] {
    return InvalidFormat(where + " answered without the prompt's prompt_logprobs: " + Snippet(r.dump()));
  };
  if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() || !r["choices"][0].is_object() ||
      !r["choices"][0].contains("prompt_logprobs") || !r["choices"][0]["prompt_logprobs"].is_array()) {
    return bad();
  }
  const Json& pl = r["choices"][0]["prompt_logprobs"];
  if (pl.size() < prompt.size()) return bad();
  std::vector<double> out(prompt.size(), 0.0);
  for (size_t t = 1; t < prompt.size(); ++t) {
    const std::string key = std::to_string(prompt[t]);
    if (!pl[t].is_object() || !pl[t].contains(key) || !pl[t][key].is_object() || !pl[t][key].contains("logprob") ||
        !pl[t][key]["logprob"].is_number() || !(pl[t][key]["logprob"].get<double>() <= 0.0)) {
      return bad();
    }
    out[t] = pl[t][key]["logprob"].get<double>();
  }
  return out;
}

class OpenAIScorer : public ServerScorer {
 public:
  OpenAIScorer(std::unique_ptr<OpenAIClient> client, int max_seq_len)
      : client_(std::move(client)), max_seq_len_(max_seq_len) {}

  Status Run(std::span<const int32_t> ids, int score_from, int pool_from, double* mean_logprob,
             std::vector<float>* pooled) override {
    if (mean_logprob) FAMQ_RETURN_IF_ERROR(Fidelity(ids, score_from, mean_logprob));
    if (pooled) FAMQ_RETURN_IF_ERROR(PoolIds(ids, pool_from, pooled));
    return Status::Ok();
  }

  Status Fidelity(std::span<const int32_t> ids, int score_from, double* mean_logprob) override {
    return client_->Redacted(FidelityUnredacted(ids, score_from, mean_logprob));
  }
  Status PoolIds(std::span<const int32_t> ids, int pool_from, std::vector<float>* pooled) override {
    const int n = static_cast<int>(ids.size());
    FAMQ_RETURN_IF_ERROR(CheckLength(n));
    return client_->Redacted(Pool(std::vector<int32_t>(ids.begin(), ids.end()), std::clamp(pool_from, 0, n - 1),
                                  pooled));
  }
  Status EmbedText(const std::string& text, std::vector<float>* pooled) override {
    return client_->Redacted(Embed(text, pooled));
  }

  int max_seq_len() const override { return max_seq_len_; }
  std::string Describe() const override { return "openai:" + client_->base(); }
  const std::string& fidelity_path() const override { return fidelity_path_; }
  const std::string& pool_path() const override { return pool_path_; }
  const std::string& model() const override { return client_->model(); }
  const OpenAIClient& client() const { return *client_; }
  bool concurrent() const override { return true; }  // a client per request

  // retries < 0: the options'; *http_status as in OpenAIClient::Call.
  Result<Json> Logprobs(const std::vector<int32_t>& prompt, int retries = -1, int* http_status = nullptr) const {
    const Json req{{"model", client_->model()}, {"prompt", prompt}, {"max_tokens", 0}, {"echo", true},
                   {"logprobs", 0}};
    FAMQ_ASSIGN_OR_RETURN(Json r, client_->Call("POST", "/v1/completions", req.dump(), http_status, retries));
    return PromptLogprobs(r, prompt.size(), client_->base() + "/v1/completions");
  }

  // vLLM: one generated token (max_tokens 0 is not accepted there) and the prompt's logprobs.
  Result<std::vector<double>> PromptLogprobsVllm(const std::vector<int32_t>& prompt, int retries = -1,
                                                 int* http_status = nullptr) const {
    const Json req{{"model", client_->model()}, {"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0},
                   {"prompt_logprobs", 0}};
    FAMQ_ASSIGN_OR_RETURN(Json r, client_->Call("POST", "/v1/completions", req.dump(), http_status, retries));
    return VllmPromptLogprobs(r, prompt, client_->base() + "/v1/completions");
  }

  Status Pool(const std::vector<int32_t>& input, int pool_from, std::vector<float>* pooled, int retries = -1,
              int* http_status = nullptr) const {
    const Json req{{"model", client_->model()}, {"input", input}, {"encoding_format", "float"},
                   {"pool_from", pool_from}};
    FAMQ_ASSIGN_OR_RETURN(Json r, client_->Call("POST", "/v1/embeddings", req.dump(), http_status, retries));
    return PooledEmbedding(r, pool_from, client_->base() + "/v1/embeddings", pooled);
  }

  Status Embed(const std::string& text, std::vector<float>* pooled, int retries = -1,
               int* http_status = nullptr) const {
    const Json req{{"model", client_->model()}, {"input", text}, {"encoding_format", "float"}};
    FAMQ_ASSIGN_OR_RETURN(Json r, client_->Call("POST", "/v1/embeddings", req.dump(), http_status, retries));
    return PlainEmbedding(r, client_->base() + "/v1/embeddings", pooled);
  }

  std::string fidelity_path_, pool_path_;

 private:
  Status CheckLength(int n) const {
    if (n == 0) return InvalidArgument("expert: no tokens");
    if (n > max_seq_len_) {
      return InvalidArgument("expert: " + std::to_string(n) + " tokens exceed the context of " +
                             std::to_string(max_seq_len_));
    }
    return Status::Ok();
  }

  Status FidelityUnredacted(std::span<const int32_t> ids, int score_from, double* mean_logprob) const {
    const int n = static_cast<int>(ids.size());
    FAMQ_RETURN_IF_ERROR(CheckLength(n));
    // The clamps and the sum order of RunExpertPass: the same doubles, the same mean.
    score_from = std::clamp(score_from, 1, n);
    const std::vector<int32_t> prompt(ids.begin(), ids.end());
    std::vector<double> lps(prompt.size(), 0.0);
    if (fidelity_path_ == "echo") {
      FAMQ_ASSIGN_OR_RETURN(Json lp, Logprobs(prompt));
      for (int t = score_from; t < n; ++t) lps[static_cast<size_t>(t)] = lp[static_cast<size_t>(t)].get<double>();
    } else if (fidelity_path_ == "prompt_logprobs") {
      FAMQ_ASSIGN_OR_RETURN(lps, PromptLogprobsVllm(prompt));
    } else {
      return Unsupported(client_->base() + " offers no prompt log-probabilities");
    }
    double sum = 0.0;
    int count = 0;
    for (int t = score_from; t < n; ++t, ++count) sum += lps[static_cast<size_t>(t)];
    *mean_logprob = count > 0 ? sum / count : 0.0;
    return Status::Ok();
  }

  std::unique_ptr<OpenAIClient> client_;
  int max_seq_len_;
};

}  // namespace

Result<std::unique_ptr<GroupBackend>> MakeOpenAIBackend(const OpenAIBackendOptions& options, const Tokenizer* tokenizer) {
  auto b = std::make_unique<OpenAIBackend>(options, tokenizer);
  FAMQ_RETURN_IF_ERROR(b->ConnectRedacted());
  return std::unique_ptr<GroupBackend>(std::move(b));
}

Result<OpenAIScorerProbe> ProbeOpenAIScorer(const OpenAIBackendOptions& options, int default_max_seq_len,
                                            bool want_fidelity) {
  auto client = std::make_unique<OpenAIClient>(options);
  FAMQ_RETURN_IF_ERROR(client->Redacted(client->Connect()));
  const std::string base = client->base();
  const int max_seq = client->max_model_len() > 0 ? client->max_model_len() : default_max_seq_len;
  auto scorer = std::make_unique<OpenAIScorer>(std::move(client), max_seq);
  OpenAIScorerProbe probe;
  const std::vector<int32_t> two{0, 1};
  int http_status = 0;  // 0 after a failure: no answer came (an error, not a missing feature)
  // No answer (0) or a refused key (401/403) is an error, not a missing feature.
  const auto is_error = [&] { return http_status == 0 || http_status == 401 || http_status == 403; };
  const auto redacted = [&](const Status& st) { return scorer->client().Redacted(st).message(); };
  if (want_fidelity) {
    if (auto lp = scorer->Logprobs(two, 0, &http_status); lp.ok()) {
      scorer->fidelity_path_ = "echo";
    } else if (is_error()) {
      return scorer->client().Redacted(lp.status());
    } else if (auto pl = scorer->PromptLogprobsVllm(two, 0, &http_status); pl.ok()) {
      scorer->fidelity_path_ = "prompt_logprobs";
    } else if (is_error()) {
      return scorer->client().Redacted(pl.status());
    } else {
      probe.fidelity_missing = base + " has no /v1/completions with echo logprobs or prompt_logprobs";
      probe.fidelity_detail = redacted(lp.status()) + "; " + redacted(pl.status());
    }
  }
  std::vector<float> pooled;
  if (Status st = scorer->Pool(two, 1, &pooled, 0, &http_status); st.ok()) {
    scorer->pool_path_ = "pool_from";
  } else if (is_error()) {
    return scorer->client().Redacted(st);
  } else if (Status plain = scorer->Embed("famq", &pooled, 0, &http_status); plain.ok()) {
    scorer->pool_path_ = "embeddings";
    probe.pool_missing.clear();
  } else if (is_error()) {
    return scorer->client().Redacted(plain);
  } else {
    probe.pool_missing = base + " has no /v1/embeddings (with pool_from or plain)";
    probe.pool_detail = redacted(st) + "; " + redacted(plain);
  }
  probe.server = std::move(scorer);
  return probe;
}

}  // namespace famq
