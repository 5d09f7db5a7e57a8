#include "serve/completions.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <filesystem>
#include <functional>
#include <limits>
#include <type_traits>

#include "core/json_parse.h"
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

// The field's value, or `fallback` when it is absent or null; the wrong type
// is an error. For strings and booleans only: numbers go through IntField and
// NumberField, which check the range before any conversion (a double outside
// an int's range converted to int is undefined behaviour).
template <typename T>
Result<T> Field(const Json& j, const char* key, T fallback) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    if (it->is_boolean()) return it->get<bool>();
  } else {
    if (it->is_string()) return it->get<std::string>();
  }
  return InvalidArgument(std::string("\"") + key + "\" has the wrong type");
}

// An integer field in [lo, hi]: a JSON integer, or a float with an integral
// value (2.0); 1e30, 2^32+16 past hi, -1 below lo and 2.5 are errors.
Result<int64_t> IntField(const Json& j, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  const auto bad = [&] { return InvalidArgument(std::string("\"") + key + "\" must be an integer in " + range); };
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(hi)) return bad();
    return static_cast<int64_t>(v);
  }
  if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    if (v < lo || v > hi) return bad();
    return v;
  }
  if (it->is_number_float()) {
    const double d = it->get<double>();
    // Compare before converting; |d| < 9e18 keeps the conversion defined where
    // hi (INT64_MAX) rounds up to 2^63 as a double.
    if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi) && std::fabs(d) < 9.0e18) ||
        d != std::floor(d)) {
      return bad();
    }
    return static_cast<int64_t>(d);
  }
  return bad();
}

// A seed: an integer in [0, 2^64).
Result<uint64_t> SeedField(const Json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return uint64_t{0};
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer() && it->get<int64_t>() >= 0) return static_cast<uint64_t>(it->get<int64_t>());
  return InvalidArgument(std::string("\"") + key + "\" must be an integer in [0, 2^64)");
}

// A number field in [lo, hi] (NaN refused), as float.
Result<float> NumberField(const Json& j, const char* key, float fallback, double lo, double hi) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (it->is_number()) {
    const double d = it->get<double>();
    if (d >= lo && d <= hi) return static_cast<float>(d);
  }
  return InvalidArgument(std::string("\"") + key + "\" must be a number in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
}

OJson Usage(size_t prompt_tokens, long long completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", static_cast<long long>(prompt_tokens) + completion_tokens}};
}

// The earliest position of any of `stops` in `text` (npos: none). Boyer-Moore:
// linear in the text for each stop string, whatever the strings hold.
size_t FirstStop(const std::string& text, const std::vector<std::string>& stops) {
  size_t first = std::string::npos;
  for (const auto& x : stops) {
    if (x.empty()) continue;
    const auto it = std::search(text.begin(), text.end(), std::boyer_moore_searcher(x.begin(), x.end()));
    if (it != text.end()) first = std::min(first, static_cast<size_t>(it - text.begin()));
  }
  return first;
}

// RFC 4648 base64 of `bytes`.
std::string Base64(const std::vector<uint8_t>& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint32_t{bytes[i]} << 16) | (uint32_t{bytes[i + 1]} << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// The floats as little-endian IEEE-754 float32 bytes, whatever the host's order.
std::vector<uint8_t> LittleEndianFloats(const std::vector<float>& v) {
  std::vector<uint8_t> out;
  out.reserve(v.size() * 4);
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(u >> (8 * k)));
  }
  return out;
}

std::string Event(const OJson& j) {
  std::string s = "data: ";
  s += j.dump(-1, ' ', false, OJson::error_handler_t::replace);
  s += "\n\n";
  return s;
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
  s->max_prompt_bytes_ = limits.max_prompt_bytes;
  if (s->max_prompt_bytes_ == 0) {
    size_t longest = 1;
    for (int32_t id = 0; id < s->model_->tokenizer.vocab_size(); ++id) {
      longest = std::max(longest, s->model_->tokenizer.TokenBytes(id).size());
    }
    s->max_prompt_bytes_ = static_cast<size_t>(s->engine_->max_seq_len()) * longest;
  }
  return s;
}

