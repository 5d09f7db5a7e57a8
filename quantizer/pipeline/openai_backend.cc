#include "pipeline/openai_backend.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

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

class OpenAIBackend : public GroupBackend {
 public:
  OpenAIBackend(const OpenAIBackendOptions& o, const Tokenizer* tok) : o_(o), tok_(tok) {
    base_ = o_.url;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    if (base_.size() >= 3 && base_.compare(base_.size() - 3, 3, "/v1") == 0) base_.resize(base_.size() - 3);
  }

  Status Connect() {
    if (base_.rfind("http://", 0) != 0 && base_.rfind("https://", 0) != 0) {
      return InvalidArgument("backend URL '" + o_.url + "' must start with http:// or https://");
    }
    FAMQ_ASSIGN_OR_RETURN(Json models, Call("GET", "/v1/models", ""));
    if (o_.model.empty()) {
      if (!models.contains("data") || !models["data"].is_array() || models["data"].empty() ||
          !models["data"][0].contains("id") || !models["data"][0]["id"].is_string()) {
        return InvalidFormat(base_ + "/v1/models answered without a model id: " + Snippet(models.dump()));
      }
      model_ = models["data"][0]["id"].get<std::string>();
    } else {
      model_ = o_.model;
    }
    return Status::Ok();
  }

  std::string Describe() const override { return "openai:" + base_; }

  Result<std::vector<GeneratedCandidate>> Generate(std::span<const int32_t> prompt, const GroupParams& p) override {
    Json req{{"model", model_},
             {"prompt", std::vector<int32_t>(prompt.begin(), prompt.end())},
             {"n", p.n},
             {"temperature", p.temperature},
             {"top_p", p.top_p},
             {"seed", p.seed},
             {"max_tokens", p.max_new_tokens},
             {"logprobs", 0},
             {"return_tokens_as_token_ids", true}};  // vLLM: logprobs tokens as "token_id:N"
    if (p.top_k > 0) req["top_k"] = p.top_k;
    if (!p.stop_tokens.empty()) req["stop_token_ids"] = p.stop_tokens;
    FAMQ_ASSIGN_OR_RETURN(Json r, Call("POST", "/v1/completions", req.dump()));
    if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].size() != static_cast<size_t>(p.n)) {
      return InvalidFormat(base_ + ": expected " + std::to_string(p.n) + " choices, got: " + Snippet(r.dump()));
    }
    std::vector<GeneratedCandidate> out(static_cast<size_t>(p.n));
    for (const auto& ch : r["choices"]) {
      const int idx = ch.value("index", -1);
      if (idx < 0 || idx >= p.n) return InvalidFormat(base_ + ": choice index out of range: " + Snippet(ch.dump()));
      GeneratedCandidate& c = out[static_cast<size_t>(idx)];
      FAMQ_RETURN_IF_ERROR(TokenIds(ch, &c.ids));
      c.finished = ch.value("finish_reason", std::string()) == "stop";
      // Servers leave the stop token out of the ids; the candidate record keeps it like the engine does.
      if (c.finished && !p.stop_tokens.empty() &&
          (c.ids.empty() || std::find(p.stop_tokens.begin(), p.stop_tokens.end(), c.ids.back()) == p.stop_tokens.end())) {
        c.ids.push_back(p.stop_tokens.front());
      }
    }
    return out;
  }

 private:
  Status TokenIds(const Json& ch, std::vector<int32_t>* ids) {
    if (ch.contains("token_ids") && ch["token_ids"].is_array()) {  // famq serve, newer vLLM
      for (const auto& v : ch["token_ids"]) {
        if (!v.is_number_integer()) return InvalidFormat(base_ + ": token_ids holds a non-integer");
        ids->push_back(v.get<int32_t>());
      }
      return Status::Ok();
    }
    if (ch.contains("logprobs") && ch["logprobs"].is_object() && ch["logprobs"].contains("tokens")) {
      bool all = true;
      std::vector<int32_t> parsed;
      for (const auto& t : ch["logprobs"]["tokens"]) {
        const std::string s = t.is_string() ? t.get<std::string>() : "";
        if (s.rfind("token_id:", 0) != 0) {
          all = false;
          break;
        }
        parsed.push_back(static_cast<int32_t>(std::stol(s.substr(9))));
      }
      if (all) {
        *ids = std::move(parsed);
        return Status::Ok();
      }
    }
    if (!ch.contains("text") || !ch["text"].is_string()) return InvalidFormat(base_ + ": a choice has no text");
    if (!warned_.exchange(true)) {
      std::fprintf(stderr, "[famq] warning: %s returns no token ids; re-tokenizing the text (ids may differ from "
                           "those sampled)\n", base_.c_str());
    }
    return tok_->Encode(ch["text"].get<std::string>(), ids);
  }

  Result<Json> Call(const std::string& method, const std::string& path, const std::string& body) {
    httplib::Client cli(base_);
    const auto secs = static_cast<time_t>(o_.timeout_s);
    const auto usecs = static_cast<time_t>((o_.timeout_s - static_cast<double>(secs)) * 1e6);
    cli.set_connection_timeout(10, 0);
    cli.set_read_timeout(secs, usecs);
    cli.set_write_timeout(secs, usecs);
    std::string last_error;
    double delay = o_.backoff_s;
    for (int attempt = 0; attempt <= o_.retries; ++attempt) {
      if (attempt > 0) {
        std::fprintf(stderr, "[famq] %s %s%s: %s; retry %d/%d in %.1fs\n", method.c_str(), base_.c_str(), path.c_str(),
                     last_error.c_str(), attempt, o_.retries, delay);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        delay *= 2;
      }
      auto res = method == "GET" ? cli.Get(path) : cli.Post(path, body, "application/json");
      if (!res) {
        last_error = "cannot reach the server (" + httplib::to_string(res.error()) + ")";
        continue;
      }
      if (res->status == 429 || res->status >= 500) {
        last_error = "HTTP " + std::to_string(res->status) + ": " + Snippet(res->body);
        continue;
      }
      if (res->status != 200) {
        return InvalidArgument(base_ + path + " refused the request: HTTP " + std::to_string(res->status) + ": " +
                               Snippet(res->body));
      }
      auto j = Json::parse(res->body, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        return InvalidFormat(base_ + path + " answered garbage (not a JSON object): " + Snippet(res->body));
      }
      return j;
    }
    return IoError(base_ + path + ": " + last_error + " (gave up after " + std::to_string(o_.retries) + " retries)");
  }

  OpenAIBackendOptions o_;
  const Tokenizer* tok_;
  std::string base_, model_;
  std::atomic<bool> warned_{false};
};

}  // namespace

Result<std::unique_ptr<GroupBackend>> MakeOpenAIBackend(const OpenAIBackendOptions& options, const Tokenizer* tokenizer) {
  auto b = std::make_unique<OpenAIBackend>(options, tokenizer);
  FAMQ_RETURN_IF_ERROR(b->Connect());
  return std::unique_ptr<GroupBackend>(std::move(b));
}

}  // namespace famq