Status RequestControl::Check() const {
  if (std::chrono::steady_clock::now() >= deadline) {
    stopped = Stop::kDeadline;
    return Cancelled("the request ran past " + deadline_what);
  }
  if (client_gone && client_gone()) {
    stopped = Stop::kClientGone;
    return Cancelled("the client closed the connection");
  }
  return Status::Ok();
}

Result<Json> CompletionService::ParseRequest(std::string_view body) {
  Json j;
  Status s = ParseJson(body, "request body", &j);
  if (!s.ok()) return InvalidArgument(s.message());
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  return j;
}

size_t CompletionService::DefaultMaxBodyBytes() const {
  constexpr size_t kOtherFields = size_t{64} << 10, kCap = size_t{16} << 20;
  if (max_prompt_bytes_ >= kCap / 6) return kCap;
  return std::min(kCap, kOtherFields + 6 * max_prompt_bytes_);
}

Status CompletionService::CheckPromptBytes(size_t bytes, const char* what) const {
  if (bytes <= max_prompt_bytes_) return Status::Ok();
  return InvalidArgument(std::string("the ") + what + " has " + std::to_string(bytes) + " bytes, more than the " +
                         std::to_string(max_prompt_bytes_) + " a prompt of this server can hold (" +
                         std::to_string(engine_->max_seq_len()) + "-token context)");
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
  if (model != name_) {
    if (model.size() > 64) model = model.substr(0, 64) + "...";  // echo a bounded piece of it
    return NotFound("model '" + model + "' does not exist (this server has '" + name_ + "')");
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> CompletionService::ParseTokens(const Json& req, const char* field) const {
  std::vector<int32_t> ids;
  static const Json kNull;
  const auto it = req.find(field);
  const Json* p = it == req.end() ? &kNull : &*it;
  if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];
  if (p->is_string()) {
    const std::string& text = p->get_ref<const std::string&>();
    FAMQ_RETURN_IF_ERROR(CheckPromptBytes(text.size(), field));
    FAMQ_RETURN_IF_ERROR(model_->tokenizer.Encode(text, &ids));
  } else if (p->is_array() && !p->empty()) {
    if (p->size() > static_cast<size_t>(engine_->max_seq_len())) {
      return InvalidArgument(std::string("\"") + field + "\" has " + std::to_string(p->size()) +
                             " token ids, more than the context of " + std::to_string(engine_->max_seq_len()));
    }
    ids.reserve(p->size());
    for (const auto& v : *p) {
      if (!v.is_number_integer()) return InvalidArgument(std::string("\"") + field + "\" arrays must hold token ids");
      const bool in_vocab = v.is_number_unsigned() ? v.get<uint64_t>() < static_cast<uint64_t>(engine_->vocab_size())
                                                   : v.get<int64_t>() >= 0 && v.get<int64_t>() < engine_->vocab_size();
      if (!in_vocab) {
        return InvalidArgument(std::string(field) + " token id " + v.dump() + " outside the vocabulary of " +
                               std::to_string(engine_->vocab_size()));
      }
      ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
  } else {
    return InvalidArgument(std::string("\"") + field + "\" must be a string or a non-empty array of token ids " +
                           "(batches of several " + field + "s are not supported)");
  }
  if (ids.empty()) return InvalidArgument(std::string("the ") + field + " encodes to no tokens");
  return ids;
}

Result<CompletionService::Sampling> CompletionService::ParseSampling(const Json& req, int default_max_tokens,
                                                                     size_t prompt_len,
                                                                     const char* max_tokens_key) const {
  Sampling s;
  if (default_max_tokens < 0) {
    default_max_tokens = static_cast<int>(std::clamp<int64_t>(
        static_cast<int64_t>(engine_->max_seq_len()) - static_cast<int64_t>(prompt_len), 0, limits_.max_tokens));
  }
  FAMQ_ASSIGN_OR_RETURN(const int64_t n, IntField(req, "n", 1, 1, limits_.max_n));
  s.n = static_cast<int>(n);
  FAMQ_ASSIGN_OR_RETURN(s.temperature, NumberField(req, "temperature", 1.0f, 0.0, 100.0));
  FAMQ_ASSIGN_OR_RETURN(s.top_p, NumberField(req, "top_p", 1.0f, 0.0, 1.0));
  if (!(s.top_p > 0.0f)) return InvalidArgument("\"top_p\" must be in (0, 1]");
  FAMQ_ASSIGN_OR_RETURN(const int64_t top_k,
                        IntField(req, "top_k", 0, -1, std::numeric_limits<int32_t>::max()));
  s.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // vLLM uses -1 for "off"
  FAMQ_ASSIGN_OR_RETURN(s.seed, SeedField(req, "seed"));
  FAMQ_ASSIGN_OR_RETURN(const int64_t max_tokens,
                        IntField(req, max_tokens_key, default_max_tokens, 0, limits_.max_tokens));
  s.max_tokens = static_cast<int>(max_tokens);
  if (const auto stop = req.find("stop"); stop != req.end() && !stop->is_null()) {
    const std::string what = "\"stop\" must be a string or an array of at most " + std::to_string(limits_.max_stop) +
                             " strings of at most " + std::to_string(limits_.max_stop_bytes) + " bytes";
    const auto add = [&](const Json& x) {
      if (!x.is_string() || x.get_ref<const std::string&>().size() > limits_.max_stop_bytes) return false;
      s.stop.push_back(x.get<std::string>());
      return true;
    };
    if (stop->is_array()) {
      if (stop->size() > static_cast<size_t>(limits_.max_stop)) return InvalidArgument(what);
      for (const auto& x : *stop) {
        if (!add(x)) return InvalidArgument(what);
      }
    } else if (!add(*stop)) {
      return InvalidArgument(what);
    }
  }
  s.stop_ids = model_->stop_tokens;
  if (const auto ids = req.find("stop_token_ids"); ids != req.end() && !ids->is_null()) {
    const std::string what = "\"stop_token_ids\" must be an array of at most " +
                             std::to_string(limits_.max_stop_token_ids) + " token ids in [0, " +
                             std::to_string(engine_->vocab_size()) + ")";
    if (!ids->is_array() || ids->size() > static_cast<size_t>(limits_.max_stop_token_ids)) {
      return InvalidArgument(what);
    }
    for (const auto& v : *ids) {
      if (!v.is_number_integer()) return InvalidArgument(what);
      const bool in_vocab = v.is_number_unsigned() ? v.get<uint64_t>() < static_cast<uint64_t>(engine_->vocab_size())
                                                   : v.get<int64_t>() >= 0 && v.get<int64_t>() < engine_->vocab_size();
      if (!in_vocab) return InvalidArgument(what);
      s.stop_ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
    }
  }
  if (static_cast<int64_t>(prompt_len) + s.max_tokens > engine_->max_seq_len()) {
    return InvalidArgument("prompt (" + std::to_string(prompt_len) + " tokens) + max_tokens (" +
                           std::to_string(s.max_tokens) + ") exceed the context of " +
                           std::to_string(engine_->max_seq_len()) + " tokens");
  }
  return s;
}

Result<std::vector<GeneratedCandidate>> CompletionService::Sample(std::span<const int32_t> prompt,
                                                                  const Sampling& s, const RequestControl* control,
                                                                  std::function<Status()> extra_check,
                                                                  std::function<void(int, int32_t)> on_token) {
  if (control) FAMQ_RETURN_IF_ERROR(control->Check());
  if (extra_check) FAMQ_RETURN_IF_ERROR(extra_check());
  if (s.max_tokens == 0) return std::vector<GeneratedCandidate>(static_cast<size_t>(s.n));
  GroupParams g;
  g.n = s.n;
  g.temperature = s.temperature;
  g.top_p = s.top_p;
  g.top_k = s.top_k;
  g.max_new_tokens = s.max_tokens;
  g.seed = s.seed;
  g.stop_tokens = s.stop_ids;
  std::function<Status()> check;
  if (control || extra_check) {
    check = [control, extra_check] {
      if (extra_check) FAMQ_RETURN_IF_ERROR(extra_check());
      return control ? control->Check() : Status::Ok();
    };
  }
  return decoder_->Generate(prompt, g, check, std::move(on_token));
}

void CompletionService::FinalChoice(const Sampling& s, const GeneratedCandidate& c, std::vector<int32_t>* ids,
                                    std::string* text, std::string* finish) const {
  *finish = s.max_tokens == 0 || !c.finished ? "length" : "stop";
  *ids = c.ids;
  ApplyStops(s, ids, text, finish);
}

size_t CompletionService::Sendable(const Sampling& s, const std::string& text, bool* stopped) const {
  if (const size_t at = FirstStop(text, s.stop); at != std::string::npos) {
    *stopped = true;
    return at;
  }
  size_t limit = text.size();
  // A tail that may be the start of a stop string waits for the next tokens.
  for (const auto& x : s.stop) {
    for (size_t k = std::min(x.size() - (x.empty() ? 0 : 1), text.size()); k > 0; --k) {
      if (text.compare(text.size() - k, k, x, 0, k) == 0) {
        limit = std::min(limit, text.size() - k);
        break;
      }
    }
  }
  // An incomplete UTF-8 character (or the replacement character a decoder
  // writes for one) may still change: it waits too.
  size_t lead = limit;
  while (lead > 0 && limit - lead < 4 && (static_cast<unsigned char>(text[lead - 1]) & 0xC0) == 0x80) --lead;
  if (lead > 0) {
    const unsigned char b = static_cast<unsigned char>(text[lead - 1]);
    const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
    if (limit - (lead - 1) < need) limit = lead - 1;
  }
  while (limit >= 3 && text.compare(limit - 3, 3, "\xEF\xBF\xBD") == 0) limit -= 3;
  return limit;
}

Result<bool> CompletionService::WantsStream(const Json& req) { return Field<bool>(req, "stream", false); }

Result<CompletionService::StreamRequest> CompletionService::PrepareStream(const Json& req, bool chat) const {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  StreamRequest r;
  r.chat = chat;
  if (const auto so = req.find("stream_options"); so != req.end() && !so->is_null()) {
    if (!so->is_object()) return InvalidArgument("\"stream_options\" must be an object");
    FAMQ_ASSIGN_OR_RETURN(r.include_usage, Field<bool>(*so, "include_usage", false));
  }
  if (chat) {
    FAMQ_ASSIGN_OR_RETURN(r.prompt, RenderChat(req));
    const auto mct = req.find("max_completion_tokens");
    const char* max_tokens_key = mct != req.end() && !mct->is_null() ? "max_completion_tokens" : "max_tokens";
    FAMQ_ASSIGN_OR_RETURN(r.sampling, ParseSampling(req, -1, r.prompt.size(), max_tokens_key));
    if (limits_.api == ServeApi::kChatOnly && r.sampling.n != 1) {
      return InvalidArgument("\"n\" must be 1 on this server (famq serve --api chat-only)");
    }
    FAMQ_ASSIGN_OR_RETURN(const bool logprobs, Field<bool>(req, "logprobs", false));
    if (logprobs) return InvalidArgument("\"logprobs\" is not supported with \"stream\" (famq serve)");
  } else {
    FAMQ_ASSIGN_OR_RETURN(r.prompt, ParseTokens(req, "prompt"));
    FAMQ_ASSIGN_OR_RETURN(r.sampling, ParseSampling(req, 16, r.prompt.size()));
    FAMQ_ASSIGN_OR_RETURN(const bool echo, Field<bool>(req, "echo", false));
    const auto lp = req.find("logprobs");
    const bool logprobs = lp != req.end() && !lp->is_null() && !(lp->is_boolean() && !lp->get<bool>());
    if (echo || logprobs) {
      return InvalidArgument("\"echo\" and \"logprobs\" are not supported with \"stream\" (famq serve)");
    }
  }
  return r;
}

Status CompletionService::RunStream(const StreamRequest& r, const RequestControl* control,
                                    const std::function<bool(const std::string&)>& write,
                                    long long* completion_tokens) {
  const Sampling& sp = r.sampling;
  const size_t n = static_cast<size_t>(sp.n);
  const std::string id = (r.chat ? "chatcmpl-famq-" : "cmpl-famq-") + std::to_string(next_id_++);
  const long long created = Now();
  const auto chunk = [&](OJson choices) {
    OJson j{{"id", id},
            {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", name_},
            {"choices", std::move(choices)}};
    if (r.include_usage) j["usage"] = nullptr;
    return j;
  };
  const auto text_choice = [&](size_t j, const std::string& text, const char* finish) {
    OJson c{{"index", j}};
    if (r.chat) {
      c["delta"] = text.empty() && finish ? OJson::object() : OJson{{"content", text}};
      c["logprobs"] = nullptr;
    } else {
      c["text"] = text;
      c["logprobs"] = nullptr;
    }
    c["finish_reason"] = finish ? OJson(finish) : OJson(nullptr);
    return c;
  };
  std::atomic<bool> gone{false};
  const auto send = [&](const std::string& event) {
    if (!gone && !write(event)) gone = true;
    return !gone;
  };
  if (r.chat) {
    for (size_t j = 0; j < n; ++j) {
      send(Event(chunk(OJson::array({{{"index", j},
                                      {"delta", {{"role", "assistant"}, {"content", ""}}},
                                      {"logprobs", nullptr},
                                      {"finish_reason", nullptr}}}))));
    }
  }
  // The decoder's worker hands tokens over; this thread turns them into events.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<int, int32_t>> queue;
  bool done = false;
  Result<std::vector<GeneratedCandidate>> result = Internal("stream: no result");
  std::thread generator([&] {
    auto res = Sample(
        r.prompt, sp, control,
        [&gone]() { return gone ? Cancelled("the client closed the connection") : Status::Ok(); },
        [&](int j, int32_t token) {
          {
            std::lock_guard<std::mutex> lock(mu);
            queue.emplace_back(j, token);
          }
          cv.notify_one();
        });
    {
      std::lock_guard<std::mutex> lock(mu);
      result = std::move(res);
      done = true;
    }
    cv.notify_one();
  });
  std::vector<std::vector<int32_t>> ids(n);
  std::vector<size_t> sent(n, 0);
  std::vector<bool> stopped(n, false);
  std::vector<bool> changed(n, false);
  for (;;) {
    std::deque<std::pair<int, int32_t>> batch;
    bool finished = false;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done || !queue.empty(); });
      batch.swap(queue);
      finished = done && batch.empty();
    }
    if (finished) break;
    for (const auto& [j, token] : batch) {
      ids[static_cast<size_t>(j)].push_back(token);
      changed[static_cast<size_t>(j)] = true;
    }
    for (size_t j = 0; j < n; ++j) {
      if (!changed[j] || stopped[j] || gone) continue;
      changed[j] = false;
      const std::string text = model_->tokenizer.Decode(ids[j]);
      bool stop = false;
      const size_t limit = Sendable(sp, text, &stop);
      if (stop) stopped[j] = true;
      if (limit > sent[j]) {
        send(Event(chunk(OJson::array({text_choice(j, text.substr(sent[j], limit - sent[j]), nullptr)}))));
        sent[j] = limit;
      }
    }
  }
  generator.join();
  if (!result.ok()) {
    if (!gone) {
      const bool server = result.status().code() == StatusCode::kCancelled;
      send(Event(OJson{{"error", {{"message", result.status().message()},
                                  {"type", server ? "server_error" : "invalid_request_error"},
                                  {"code", server ? 503 : 400}}}}));
    }
    return result.status();
  }
  if (gone) return Cancelled("the client closed the connection");
  long long tokens = 0;
  for (size_t j = 0; j < n; ++j) {
    std::vector<int32_t> final_ids;
    std::string text, finish;
    FinalChoice(sp, (*result)[j], &final_ids, &text, &finish);
    tokens += static_cast<long long>(final_ids.size());
    // The rest of the text (what was held back), then the finish reason.
    const std::string rest = sent[j] < text.size() ? text.substr(sent[j]) : std::string();
    if (!rest.empty()) send(Event(chunk(OJson::array({text_choice(j, rest, nullptr)}))));
    send(Event(chunk(OJson::array({text_choice(j, "", finish.c_str())}))));
  }
  if (completion_tokens) *completion_tokens = tokens;
  if (r.include_usage) {
    OJson last = chunk(OJson::array());
    last["usage"] = Usage(r.prompt.size(), tokens);
    send(Event(last));
  }
  send("data: [DONE]\n\n");
  return gone ? Cancelled("the client closed the connection") : Status::Ok();
}

void CompletionService::ApplyStops(const Sampling& s, std::vector<int32_t>* ids, std::string* text,
                                   std::string* finish) const {
  *text = model_->tokenizer.Decode(*ids);
  if (s.stop.empty() || FirstStop(*text, s.stop) == std::string::npos) return;
  // Cut at the first token whose prefix holds a stop string (the tokens after
  // it are dropped): a binary search, as a prefix's text only grows with it.
  size_t without = 0, with = ids->size();  // prefix lengths: no stop string / one
  while (without + 1 < with) {
    const size_t mid = without + (with - without) / 2;
    const std::string prefix =
        model_->tokenizer.Decode(std::vector<int32_t>(ids->begin(), ids->begin() + static_cast<std::ptrdiff_t>(mid)));
    (FirstStop(prefix, s.stop) == std::string::npos ? without : with) = mid;
  }
  ids->resize(with);
  *finish = "stop";
  *text = model_->tokenizer.Decode(*ids);
  const size_t at = FirstStop(*text, s.stop);
  if (at != std::string::npos) text->resize(at);
}

Result<OJson> CompletionService::Complete(const Json& req, const RequestControl* control) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, ParseTokens(req, "prompt"));
  FAMQ_ASSIGN_OR_RETURN(Sampling sp, ParseSampling(req, 16, prompt.size()));
  FAMQ_ASSIGN_OR_RETURN(bool echo, Field<bool>(req, "echo", false));
  int logprobs = -1;
  if (const auto lp = req.find("logprobs"); lp != req.end() && !lp->is_null()) {
    if (lp->is_boolean()) {
      logprobs = lp->get<bool>() ? 0 : -1;
    } else {
      FAMQ_ASSIGN_OR_RETURN(const int64_t k, IntField(req, "logprobs", -1, 0, 20));
      logprobs = static_cast<int>(k);
    }
  }
  const auto check = [control] { return control ? control->Check() : Status::Ok(); };
  const int n = sp.n;
  const bool standard = limits_.api == ServeApi::kStandard;
  // llama-server's answer (tools/server/README.md; server-common.cpp
  // oaicompat_completion_params_parse): echo is refused.
  if (standard && echo) return InvalidArgument("Only no echo is supported");
  // llama-server sends logprobs for logprobs >= 1 only (n_probs).
  if (standard && logprobs == 0) logprobs = -1;

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
        FAMQ_RETURN_IF_ERROR(check());
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

  FAMQ_ASSIGN_OR_RETURN(std::vector<GeneratedCandidate> cands, Sample(prompt, sp, control));
  OJson choices = OJson::array();
  long long completion_tokens = 0;
  for (int j = 0; j < n; ++j) {
    std::vector<int32_t> ids;
    std::string text, finish;
    FinalChoice(sp, cands[static_cast<size_t>(j)], &ids, &text, &finish);
    completion_tokens += static_cast<long long>(ids.size());
    OJson choice{{"index", j}, {"text", prompt_text + text}};
    if (!standard) choice["token_ids"] = ids;
    if (logprobs >= 0 && standard) {
      // llama-server's shape: {content: [{id, token, bytes, logprob, top_logprobs: [{id, token, bytes, logprob}]}]}.
      OJson content = OJson::array();
      const auto entry = [&](int32_t id, double l) {
        const std::string piece = model_->tokenizer.Decode({id});
        OJson bytes = OJson::array();
        for (unsigned char ch : piece) bytes.push_back(static_cast<int>(ch));
        return OJson{{"id", id}, {"token", piece}, {"bytes", bytes}, {"logprob", l}};
      };
      const Status st = ids.empty() ? Status::Ok() : decoder_->RunExclusive([&](Engine& engine) -> Status {
        std::vector<float> all(static_cast<size_t>(engine.max_batch()) * V);
        std::vector<int32_t> seq = prompt;
        seq.insert(seq.end(), ids.begin(), ids.end());
        for (size_t start = 0; start + 1 < seq.size(); start += static_cast<size_t>(engine.max_batch())) {
          const size_t len = std::min(seq.size() - 1 - start, static_cast<size_t>(engine.max_batch()));
          FAMQ_RETURN_IF_ERROR(check());
          FAMQ_RETURN_IF_ERROR(engine.Forward(std::span<const int32_t>(seq).subspan(start, len),
                                              static_cast<int>(start), all.data(), true));
          for (size_t t = 0; t < len; ++t) {
            const size_t pos = start + t;
            if (pos + 1 < prompt.size()) continue;
            const int32_t id = seq[pos + 1];
            const double lse = ops::LogSumExp(&all[t * V], V);
            OJson e = entry(id, double(all[t * V + static_cast<size_t>(id)]) - lse);
            OJson top = OJson::array();
            for (const auto& [tid, l] : TopLogprobs(&all[t * V], V, lse, logprobs)) top.push_back(entry(tid, l));
            e["top_logprobs"] = std::move(top);
            content.push_back(std::move(e));
          }
        }
        return Status::Ok();
      });
      if (!st.ok()) return st;
      choice["logprobs"] = OJson{{"content", std::move(content)}};
    } else if (logprobs >= 0) {
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
          FAMQ_RETURN_IF_ERROR(check());
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
    choice["finish_reason"] = finish;
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
  const auto msgs = req.find("messages");
  if (msgs == req.end() || !msgs->is_array() || msgs->empty()) {
    return InvalidArgument("\"messages\" must be a non-empty array of {role, content}");
  }
  std::vector<ChatMessage> messages;
  size_t bytes = 0;
  for (const auto& m : *msgs) {
    if (!m.is_object()) return InvalidArgument("every message needs a string \"role\"");
    const auto role = m.find("role"), content = m.find("content");
    if (role == m.end() || !role->is_string()) return InvalidArgument("every message needs a string \"role\"");
    if (content == m.end() || !content->is_string()) {
      return InvalidArgument("every message needs a string \"content\" (content parts are not supported)");
    }
    // The rendered chat holds every role and content: refuse what cannot fit before rendering.
    bytes += role->get_ref<const std::string&>().size() + content->get_ref<const std::string&>().size();
    FAMQ_RETURN_IF_ERROR(CheckPromptBytes(bytes, "messages' text"));
    messages.push_back({role->get<std::string>(), content->get<std::string>()});
  }
  ChatTemplateOptions opt;
  opt.add_generation_prompt = true;
  opt.bos_token = model_->tokenizer_config->bos_token;
  opt.eos_token = model_->tokenizer_config->eos_token;
  if (const auto kw = req.find("chat_template_kwargs"); kw != req.end() && !kw->is_null()) {
    if (!kw->is_object()) return InvalidArgument("\"chat_template_kwargs\" must be an object");
    FAMQ_ASSIGN_OR_RETURN(opt.enable_thinking, Field<bool>(*kw, "enable_thinking", true));
  }
  FAMQ_ASSIGN_OR_RETURN(std::string rendered, chat_template_->Render(messages, opt));
  FAMQ_RETURN_IF_ERROR(CheckPromptBytes(rendered.size(), "rendered chat"));
  std::vector<int32_t> ids;
  FAMQ_RETURN_IF_ERROR(model_->tokenizer.Encode(rendered, &ids));
  if (ids.empty()) return InvalidArgument("the messages render to no tokens");
  return ids;
}

Result<OJson> CompletionService::ChatComplete(const Json& req, const RequestControl* control) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, RenderChat(req));
  const auto mct = req.find("max_completion_tokens");
  const char* max_tokens_key = mct != req.end() && !mct->is_null() ? "max_completion_tokens" : "max_tokens";
  FAMQ_ASSIGN_OR_RETURN(Sampling sp, ParseSampling(req, -1, prompt.size(), max_tokens_key));
  if (limits_.api == ServeApi::kChatOnly && sp.n != 1) {
    return InvalidArgument("\"n\" must be 1 on this server (famq serve --api chat-only)");
  }
  FAMQ_ASSIGN_OR_RETURN(std::vector<GeneratedCandidate> cands, Sample(prompt, sp, control));
  OJson choices = OJson::array();
  long long completion_tokens = 0;
  for (int j = 0; j < sp.n; ++j) {
    std::vector<int32_t> ids;
    std::string text, finish;
    FinalChoice(sp, cands[static_cast<size_t>(j)], &ids, &text, &finish);
    completion_tokens += static_cast<long long>(ids.size());
    OJson choice{{"index", j}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", finish}};
    if (limits_.api != ServeApi::kStandard) choice["token_ids"] = ids;
    choices.push_back(std::move(choice));
  }
  return OJson{{"id", "chatcmpl-famq-" + std::to_string(next_id_++)},
               {"object", "chat.completion"},
               {"created", Now()},
               {"model", name_},
               {"choices", choices},
               {"usage", Usage(prompt.size(), completion_tokens)}};
}

Result<OJson> CompletionService::Embed(const Json& req, const RequestControl* control) {
  FAMQ_RETURN_IF_ERROR(CheckModel(req));
  FAMQ_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokens(req, "input"));
  FAMQ_ASSIGN_OR_RETURN(std::string format, Field<std::string>(req, "encoding_format", "float"));
  if (format != "float" && format != "base64") {
    return InvalidArgument("\"encoding_format\" must be \"float\" or \"base64\"");
  }
  const bool standard = limits_.api == ServeApi::kStandard;
  // The standard mode ignores pool_from like any field it does not know
  // (llama-server and vLLM do): mean pooling over the whole input.
  int64_t pool_from = 0;
  if (!standard) {
    FAMQ_ASSIGN_OR_RETURN(pool_from, IntField(req, "pool_from", 0, 0, std::numeric_limits<int64_t>::max()));
  }
  if (control) FAMQ_RETURN_IF_ERROR(control->Check());
  const int n = static_cast<int>(ids.size());
  const int used = static_cast<int>(std::min<int64_t>(pool_from, n - 1));  // RunExpertPass's clamp
  std::vector<float> pooled;
  FAMQ_RETURN_IF_ERROR(decoder_->RunExclusive([&](Engine& engine) {
    return RunExpertPass(engine, ids, n, used, nullptr, &pooled, &expert_buffers_);
  }));
  if (standard) {
    // llama-server `--embeddings --pooling mean` normalizes (Euclidean, embd_normalize 2) by default.
    double norm = 0.0;
    for (float v : pooled) norm += double(v) * v;
    norm = std::sqrt(norm);
    if (norm > 0.0) {
      for (float& v : pooled) v = static_cast<float>(v / norm);
    }
  }
  OJson item{{"object", "embedding"},
             {"index", 0},
             {"embedding", format == "base64" ? OJson(Base64(LittleEndianFloats(pooled))) : OJson(pooled)}};
  if (!standard) item["pool_from"] = used;
  return OJson{{"object", "list"},
               {"data", OJson::array({std::move(item)})},
               {"model", name_},
               {"usage", {{"prompt_tokens", ids.size()}, {"total_tokens", ids.size()}}}};
}

}  // namespace famq
